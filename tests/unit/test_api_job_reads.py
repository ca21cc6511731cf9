"""The web UI's reads of jobs, on every store backend: pages of jobs (sorted, filtered, counted
in X-Total-Count), the frame grid, the preview of a submit, events by kind and actor, and the
running tasks of a computer.  The real app in process over each real store."""

from __future__ import annotations

import warnings

import pytest
from _api import AUTH, TOKEN
from test_store import FINISHED, a_farm_of_every_status, dispatch, failed, submit

from drqueue.config import Config
from drqueue.master import framegrids
from drqueue.master.api import create_app
from drqueue.master.api.jobs import JOBS_PAGE_MAX
from drqueue.master.api.shapes import computer_dict
from drqueue.master.changes import VERSIONS_KEPT, JobChanges
from drqueue.master.dispatcher import RunningTask
from drqueue.models import Computer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture()
def api(any_store, tmp_path):
    """(http, store): the API over each backend in turn."""
    http = TestClient(create_app(any_store, None, Config(root=tmp_path), TOKEN))
    yield http, any_store
    http.close()


def page(http, **params) -> tuple[list[int], int]:
    answer = http.get("/api/v1/jobs", params=params, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return [job["id"] for job in answer.json()], int(answer.headers["X-Total-Count"])


def test_a_page_of_jobs_is_sorted_filtered_and_counted(api):
    http, store = api
    jobs = a_farm_of_every_status(store)
    everyone = sorted(jobs.values())
    assert page(http, offset=0) == (everyone[::-1], len(jobs))  # paging: newest first
    assert page(http, order="asc", limit=3) == (everyone[:3], len(jobs))
    assert page(http, offset=2, limit=2) == (everyone[::-1][2:4], len(jobs))
    assert page(http, state="waiting") == ([jobs["waiting"]], 1)
    assert page(http, state="stopping") == ([jobs["stopping"]], 1)
    assert page(http, owner="ann", sort="priority", order="desc") == (
        [jobs["running"], jobs["error"], jobs["finished"]],  # priorities 70, 50, 10
        3,
    )
    assert page(http, pool="gpu", order="asc") == ([jobs["queued"], jobs["error"]], 2)
    assert page(http, renderer="shell", q="SHOT", order="asc") == (
        [jobs["finished"], jobs["queued"]],
        2,
    )
    assert page(http, q="été") == ([jobs["stopped"]], 1)
    assert page(http, attention="true") == ([jobs["error"]], 1)  # needs a human
    assert page(http, sort="progress", limit=1) == ([jobs["finished"]], len(jobs))
    by_status = [
        job["status"] for job in http.get("/api/v1/jobs?sort=status&order=asc", headers=AUTH).json()
    ]
    assert by_status == sorted(by_status)
    by_eta = page(http, sort="eta", order="asc")[0]
    assert by_eta[:3] == [jobs["finished"], jobs["error"], jobs["running"]]
    listed = http.get("/api/v1/jobs?offset=0&limit=1", headers=AUTH).json()[0]
    assert "env" not in listed and "params" not in listed and "counts" in listed


def test_without_paging_parameters_the_list_is_as_before(api):
    http, store = api
    ids = [submit(store, 1, 1) for _ in range(3)]
    answer = http.get("/api/v1/jobs", headers=AUTH)
    assert [job["id"] for job in answer.json()] == ids  # oldest first, as always
    assert [job["id"] for job in http.get("/api/v1/jobs?limit=2", headers=AUTH).json()] == ids[1:]


@pytest.mark.parametrize(
    "query",
    [
        f"offset=0&limit={JOBS_PAGE_MAX + 1}",
        "sort=colour",
        "order=up",
        "state=lost",
        "offset=-1",
        "q=" + "x" * 201,
    ],
)
def test_bad_page_parameters_are_422(api, query):
    http, _ = api
    answer = http.get(f"/api/v1/jobs?{query}", headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "InvalidRequest"


def test_the_frame_grid_is_one_letter_per_task(api):
    http, store = api
    job_id = submit(store, 10, 19, block_size=2, retries=0)  # 5 tasks
    store.record_result(dispatch(store, job_id, 0), FINISHED)
    store.record_result(dispatch(store, job_id, 1), failed())
    dispatch(store, job_id, 2)
    running = dispatch(store, job_id, 3)
    store.mark_running(running, 0.5, "")
    answer = http.get(f"/api/v1/jobs/{job_id}/frames", headers=AUTH)
    assert answer.json() == {"start": 10, "end": 19, "step": 1, "block_size": 2, "states": "fedrq"}
    assert http.get(f"/api/v1/jobs/{job_id + 9}/frames", headers=AUTH).status_code == 404


def test_the_frame_grid_is_read_once_per_noted_change_of_its_job(api, monkeypatch):
    http, store = api
    master = http.app.state.master
    job_id = submit(store, 1, 3, retries=0)
    url = f"/api/v1/jobs/{job_id}/frames"

    def states() -> str:
        return http.get(url, headers=AUTH).json()["states"]

    assert [states() for _ in range(5)] == ["qqq"] * 5
    assert master.frame_grids.reads == 1  # five pages asked, the store was read once
    store.record_result(dispatch(store, job_id, 0), FINISHED)  # a write nobody noted yet
    assert states() == "qqq"
    master.changes.note(job_id)  # as the dispatcher does after each write
    assert states() == "fqq" and master.frame_grids.reads == 2
    answer = http.post(f"/api/v1/jobs/{job_id}/tasks/0/requeue", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert states() == "qqq"  # the API notes its own writes
    dispatch(store, job_id, 1)  # nobody notes it: the kept answer ages out
    monkeypatch.setattr(framegrids, "MAX_AGE_SECONDS", 0.0)
    assert states() == "qdq"


def test_a_jobs_version_changes_with_each_noted_change_and_a_forgotten_one_is_new():
    changes = JobChanges()
    first = changes.version(1)
    assert changes.version(1) == first
    changes.note(2)  # another job's change leaves it alone
    assert changes.version(1) == first
    changes.note(1)
    second = changes.version(1)
    assert second != first and changes.version(1) == second
    for job_id in range(100, 100 + VERSIONS_KEPT):  # job 1 is forgotten...
        changes.version(job_id)
    assert changes.version(1) not in (first, second)  # ...so it gets a new number
    changes.note_deleted(100 + VERSIONS_KEPT - 1)
    assert changes.version(100 + VERSIONS_KEPT - 1) > second


def test_a_preview_answers_what_a_submit_would_make_and_stores_nothing(api):
    http, store = api
    body = {"renderer": "shell", "start": 1, "end": 1000, "step": 3, "block_size": 4}
    body["params"] = {"cmd": "echo {frame}"}
    answer = http.post("/api/v1/jobs/preview", json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert (preview["frames"], preview["tasks"]) == (334, 84)
    assert preview["blocks"][:2] == [[1, 10, 3], [13, 22, 3]]
    assert len(preview["blocks"]) == 84 and preview["blocks"][-1] == [997, 1000, 3]
    many = http.post("/api/v1/jobs/preview", json=body | {"block_size": 1}, headers=AUTH).json()
    assert many["tasks"] == 334 and len(many["blocks"]) == 100
    assert many["blocks"][-1] == [298, 298, 3]
    assert store.list_jobs() == []


@pytest.mark.parametrize(
    "bad",
    [
        {"renderer": "nope", "start": 1, "end": 2},
        {"renderer": "shell", "start": 5, "end": 1, "params": {"cmd": "x"}},
        {"renderer": "shell", "start": 1, "end": 2},
        {"renderer": "shell", "start": 1, "end": 10**9, "params": {"cmd": "x"}},
        {"renderer": "blender", "start": 1, "end": 2},
        {"renderer": "shell", "start": 1, "end": 2, "params": {"cmd": "x"}, "priority": 10**9},
        {"renderer": "shell", "start": 1, "end": 2, "params": {"cmd": "x"}, "extra": 1},
        {
            "renderer": "blender",
            "scene": "/no/such/scene.blend",
            "start": 1,
            "end": 2,
            "check_scene": True,
        },
    ],
)
def test_a_preview_refuses_what_a_submit_refuses_with_the_same_answer(api, bad):
    http, store = api
    submitted = http.post("/api/v1/jobs", json=bad, headers=AUTH)
    previewed = http.post("/api/v1/jobs/preview", json=bad, headers=AUTH)
    assert submitted.status_code >= 400
    assert (previewed.status_code, previewed.json()) == (submitted.status_code, submitted.json())
    assert store.list_jobs() == []


def test_a_preview_applies_the_artist_renderer_rule(any_store, tmp_path):
    from drqueue.master.tokens import create_token

    config = Config(root=tmp_path, artist_renderers=["blender"])
    ann = {"Authorization": f"Bearer {create_token(config, 'artist', 'ann')}"}
    with TestClient(create_app(any_store, None, config, TOKEN)) as http:
        body = {"renderer": "shell", "start": 1, "end": 2, "params": {"cmd": "x"}}
        submitted = http.post("/api/v1/jobs", json=body, headers=ann)
        previewed = http.post("/api/v1/jobs/preview", json=body, headers=ann)
        assert submitted.status_code == previewed.status_code == 403
        assert submitted.json() == previewed.json()


def test_events_filter_by_kind_family_actor_and_job(api):
    http, store = api
    ann = submit(store, owner="ann")
    bob = submit(store, owner="bob")
    store.set_job_control(ann, "stopped", actor="carl")
    store.set_job_priority(bob, 5, actor="carl")

    def kinds(path: str, **params) -> list[str]:
        answer = http.get(path, params=params, headers=AUTH)
        assert answer.status_code == 200, answer.text
        return [event["kind"] for event in answer.json()]

    assert kinds("/api/v1/events", kind="job") == [
        "job.submitted",
        "job.submitted",
        "job.stopped",
        "job.priority",
    ]
    assert kinds("/api/v1/events", kind="job.priority") == ["job.priority"]
    assert kinds("/api/v1/events", actor="carl") == ["job.stopped", "job.priority"]
    assert kinds("/api/v1/events", actor="carl", job=bob) == ["job.priority"]
    assert kinds(f"/api/v1/jobs/{ann}/events", actor="ann") == ["job.submitted"]
    newest = http.get("/api/v1/events", headers=AUTH).json()
    assert kinds("/api/v1/events", before_id=newest[-1]["id"]) == kinds(
        "/api/v1/events", before=newest[-1]["id"]
    )
    assert http.get("/api/v1/events?kind=", headers=AUTH).status_code == 422


def test_a_computers_running_tasks_carry_job_task_and_progress():
    shown = computer_dict(Computer(name="render01"), True, [RunningTask(7, 70, 3, 0.25)])
    assert shown["online"] is True
    assert shown["running"] == [
        {"job_id": 7, "task_id": 70, "task_index": 3, "job": 7, "task": 3, "progress": 0.25}
    ]


def test_computers_are_listed_offline_with_nothing_running_without_engines(api):
    http, store = api
    store.upsert_computer({"name": "render01", "cores": 4})
    (shown,) = http.get("/api/v1/computers", headers=AUTH).json()
    assert shown["online"] is False and shown["running"] == []


def test_a_jobs_notify_is_shown_to_its_owner_and_admins_and_its_recipients_to_no_one_else(
    tmp_path,
):
    from _api import AUTH, in_process_api

    from drqueue.config import Config
    from drqueue.master.tokens import create_token

    with in_process_api(tmp_path, smtp_host="127.0.0.1") as (http, _):
        bob = {"Authorization": f"Bearer {create_token(Config(root=tmp_path), 'artist', 'bob')}"}
        ann = {"Authorization": f"Bearer {create_token(Config(root=tmp_path), 'artist', 'ann')}"}
        notify = {"on": ["first-frame"], "email": ["bob@example.com"]}
        body = {"renderer": "shell", "start": 1, "end": 1, "params": {"cmd": "true"}}
        job_id = http.post("/api/v1/jobs", json={**body, "notify": notify}, headers=bob).json()[
            "id"
        ]
        shown = {
            who: http.get(f"/api/v1/jobs/{job_id}", headers=headers).json()["notify"]
            for who, headers in (("bob", bob), ("admin", AUTH), ("ann", ann))
        }
        assert shown["bob"] == shown["admin"] == notify
        assert shown["ann"] == {"on": ["first-frame"], "email": ["(hidden)"]}
        assert "notify" not in http.get("/api/v1/jobs", headers=ann).json()[0]


def test_a_list_is_built_once_while_the_store_is_unchanged_and_again_after_any_write(api):
    """On a store that tells its data version (SQLite) the same GET /jobs is given again until
    anything is written, by the API or past it; on the others it is built for each request."""
    http, store = api
    jobs = a_farm_of_every_status(store)
    pages = http.app.state.master.job_pages
    ask = {"active": "true", "limit": 3}
    keeps = store.data_version() is not None
    first = http.get("/api/v1/jobs", params=ask, headers=AUTH)
    built = pages.builds
    again = http.get("/api/v1/jobs", params=ask, headers=AUTH)
    assert again.content == first.content
    assert again.headers["X-Total-Count"] == first.headers["X-Total-Count"]
    assert pages.builds == built + (0 if keeps else 1)
    whole = http.get("/api/v1/jobs", headers=AUTH)  # another query: built for itself
    assert pages.builds == built + (1 if keeps else 2)
    store.set_job_priority(jobs["queued"], 99)  # a write the API never saw
    changed = http.get("/api/v1/jobs", params=ask, headers=AUTH)
    assert pages.builds == built + (2 if keeps else 3)
    shown = {job["id"]: job for job in changed.json()}
    assert jobs["queued"] not in shown or shown[jobs["queued"]]["priority"] == 99
    after = http.get("/api/v1/jobs", headers=AUTH).json()
    assert after != whole.json()
    assert next(job for job in after if job["id"] == jobs["queued"])["priority"] == 99
