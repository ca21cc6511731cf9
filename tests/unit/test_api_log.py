"""The log route serves only regular files inside the logs directory, in bounded chunks.

Renders write their own logs, so a hostile render can swap its ``$DRQUEUE_LOGFILE`` for a
symlink to the master's token, a FIFO, a device, a hard link or a huge sparse file.  Each test
stores a task that ran with its log under the real logs directory of an in-process API over a
real SQLite store, makes the file what a render could, and asks the route for it.  One test has
the real runner run a real shell render that does the swap itself.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from _api import TestClient

from drqueue.config import Config
from drqueue.master.api import LOG_CHUNK_BYTES, create_app
from drqueue.master.dispatcher import task_spec
from drqueue.models import JobSpec, split_frames
from drqueue.slave.runner import run_task
from drqueue.store.sqlite import SQLiteStore

#: The master's admin token, in its etc/token as on a real master: what a render is after.
SECRET = "the-master-token-never-leaves"
AUTH = {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture()
def api(tmp_path):
    config = Config(root=tmp_path)
    config.ensure_dirs()
    config.token_file.write_text(SECRET + "\n")
    store = SQLiteStore(config.db_dir / "drqueue.sqlite")
    http = TestClient(create_app(store, None, config, SECRET))
    yield http, store, config
    http.close()
    store.close()


def ran(store, config: Config, frames: int = 1) -> tuple[int, Path]:
    """A job whose task 0 (frame 1) was dispatched with its log at the path the dispatcher uses."""
    job_id = store.create_job(
        JobSpec("shell", 1, frames, params={"cmd": "true"}), split_frames(1, frames)
    )
    task = store.get_task(job_id, 0)
    log_path = config.logs_dir / str(job_id) / "0.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    assert store.mark_dispatched(task.id, uuid.uuid4().hex, 0, "render01", str(log_path))
    return job_id, log_path


def get_log(http, job_id: int, **params):
    return http.get(f"/api/v1/jobs/{job_id}/log", params={"frame": 1, **params}, headers=AUTH)


def assert_refused(response) -> None:
    assert 400 <= response.status_code < 500, response.status_code
    assert SECRET not in response.text and "root:" not in response.text
    assert response.json()["error"] == "Forbidden", response.json()
    assert "\n" not in response.json()["detail"]


def test_a_plain_log_is_served_whole_with_its_size(api):
    http, store, config = api
    job_id, log_path = ran(store, config)
    log_path.write_bytes(b"frame 1 rendered\n")
    response = get_log(http, job_id)
    assert response.status_code == 200
    assert response.text == "frame 1 rendered\n"
    assert response.headers["X-Log-Size"] == "17" and response.headers["X-Log-Offset"] == "0"


def test_a_log_swapped_for_a_symlink_to_the_token_is_refused(api):
    http, store, config = api
    job_id, log_path = ran(store, config)
    log_path.symlink_to(config.token_file)
    assert_refused(get_log(http, job_id))


def test_a_symlink_to_etc_passwd_and_to_dev_zero_are_refused(api):
    http, store, config = api
    for target in ("/etc/passwd", "/dev/zero"):
        job_id, log_path = ran(store, config)
        log_path.symlink_to(target)
        assert_refused(get_log(http, job_id))


def test_a_symlinked_log_directory_is_refused(api):
    """The render owns its job's log directory too: swapping the directory is the same attack."""
    http, store, config = api
    job_id, log_path = ran(store, config)
    elsewhere = config.etc_dir  # holds `token`; make it look like a task log
    (elsewhere / "0.log").symlink_to(config.token_file)
    os.rmdir(log_path.parent)
    log_path.parent.symlink_to(elsewhere)
    assert_refused(get_log(http, job_id))


def test_a_hard_link_to_the_token_is_refused(api):
    http, store, config = api
    job_id, log_path = ran(store, config)
    os.link(config.token_file, log_path)
    assert_refused(get_log(http, job_id))


