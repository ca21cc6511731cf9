"""GET /jobs answers 10,000 jobs fast, and says of every job exactly what GET /jobs/ID says.

The list reads each job's JSON columns once (the store keeps them decoded by job id: a job's
spec never changes after submit but for its priority, a plain column) and hands FastAPI a
pre-encoded body.  These tests pin the answer to the one the plain path gives: a fresh store
(nothing decoded yet) read through ``job_dict`` and ``json``.  The API runs in-process over a
real SQLite store (as in test_api_tasks.py).
"""

from __future__ import annotations

import json
import warnings

import pytest

from drqueue.config import Config
from drqueue.master.api import create_app, job_dict
from drqueue.models import JobSpec, Requirements, split_frames
from drqueue.store.sqlite import SQLiteStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "list-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

#: The fields of a job in job show, in the order they are sent; the list has all but LIST_OMITS.
JOB_FIELDS = [
    "id", "name", "owner", "renderer", "scene", "start", "end", "step", "block_size", "priority",
    "retries", "timeout", "env", "params", "requirements", "after", "after_frames", "order",
    "first_frame_check", "max_parallel", "notify", "on_failure", "status", "control", "counts", "submitted_at", "finished_at", "eta_seconds", "waiting_for",
    "waiting_reason", "blocked_hosts",
]  # fmt: skip
#: Left out of GET /jobs, as they may be large (GET /jobs/ID has them).
LIST_OMITS = ("env", "params", "notify")
LIST_FIELDS = [name for name in JOB_FIELDS if name not in LIST_OMITS]


class SlotsStub:
    """A dispatcher with no engines that says every job could use *slots* slots (for the ETA)."""

    def __init__(self, slots: int):
        self.slots = slots
        self.asked = 0

    def usable_slots(self, job) -> int:
        self.asked += 1
        return self.slots

    def wake(self) -> None:
        pass

    def kill(self, dispatches) -> None:
        pass


def full_spec(**changes) -> JobSpec:
    """A job with every field away from its default."""
    spec = JobSpec(
        renderer="shell",
        start=1,
        end=8,
        name="every-field",
        owner="ann",
        scene="/proj/shot.blend",
        step=1,
        block_size=2,
        priority=70,
        retries=0,
        timeout=600.0,
        env={"OCIO": "/proj/ocio.config", "LANG": "C"},
        params={"cmd": "echo frame", "nested": {"list": [1, 2.5, None, "é"]}},
        requirements=Requirements(
            os="linux",
            min_ram_gb=8.0,
            min_cores=4,
            pools=[],
            gpus=0,
            hosts=["render07"],
            exclude_hosts=["render01"],
        ),
        max_parallel=3,
        notify={"email": "ann@example.org"},
    )
    for name, value in changes.items():
        setattr(spec, name, value)
    return spec


@pytest.fixture()
def farm(tmp_path):
    """A store of three jobs in different states, and the API over it."""
    path = tmp_path / "db.sqlite"
    store = SQLiteStore(path)
    first = store.create_job(full_spec(), split_frames(1, 8, 1, 2))
    plain = store.create_job(JobSpec("shell", 1, 3, params={"cmd": "true"}), split_frames(1, 3))
    waiting = store.create_job(
        full_spec(name="", after=[first], owner="bob"), split_frames(1, 8, 1, 2)
    )
    # first: one task finished (timed), one running, one failed into error (no retries), one
    # queued.
    tasks = store.next_queued(first, 3)
    for n, task in enumerate(tasks):
        store.mark_dispatched(task.id, f"attempt-{n}", n, "alpha")
    store.mark_running("attempt-1", 0.5, "half way")
    store.record_result("attempt-0", {"status": "finished", "exit_code": 0, "seconds": 12.0})
    store.record_result("attempt-2", {"status": "failed", "exit_code": 3})
    store.block_host(first, "alpha")
    store.set_job_waiting_reason({plain: "no slave offers renderer 'shell'"})
    store.set_job_control(plain, "stopped")
    stub = SlotsStub(2)
    http = TestClient(create_app(store, stub, Config(root=tmp_path), TOKEN))
    yield http, store, path, stub, (first, plain, waiting)
    http.close()
    store.close()


