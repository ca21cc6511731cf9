"""POST /jobs with frame-by-frame dependencies, an order and a first-frame check (issue 15):
what is stored and shown, and the one-line 4xx of each bad input."""

from __future__ import annotations

import pytest
from _api import AUTH, in_process_api

SHELL = {"renderer": "shell", "start": 1, "end": 4, "params": {"cmd": "true"}}


@pytest.fixture
def api(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        yield http, store


def refused(response, status: int) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    return detail


def submit(http, **fields):
    return http.post("/api/v1/jobs", json=dict(SHELL, **fields), headers=AUTH)


def test_frame_dependency_order_and_check_are_stored_and_shown(api):
    http, store = api
    render = submit(http).json()["id"]
    answer = submit(http, after_frames=[render], order="preview", first_frame_check=True)
    assert answer.status_code == 201, answer.text
    comp = answer.json()["id"]
    spec = store.get_job(comp).spec
    assert (spec.after_frames, spec.order, spec.first_frame_check) == ([render], "preview", True)
    shown = http.get(f"/api/v1/jobs/{comp}", headers=AUTH).json()
    assert (shown["after_frames"], shown["after"], shown["order"]) == ([render], [], "preview")
    assert shown["first_frame_check"] is True
    listed = http.get("/api/v1/jobs", headers=AUTH).json()
    jobs = listed["jobs"] if isinstance(listed, dict) else listed
    assert [job["order"] for job in jobs] == ["sequential", "preview"]


def test_frames_of_a_job_that_does_not_exist_are_refused(api):
    http, store = api
    detail = refused(submit(http, after_frames=[99]), 400)
    assert detail == "the job waits for the frames of job 99 (after_frames), which does not exist"
    assert store.list_jobs() == []


def test_frames_that_share_none_with_the_upstream_job_are_refused(api):
    http, store = api
    render = submit(http, start=1, end=10).json()["id"]
    detail = refused(submit(http, start=11, end=20, after_frames=[render]), 400)
    assert "share no frame with job" in detail and "wait for the whole job (after)" in detail
    odd = submit(http, start=1, end=9, step=2).json()["id"]
    refused(submit(http, start=2, end=10, step=2, after_frames=[odd]), 400)
    assert len(store.list_jobs()) == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("order", "random"),
        ("order", 1),
        ("after_frames", ["1"]),
        ("after_frames", [0]),
        ("after_frames", "1"),
        ("first_frame_check", "yes"),
    ],
)
def test_bad_values_are_one_line_422(api, field, value):
    http, store = api
    detail = refused(submit(http, **{field: value}), 422)
    assert detail.startswith(field)
    assert store.list_jobs() == []