def test_a_fifo_is_refused_at_once_and_health_stays_responsive(api):
    http, store, config = api
    job_id, log_path = ran(store, config)
    os.mkfifo(log_path)
    answers = []
    reader = threading.Thread(target=lambda: answers.append(get_log(http, job_id)), daemon=True)
    reader.start()
    reader.join(10)  # a blocking open would never return: no writer ever comes
    assert not reader.is_alive(), "the log route hung on a FIFO"
    assert_refused(answers[0])
    assert http.get("/api/v1/health").status_code == 200


def test_a_stored_log_path_outside_the_logs_directory_is_refused(api):
    http, store, config = api
    job_id = store.create_job(JobSpec("shell", 1, 1, params={"cmd": "true"}), split_frames(1, 1))
    task = store.get_task(job_id, 0)
    assert store.mark_dispatched(task.id, uuid.uuid4().hex, 0, "x", str(config.token_file))
    assert_refused(get_log(http, job_id))
    job_id, log_path = ran(store, config)
    store.fail_task(store.get_task(job_id, 0).id, "gone")  # ended: the next dispatch may set a path
    sneaky = str(config.logs_dir / ".." / "etc" / "token")
    task = store.get_task(job_id, 0)
    store.requeue_tasks(job_id, which="one", index=0)
    assert store.mark_dispatched(task.id, uuid.uuid4().hex, 0, "x", sneaky)
    assert_refused(get_log(http, job_id))


def test_a_huge_sparse_log_is_served_as_a_bounded_tail(api):
    http, store, config = api
    job_id, log_path = ran(store, config)
    size = 1 << 30
    with open(log_path, "wb") as out:
        out.truncate(size - 4)
        out.seek(size - 4)
        out.write(b"end\n")
    started = time.monotonic()
    response = get_log(http, job_id)
    assert response.status_code == 200
    assert len(response.content) == LOG_CHUNK_BYTES and response.content.endswith(b"end\n")
    assert response.headers["X-Log-Size"] == str(size)
    assert response.headers["X-Log-Offset"] == str(size - LOG_CHUNK_BYTES)
    assert time.monotonic() - started < 10
    # No request gets more than the cap, however it asks.
    assert get_log(http, job_id, limit=LOG_CHUNK_BYTES + 1).status_code == 422
    assert get_log(http, job_id, tail_bytes=1 << 30).status_code == 422


def test_a_log_is_paged_by_offset_and_limit(api):
    http, store, config = api
    job_id, log_path = ran(store, config)
    log_path.write_bytes(b"0123456789")
    page = get_log(http, job_id, offset=3, limit=4)
    assert page.content == b"3456" and page.headers["X-Log-Offset"] == "3"
    assert get_log(http, job_id, offset=8, limit=4).content == b"89"
    assert get_log(http, job_id, offset=50).content == b""
    assert get_log(http, job_id, tail_bytes=3).content == b"789"


def test_a_real_render_that_swaps_its_log_for_a_symlink_gets_nothing(api, tmp_path):
    """The runner runs a shell render that does `ln -sf TOKEN $DRQUEUE_LOGFILE`."""
    http, store, config = api
    job_id = store.create_job(
        JobSpec(
            "shell",
            1,
            1,
            params={"cmd": f"sh -c 'ln -sf {config.token_file} \"$DRQUEUE_LOGFILE\"'"},
        ),
        split_frames(1, 1),
    )
    job, task = store.get_job(job_id), store.get_task(job_id, 0)
    attempt = uuid.uuid4().hex
    log_path = str(config.logs_dir / str(job_id) / "0.log")
    assert store.mark_dispatched(task.id, attempt, 0, "render01", log_path)
    result = run_task(task_spec(job, task, attempt, log_path, config))
    assert result["exit_code"] == 0, result
    assert os.path.islink(log_path)  # the render did swap it
    store.record_result(attempt, result)
    assert_refused(get_log(http, job_id))


def test_the_engine_connection_file_is_served_only_as_a_regular_file(api):
    http, _, config = api
    config.engine_file.write_text('{"key": "k"}')
    assert http.get("/api/v1/farm/engine-connection", headers=AUTH).json() == {"key": "k"}
    config.engine_file.unlink()
    os.mkfifo(config.engine_file)
    assert_refused(http.get("/api/v1/farm/engine-connection", headers=AUTH))
