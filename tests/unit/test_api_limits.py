"""The API's limits, over the real app and a real SQLite store (issue 10, §2c, 2e, 2f, 3d, 3j).

Request bodies are capped (413), list routes return bounded pages, a giant submit does not
lock other users out, a repeated Idempotency-Key makes no second job, and bad input (ids past
64 bits, NUL bytes, escape codes, ``"1"`` for a frame) is a one-line 4xx that stores nothing.
"""

from __future__ import annotations

import getpass
import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _api import AUTH, TOKEN, TestClient, in_process_api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drqueue.client import Client
from drqueue.config import Config
from drqueue.master.api import MAX_PAGE, create_app
from drqueue.store.sqlite import SQLiteStore

SHELL = {"renderer": "shell", "start": 1, "end": 4, "params": {"cmd": "true"}}


def refused(response, status: int = 422) -> str:
    """The one-line error of a refused request."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    return detail


@pytest.fixture
def api(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        yield http, store


def app_with(tmp_path: Path, store: SQLiteStore | None = None, **settings) -> TestClient:
    store = store or SQLiteStore(tmp_path / "db.sqlite")
    return TestClient(create_app(store, None, Config(root=tmp_path, **settings), TOKEN))


# -- 2c: request size ---------------------------------------------------------------------------


def test_a_body_over_max_request_bytes_is_413_before_it_is_read(tmp_path):
    http = app_with(tmp_path, max_request_bytes=10_000)
    body = json.dumps(dict(SHELL, name="x" * 20_000))
    detail = refused(
        http.post(
            "/api/v1/jobs", content=body, headers={**AUTH, "Content-Type": "application/json"}
        ),
        413,
    )
    assert "10000 bytes" in detail and "max_request_bytes" in detail
    assert http.get("/api/v1/jobs", headers=AUTH).json() == []


def test_a_chunked_body_over_the_limit_is_413_too(tmp_path):
    http = app_with(tmp_path, max_request_bytes=10_000)

    def chunks():  # no Content-Length: httpx sends Transfer-Encoding: chunked
        yield b'{"renderer": "shell", "start": 1, "end": 4, "name": "'
        for _ in range(50):
            yield b"x" * 1000
        yield b'"}'

    response = http.post(
        "/api/v1/jobs", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert "max_request_bytes" in refused(response, 413)
    assert http.get("/api/v1/jobs", headers=AUTH).json() == []
    # A small chunked body still goes through.
    small = json.dumps(SHELL).encode()
    response = http.post(
        "/api/v1/jobs", content=iter([small]), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text


def test_the_default_limit_is_one_mebibyte(api):
    http, _ = api
    body = json.dumps(dict(SHELL, env={"BIG": "x" * 30_000}, params={"cmd": "true" + " " * 2**20}))
    refused(
        http.post(
            "/api/v1/jobs", content=body, headers={**AUTH, "Content-Type": "application/json"}
        ),
        413,
    )


# -- 2c: page sizes ----------------------------------------------------------------------------


def test_a_task_page_is_bounded_and_a_larger_limit_is_refused(tmp_path):
    http = app_with(tmp_path)
    job_id = http.post("/api/v1/jobs", json=dict(SHELL, end=MAX_PAGE + 5), headers=AUTH).json()[
        "id"
    ]
    detail = refused(http.get(f"/api/v1/jobs/{job_id}/tasks?limit=1000000", headers=AUTH))
    assert "limit" in detail and str(MAX_PAGE) in detail
    page = http.get(f"/api/v1/jobs/{job_id}/tasks", headers=AUTH).json()
    assert len(page) == MAX_PAGE
    rest = http.get(f"/api/v1/jobs/{job_id}/tasks?offset={MAX_PAGE}", headers=AUTH).json()
    assert [t["index"] for t in rest] == list(range(MAX_PAGE, MAX_PAGE + 5))


@pytest.mark.parametrize("route", ["/jobs", "/events", "/computers", "/pools", "/jobs/1/events"])
def test_every_list_route_refuses_a_page_over_the_maximum(api, route):
    http, _ = api
    http.post("/api/v1/jobs", json=SHELL, headers=AUTH)
    refused(http.get(f"/api/v1{route}", params={"limit": MAX_PAGE + 1}, headers=AUTH))
    assert http.get(f"/api/v1{route}", params={"limit": 1}, headers=AUTH).status_code == 200


def test_client_tasks_reads_every_page(tmp_path):
    http = app_with(tmp_path)
    job_id = http.post("/api/v1/jobs", json=dict(SHELL, end=MAX_PAGE + 3), headers=AUTH).json()[
        "id"
    ]
    client = Client("http://testserver", TOKEN, config=Config(root=tmp_path))
    client._http.close()
    client._http = TestClient(http.app, base_url="http://testserver/api/v1", headers=AUTH)
    try:
        assert [t["index"] for t in client.tasks(job_id)] == list(range(MAX_PAGE + 3))
    finally:
        client.close()


# -- 2c: the frame cap, chunked creation, no "database is locked" -----------------------------


def test_the_frame_cap_is_the_config_setting(tmp_path):
    http = app_with(tmp_path, max_frames_per_job=50)
    detail = refused(http.post("/api/v1/jobs", json=dict(SHELL, end=51), headers=AUTH), 400)
    assert "51 frames" in detail and "max_frames_per_job" in detail
    assert http.post("/api/v1/jobs", json=dict(SHELL, end=50), headers=AUTH).status_code == 201
    # The cap counts frames, not tasks: blocks do not get round it.
    refused(http.post("/api/v1/jobs", json=dict(SHELL, end=51, block_size=51), headers=AUTH), 400)


def test_a_giant_submit_does_not_lock_out_other_users(tmp_path):
    """While a max-size submit stores its tasks, other submits and reads all succeed."""
    http = app_with(tmp_path)
    giant_frames = Config().max_frames_per_job
    results: dict[str, object] = {}

    def giant() -> None:
        started = time.monotonic()
        results["giant"] = http.post(
            "/api/v1/jobs", json=dict(SHELL, end=giant_frames), headers=AUTH
        )
        results["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=giant)
    thread.start()
    statuses: list[int] = []
    during = 0
    deadline = time.monotonic() + 120
    while thread.is_alive() and time.monotonic() < deadline:
        statuses.append(http.post("/api/v1/jobs", json=SHELL, headers=AUTH).status_code)
        statuses.append(http.get("/api/v1/jobs", headers=AUTH).status_code)
        during += thread.is_alive()
    thread.join(timeout=120)
    assert results["giant"].status_code == 201, results["giant"].text
    assert results["giant"].json()["tasks"] == giant_frames
    assert set(statuses) <= {200, 201}, statuses
    assert during >= 2, f"only {during} requests ran during the {results['seconds']:.1f} s submit"
    jobs = http.get("/api/v1/jobs", headers=AUTH).json()
    giant_job = next(j for j in jobs if j["counts"]["total"] == giant_frames)
    assert giant_job["counts"]["queued"] == giant_frames and giant_job["status"] == "queued"
    # Other submits were stored *while* the giant's tasks were written, not after: jobs with
    # higher ids (made after the giant's row) were published before it.
    published = [
        e["job_id"] for e in http.get(f"/api/v1/events?limit={MAX_PAGE}", headers=AUTH).json()
    ]
    before_giant = published[: published.index(giant_job["id"])]
    assert any(job_id > giant_job["id"] for job_id in before_giant), published


def test_a_job_being_created_is_invisible_and_a_killed_creation_is_removed(tmp_path):
    """A process killed mid-create_job leaves no visible, runnable or half-counted job."""
    path = tmp_path / "db.sqlite"
    SQLiteStore(path).close()
    script = (
        "import sys; from drqueue.store.sqlite import SQLiteStore; "
        "from drqueue.models import JobSpec, split_frames; "
        "s = SQLiteStore(sys.argv[1]); "
        "s.create_job(JobSpec('shell', 1, 2_000_000, params={'cmd': 'true'}), "
        "split_frames(1, 2_000_000))"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(path)])
    watcher = sqlite3.connect(path, timeout=30)
    try:
        deadline = time.monotonic() + 60
        while watcher.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] < 10_000:
            assert child.poll() is None and time.monotonic() < deadline, "creation never began"
            time.sleep(0.01)
        store = SQLiteStore(path)
        assert store.list_jobs() == [] and store.runnable_jobs() == [] and store.job_ids() == set()
        child.kill()
        child.wait()
        assert watcher.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] > 0
        found = store.check_integrity()
        assert any("creation was cut short" in line for line in found), found
        assert watcher.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 0
        assert store.list_jobs() == []
        store.close()
    finally:
        child.kill()
        watcher.close()


def test_a_store_locked_too_long_is_503_with_retry_after_not_500(tmp_path):
    path = tmp_path / "db.sqlite"
    http = app_with(tmp_path, store=SQLiteStore(path, busy_timeout=0.2))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        response = http.post("/api/v1/jobs", json=SHELL, headers=AUTH)
        assert "busy" in refused(response, 503)
        assert response.json()["error"] == "StoreBusy"
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert http.post("/api/v1/jobs", json=SHELL, headers=AUTH).status_code == 201


# -- 2e: idempotency -----------------------------------------------------------------------------


def test_the_same_idempotency_key_twice_makes_one_job(api):
    http, store = api
    key = {**AUTH, "Idempotency-Key": "k-123"}
    first = http.post("/api/v1/jobs", json=SHELL, headers=key)
    again = http.post("/api/v1/jobs", json=SHELL, headers=key)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    other = http.post("/api/v1/jobs", json=SHELL, headers={**AUTH, "Idempotency-Key": "k-456"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert len(store.list_jobs()) == 2


def test_an_idempotency_key_is_unique_per_owner(api):
    http, store = api
    for owner in ("alice", "bob"):
        response = http.post(
            "/api/v1/jobs",
            json=dict(SHELL, owner=owner),
            headers={**AUTH, "Idempotency-Key": "same"},
        )
        assert response.status_code == 201
    assert sorted(j.spec.owner for j in store.list_jobs()) == ["alice", "bob"]


def test_a_bad_idempotency_key_is_refused(api):
    http, store = api
    for key in ("a b", "x" * 201):
        refused(http.post("/api/v1/jobs", json=SHELL, headers={**AUTH, "Idempotency-Key": key}))
    assert store.list_jobs() == []


def test_client_submit_retries_a_lost_answer_with_the_same_key(tmp_path):
    """The master is slow (its store locked for a while): the client times out, sends the
    submit again with the same key, and exactly one job exists, the one it is told of."""
    import uvicorn
    from farm import free_port_block, wait_for

    path = tmp_path / "db.sqlite"
    store = SQLiteStore(path)
    app = create_app(store, None, Config(root=tmp_path), TOKEN)
    port = free_port_block(1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30, what="uvicorn")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # the master's writes wait for this other writer
    release = threading.Timer(1.5, lambda: holder.execute("ROLLBACK"))
    release.start()
    client = Client(f"http://127.0.0.1:{port}", TOKEN, config=Config(root=tmp_path), timeout=0.5)
    try:
        answer = client.submit("shell", start=1, end=3, params={"cmd": "true"}, attempts=8)
        wait_for(lambda: store.list_jobs(), timeout=30, what="the job")
        wait_for(lambda: not server.server_state.tasks, timeout=30, what="requests to end")
        assert [job.id for job in store.list_jobs()] == [answer["id"]]
    finally:
        release.join()
        holder.close()
        client.close()
        server.should_exit = True
        thread.join(timeout=30)
        store.close()


def test_client_submit_sends_a_new_key_per_submit_and_the_user_as_owner(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        client = Client("http://testserver", TOKEN, config=Config(root=tmp_path))
        client._http.close()
        client._http = TestClient(http.app, base_url="http://testserver/api/v1", headers=AUTH)
        try:
            first = client.submit("shell", start=1, end=2, params={"cmd": "true"})
            second = client.submit("shell", start=1, end=2, params={"cmd": "true"})
        finally:
            client.close()
        assert first["id"] != second["id"]
        assert [job.spec.owner for job in store.list_jobs()] == [getpass.getuser()] * 2


# -- 2f: ids, control characters, strict numbers, names ----------------------------------------------


@pytest.mark.parametrize(
    "method,url",
    [
        ("GET", "/jobs/{big}"),
        ("DELETE", "/jobs/{big}"),
        ("POST", "/jobs/{big}/stop"),
        ("GET", "/jobs/{big}/tasks"),
        ("GET", "/jobs/1/tasks/{big}"),
        ("POST", "/jobs/1/tasks/{big}/requeue"),
        ("GET", "/jobs/{big}/events"),
        ("GET", "/jobs/{big}/log?frame=1"),
        ("GET", "/jobs/1/tasks?offset={big}"),
        ("GET", "/events?since={big}"),
    ],
)
@pytest.mark.parametrize("big", [2**63, 2**64 + 7, 10**30, -(2**63) - 1])
def test_ids_beyond_64_bits_are_404_or_422_never_500(api, method, url, big):
    http, _ = api
    http.post("/api/v1/jobs", json=SHELL, headers=AUTH)
    response = http.request(method, "/api/v1" + url.format(big=big), headers=AUTH)
    assert response.status_code in (404, 422), response.text
    refused(response, response.status_code)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(big=st.integers(min_value=2**63, max_value=2**200))
def test_any_huge_after_id_is_refused_at_submit(tmp_path, big):
    http = app_with(tmp_path)
    refused(http.post("/api/v1/jobs", json=dict(SHELL, after=[big]), headers=AUTH))


@pytest.mark.parametrize(
    "field,value",
    [
        ("env", {"A": "x\x00y"}),
        ("env", {"A\x00": "x"}),
        ("scene", "/proj/shot\x00.blend"),
        ("scene", "/proj/shot\n.blend"),
        ("name", "x\x00"),
        ("name", "\x1b[31mred\x1b[0m"),
        ("name", "bell\x07"),
        ("name", "csi\x9b2J"),
        ("owner", "\x1b]0;title\x07"),
        ("params", {"cmd": "true\x00"}),
        ("params", {"cmd": "true", "nested": ["a\x00"]}),
        ("params", {"c\x1bmd": "true"}),
    ],
)
def test_nul_bytes_and_control_characters_are_refused_at_submit(api, field, value):
    http, store = api
    refused(http.post("/api/v1/jobs", json=dict(SHELL, **{field: value}), headers=AUTH))
    assert store.list_jobs() == []


def test_unicode_and_punctuation_in_job_names_are_kept(api):
    http, store = api
    for name in ("shot 010 / v2?#%", "Szene – Übung 🎬"):
        assert (
            http.post("/api/v1/jobs", json=dict(SHELL, name=name), headers=AUTH).status_code == 201
        )
    assert [job.spec.name for job in store.list_jobs()] == ["shot 010 / v2?#%", "Szene – Übung 🎬"]


@pytest.mark.parametrize(
    "field,value",
    [
        ("start", "1"),
        ("start", True),
        ("end", "4"),
        ("end", 4.0),
        ("step", True),
        ("block_size", "2"),
        ("priority", "10"),
        ("priority", False),
        ("retries", "3"),
        ("max_parallel", True),
        ("after", ["1"]),
        ("check_scene", "yes"),
        ("timeout", "30"),
    ],
)
def test_numbers_are_strict_at_submit(api, field, value):
    http, store = api
    detail = refused(http.post("/api/v1/jobs", json=dict(SHELL, **{field: value}), headers=AUTH))
    assert detail.startswith(field)
    assert store.list_jobs() == []


def test_priority_is_strict_and_bounded_when_changed_too(api):
    http, _ = api
    job_id = http.post("/api/v1/jobs", json=SHELL, headers=AUTH).json()["id"]
    for bad in ("10", True, 1_000_001):
        refused(http.put(f"/api/v1/jobs/{job_id}/priority", json={"priority": bad}, headers=AUTH))
    assert (
        http.put(f"/api/v1/jobs/{job_id}/priority", json={"priority": 7}, headers=AUTH).json()[
            "priority"
        ]
        == 7
    )


@pytest.mark.parametrize(
    "name", ["gpu?old", "gpu#1", "a/b", "50%", "..", " gpu", "gpu ", "g\x1bpu", "", "-x", "x" * 101]
)
def test_pool_and_computer_names_that_would_need_quoting_are_refused(api, name):
    http, store = api
    refused(http.post("/api/v1/pools", json={"name": name}, headers=AUTH))
    refused(http.post("/api/v1/pools/gpu/members", json={"computer": name}, headers=AUTH))
    refused(
        http.post("/api/v1/jobs", json=dict(SHELL, requirements={"pools": [name]}), headers=AUTH)
    )
    assert store.list_pools() == [] and store.list_jobs() == []


def test_plain_pool_names_are_accepted(api):
    http, _ = api
    for name in ("gpu", "gpu-old", "render_07.lan", "A1"):
        assert http.post("/api/v1/pools", json={"name": name}, headers=AUTH).status_code == 201


# -- 3d and 3j: renderers' whole-job rules, and the client's owner -----------------------------------


def test_an_ffmpeg_job_is_one_task_over_the_whole_range(api):
    http, store = api
    body = {
        "renderer": "ffmpeg",
        "start": 1,
        "end": 48,
        "step": 2,
        "block_size": 1,
        "params": {"input": "/r/f_####.png", "output": "/r/movie.mp4"},
    }
    answer = http.post("/api/v1/jobs", json=body, headers=AUTH).json()
    assert answer["tasks"] == 1
    (task,) = store.list_tasks(answer["id"])
    assert (task.block.start, task.block.end, task.block.step) == (1, 47, 2)
    assert store.get_job(answer["id"]).spec.block_size == 24


@pytest.mark.parametrize("start,end,params", [(-2, 2, {}), (1, 5, {"first_frame": -1})])
def test_povray_refuses_negative_frames_at_submit(api, start, end, params):
    http, store = api
    body = {
        "renderer": "povray",
        "scene": "/proj/scene.pov",
        "start": start,
        "end": end,
        "check_scene": False,
        "params": {"output": "/r/shot.png", **params},
    }
    assert "negative frames" in refused(http.post("/api/v1/jobs", json=body, headers=AUTH), 400)
    assert store.list_jobs() == []


def test_povray_refuses_frames_outside_its_animation_at_submit(api):
    http, _ = api
    body = {
        "renderer": "povray",
        "scene": "/proj/scene.pov",
        "start": 1,
        "end": 20,
        "check_scene": False,
        "params": {"output": "/r/shot.png", "first_frame": 1, "last_frame": 10},
    }
    assert "outside the animation" in refused(
        http.post("/api/v1/jobs", json=body, headers=AUTH), 400
    )
    body["end"] = 10
    assert http.post("/api/v1/jobs", json=body, headers=AUTH).status_code == 201
