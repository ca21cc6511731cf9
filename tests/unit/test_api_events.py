"""The events routes page back through the whole audit trail with ``before``.

The API runs in-process over a real SQLite store; drqueue.Client is driven through the same
in-process transport, so its paging is tested against the real routes.
"""

from __future__ import annotations

import pytest
from _api import AUTH, TOKEN, TestClient, in_process_api

from drqueue.client import Client
from drqueue.config import Config
from drqueue.models import JobSpec, split_frames


@pytest.fixture()
def api(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        spec = JobSpec("shell", 1, 4, params={"cmd": "true"})
        job_id = store.create_job(spec, split_frames(1, 4))
        for n in range(500):  # more than one default page (200), for the job and for the farm
            store.add_event("test.note", f"note {n}", job_id=job_id if n % 2 else None)
        yield http, store, job_id


def ids(events) -> list[int]:
    return [e["id"] for e in events]


def test_events_before_pages_back_past_the_newest_200(api):
    http, store, _ = api
    every = [e.id for e in store.events(limit=10_000)]
    assert len(every) == 501
    newest = http.get("/api/v1/events", headers=AUTH).json()
    assert ids(newest) == every[-200:]
    older = http.get("/api/v1/events", params={"before": newest[0]["id"]}, headers=AUTH).json()
    assert ids(older) == every[-400:-200]
    oldest = http.get("/api/v1/events", params={"before": older[0]["id"]}, headers=AUTH).json()
    assert ids(oldest) == every[:101]
    assert http.get("/api/v1/events", params={"before": every[0]}, headers=AUTH).json() == []
    window = http.get(
        "/api/v1/events", params={"since": every[9], "before": every[20], "limit": 5}, headers=AUTH
    )
    assert ids(window.json()) == every[15:20]


def test_job_events_take_since_before_and_limit(api):
    http, store, job_id = api
    every = [e.id for e in store.events(job_id=job_id, limit=10_000)]
    assert len(every) == 251  # job.submitted and 250 notes
    route = f"/api/v1/jobs/{job_id}/events"
    assert ids(http.get(route, headers=AUTH).json()) == every[-200:]
    assert ids(http.get(route, params={"limit": 3}, headers=AUTH).json()) == every[-3:]
    assert (
        ids(http.get(route, params={"before": every[-200], "limit": 1000}, headers=AUTH).json())
        == every[:-200]
    )
    assert ids(http.get(route, params={"since": every[-5]}, headers=AUTH).json()) == every[-4:]


@pytest.mark.parametrize(
    "params",
    [
        {"before": -1},
        {"before": 2**63},
        {"since": 2**64},
        {"limit": 0},
        {"limit": 10_001},
        {"before": "x"},
    ],
)
def test_events_refuse_out_of_range_paging_with_422(api, params):
    http, _, job_id = api
    for route in ("/api/v1/events", f"/api/v1/jobs/{job_id}/events"):
        assert http.get(route, params=params, headers=AUTH).status_code == 422, (route, params)


def test_job_events_of_an_unknown_job_is_404_and_every_route_needs_the_token(api):
    http, _, job_id = api
    assert http.get("/api/v1/jobs/999/events", headers=AUTH).status_code == 404
    assert http.get("/api/v1/events").status_code == 401
    assert http.get(f"/api/v1/jobs/{job_id}/events", params={"before": 5}).status_code == 401


def test_client_all_events_reads_the_whole_trail_page_by_page(api, tmp_path):
    http, store, job_id = api
    client = Client("http://testserver", TOKEN, config=Config(root=tmp_path))
    client._http.close()  # the client's own transport, replaced by the in-process one
    client._http = TestClient(http.app, base_url="http://testserver/api/v1", headers=AUTH)
    try:
        assert ids(client.all_events(page=64)) == [e.id for e in store.events(limit=10_000)]
        job_ids = [e.id for e in store.events(job_id=job_id, limit=10_000)]
        assert ids(client.all_events(job_id, page=100)) == job_ids
        assert ids(client.all_events(job_id, since=job_ids[10], page=7)) == job_ids[11:]
        assert ids(client.events(job_id, before=job_ids[3])) == job_ids[:3]
        assert ids(client.events(limit=2)) == [e.id for e in store.events(limit=2)]
    finally:
        client.close()
