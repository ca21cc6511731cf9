"""GET /jobs/ID/tasks takes a state and a page, so a page can show part of a 100,000-task job.

The API runs in-process over a real SQLite store (tests/unit/_api.py).
"""

from __future__ import annotations

import pytest
from _api import AUTH, in_process_api

from drqueue.models import JobSpec, split_frames


@pytest.fixture()
def api(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        spec = JobSpec("shell", 1, 50, params={"cmd": "true"})
        job_id = store.create_job(spec, split_frames(1, 50))
        for n, task in enumerate(store.next_queued(job_id, 3)):
            store.mark_dispatched(task.id, f"attempt-{n}", 0, "alpha")
        yield http, job_id


def indexes(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [t["index"] for t in response.json()]


def test_all_tasks_by_default(api):
    http, job_id = api
    assert indexes(http.get(f"/api/v1/jobs/{job_id}/tasks", headers=AUTH)) == list(range(50))


def test_a_page_and_a_state(api):
    http, job_id = api
    url = f"/api/v1/jobs/{job_id}/tasks"
    page = http.get(url, params={"offset": 10, "limit": 5}, headers=AUTH)
    assert indexes(page) == [10, 11, 12, 13, 14]
    assert indexes(http.get(url, params={"state": "dispatched"}, headers=AUTH)) == [0, 1, 2]
    queued = http.get(url, params={"state": "queued", "offset": 1, "limit": 2}, headers=AUTH)
    assert indexes(queued) == [4, 5]
    assert indexes(http.get(url, params={"offset": 50}, headers=AUTH)) == []


@pytest.mark.parametrize(
    "params", [{"state": "sleeping"}, {"offset": -1}, {"limit": 0}, {"limit": "ten"}]
)
def test_bad_paging_is_a_422(api, params):
    http, job_id = api
    response = http.get(f"/api/v1/jobs/{job_id}/tasks", params=params, headers=AUTH)
    assert response.status_code == 422
    assert http.get("/api/v1/jobs/999/tasks", headers=AUTH).status_code == 404