def listed(http: TestClient, **params) -> list[dict]:
    response = http.get("/api/v1/jobs", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def reference(path, slots: int) -> list[dict]:
    """Every job as the plain path says it: a fresh store, job_dict, json."""
    fresh = SQLiteStore(path)
    try:
        jobs = json.loads(json.dumps([job_dict(job, slots) for job in fresh.list_jobs()]))
        return [{k: v for k, v in job.items() if k not in LIST_OMITS} for job in jobs]
    finally:
        fresh.close()


def test_the_list_is_what_a_fresh_store_and_job_dict_give(farm):
    http, _, path, _, _ = farm
    jobs = listed(http)
    assert jobs == reference(path, slots=2)
    assert [list(job) for job in jobs] == [LIST_FIELDS] * 3


def test_the_list_says_of_each_job_what_job_show_says(farm):
    http, _, _, _, ids = farm
    shown = [http.get(f"/api/v1/jobs/{job_id}", headers=AUTH).json() for job_id in ids]
    assert [list(job) for job in shown] == [JOB_FIELDS] * 3
    assert listed(http) == [{k: v for k, v in job.items() if k not in LIST_OMITS} for job in shown]


def test_a_job_with_every_field_set_is_listed_in_full(farm):
    http, _, _, _, (first, _, waiting) = farm
    shown = http.get(f"/api/v1/jobs/{first}", headers=AUTH).json()
    assert shown["env"] == {"OCIO": "/proj/ocio.config", "LANG": "C"}
    assert shown["params"] == {"cmd": "echo frame", "nested": {"list": [1, 2.5, None, "é"]}}
    job = listed(http)[0]
    assert "env" not in job and "params" not in job
    assert job["requirements"] == {
        "os": "linux", "min_ram_gb": 8.0, "min_cores": 4, "pools": [], "gpus": 0,
        "hosts": ["render07"], "exclude_hosts": ["render01"],
    }  # fmt: skip
    assert (job["scene"], job["timeout"], job["max_parallel"], job["retries"]) == (
        "/proj/shot.blend", 600.0, 3, 0,
    )  # fmt: skip
    assert job["counts"] == {
        "total": 4, "queued": 1, "running": 1, "finished": 1, "error": 1, "cancelled": 0,
    }  # fmt: skip
    assert job["status"] == "running"
    assert job["blocked_hosts"] == ["alpha"]
    assert job["eta_seconds"] == 12.0  # 2 tasks left, 12 s each, max_parallel 3 of 2 slots
    later = listed(http)[2]
    assert (later["name"], later["owner"]) == (f"job-{waiting}", "bob")
    assert (later["after"], later["waiting_for"], later["status"]) == ([first], [first], "waiting")


def test_a_priority_change_shows_in_the_list(farm):
    http, store, path, _, (first, plain, _) = farm
    listed(http)  # the specs are decoded now
    store.set_job_priority(first, -5)
    http.put(f"/api/v1/jobs/{plain}/priority", json={"priority": 999}, headers=AUTH)
    jobs = listed(http)
    assert [job["priority"] for job in jobs] == [-5, 999, 70]
    assert jobs == reference(path, slots=2)


def test_task_state_changes_show_in_the_list(farm):
    http, store, path, _, (first, plain, waiting) = farm
    listed(http)
    store.record_result("attempt-1", {"status": "finished", "exit_code": 0, "seconds": 6.0})
    for n, task in enumerate(store.next_queued(first, 1)):
        store.mark_dispatched(task.id, f"last-{n}", 0, "beta")
        store.record_result(f"last-{n}", {"status": "finished", "exit_code": 0})
    store.kill_tasks(plain)
    store.set_job_control(plain, "active")
    store.unblock_host(first, "alpha")
    jobs = listed(http)
    assert jobs == reference(path, slots=2)
    assert jobs[0]["counts"]["finished"] == 3 and jobs[0]["blocked_hosts"] == []
    assert jobs[1]["control"] == "active"
    assert jobs[0]["status"] == "error"
    assert jobs[2]["waiting_for"] == [first]  # its dependency ended in error, not finished


def test_a_deleted_job_leaves_the_list(farm):
    http, store, path, _, (first, plain, waiting) = farm
    listed(http)
    store.delete_job(plain)
    assert [job["id"] for job in listed(http)] == [first, waiting]
    assert listed(http) == reference(path, slots=2)


def test_owner_and_limit_still_filter(farm):
    http, _, _, _, (first, plain, waiting) = farm
    assert [job["id"] for job in listed(http, owner="bob")] == [waiting]
    assert [job["id"] for job in listed(http, limit=2)] == [plain, waiting]
    assert http.get("/api/v1/jobs", params={"limit": 0}, headers=AUTH).status_code == 422


def test_the_slots_are_asked_only_for_jobs_whose_eta_needs_them(farm):
    http, _, _, stub, _ = farm
    listed(http)
    assert stub.asked == 1  # only the first job has timed tasks and tasks left


def test_an_integer_beyond_64_bits_in_params_is_listed_as_it_was_given(farm):
    http, store, path, _, _ = farm
    store.create_job(
        JobSpec("shell", 1, 1, params={"cmd": "true", "seed": 10**30}), split_frames(1, 1)
    )
    jobs = listed(http)
    shown = http.get(f"/api/v1/jobs/{jobs[-1]['id']}", headers=AUTH).json()
    assert shown["params"]["seed"] == 10**30
    assert jobs == reference(path, slots=2)


def test_the_store_lists_the_same_jobs_warm_or_fresh(farm):
    _, store, path, _, (first, _, _) = farm
    warm = store.list_jobs()
    store.set_job_priority(first, 1)
    fresh = SQLiteStore(path)
    try:
        assert store.list_jobs() == fresh.list_jobs()
        assert store.get_job(first) == fresh.get_job(first)
        assert store.runnable_jobs() == fresh.runnable_jobs()
    finally:
        fresh.close()
    assert warm[0].spec.priority == 70
