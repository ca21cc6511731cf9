"""A lone surrogate (JSON "\\ud800", not valid Unicode) is refused at submit wherever a job
holds free text, and one stored before that rule never turns a listing into a 500 for everyone
(a hostile artist's params once made GET /jobs answer 500 until the job was deleted)."""

from __future__ import annotations

import pytest
from _api import AUTH, in_process_api

from drqueue.models import JobSpec, split_frames


@pytest.fixture
def api(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        yield http, store


def post_raw(http, body: str):
    return http.post(
        "/api/v1/jobs", content=body, headers={**AUTH, "content-type": "application/json"}
    )


@pytest.mark.parametrize(
    "field",
    [
        '"params": {"cmd": "true \\ud800"}',
        '"params": {"cmd": ["a", {"b": "\\udfff"}]}',
        '"notify": {"email": "\\ud800@example.com"}',
        '"env": {"A": "\\ud800"}',
        '"name": "shot \\ud800"',
    ],
)
def test_a_lone_surrogate_anywhere_in_a_job_is_a_422(api, field):
    http, store = api
    answer = post_raw(http, '{"renderer": "shell", "start": 1, "end": 1, ' + field + "}")
    assert answer.status_code == 422, answer.text
    assert store.list_jobs() == []


def test_a_surrogate_stored_before_the_rule_does_not_break_the_listings(api):
    http, store = api
    spec = JobSpec("shell", 1, 1, name="old", owner="ann", params={"cmd": "true \ud800"})
    job_id = store.create_job(spec, split_frames(1, 1, 1, 1))
    for path in ("/api/v1/jobs", f"/api/v1/jobs/{job_id}"):
        answer = http.get(path, headers=AUTH)
        assert answer.status_code == 200, (path, answer.text)
    assert "\\ud800" in http.get(f"/api/v1/jobs/{job_id}", headers=AUTH).text
