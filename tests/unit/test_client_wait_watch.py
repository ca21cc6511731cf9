"""Client.wait returns on every end and shows a progress bar only on a terminal; Client.watch
yields every event once, in order, across a master restart (issue 13), against the real API
over HTTP (no dispatcher: the states are set through the API as a user would)."""

from __future__ import annotations

import os
import pty
import queue
import subprocess
import sys
import threading

import pytest
from _live_api import TOKEN, live_api

import drqueue
from drqueue.models import JobSpec, split_frames
from drqueue.store.sqlite import SQLiteStore

SHELL = {"params": {"cmd": "true"}}


@pytest.fixture
def api(tmp_path):
    with live_api(tmp_path) as live:
        yield live


@pytest.fixture
def client(api):
    with drqueue.Client(api.url, TOKEN) as c:
        yield c


def test_wait_returns_a_stopped_job_silently_when_nothing_is_a_terminal(client, capfd):
    job = client.submit("shell", start=1, end=2, **SHELL)
    client.stop(job)
    ended = client.wait(job)
    assert isinstance(ended, drqueue.Job) and ended.status == "stopped"
    assert capfd.readouterr() == ("", "")


def test_wait_returns_a_job_whose_dependency_was_deleted_and_says_why(client):
    first = client.submit("shell", start=1, end=1, **SHELL)
    second = client.submit("shell", start=1, end=1, after=[first.id], **SHELL)
    client.delete_job(first, force=True)
    ended = client.wait(second, progress=False)
    assert ended.status == "waiting"
    assert client.stalled_by(ended) == f"waiting for job {first.id} (deleted: it will never finish)"


def test_wait_shows_a_progress_bar_on_a_terminal(client, api):
    job = client.submit("shell", start=1, end=2, **SHELL)
    client.stop(job)
    script = (
        "import drqueue, sys\n"
        f"job = drqueue.Client({api.url!r}, {TOKEN!r}).wait({job.id})\n"
        "print('ENDED', job.status)\n"
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.wait(30) == 0
    text = seen.decode(errors="replace")
    assert f"job {job.id}" in text and "0/2" in text and "stopped" in text, text
    assert "ENDED stopped" in text


def test_watch_yields_every_event_once_in_order_across_a_master_restart(tmp_path):
    """Events made while the master is down arrive after it is back, none twice, none lost."""
    seen: queue.Queue = queue.Queue()
    stop = threading.Event()

    def watch(url: str) -> None:
        with drqueue.Client(url, TOKEN) as watcher:
            for event in watcher.watch(since=0, reconnect_for=60):
                seen.put(event)
                if stop.is_set():
                    return

    def take(count: int) -> list[drqueue.Event]:
        return [seen.get(timeout=30) for _ in range(count)]

    with live_api(tmp_path) as first:
        port = int(first.url.rsplit(":", 1)[1])
        with drqueue.Client(first.url, TOKEN) as client:
            client.submit("shell", start=1, end=1, **SHELL)  # an event before the watch
            thread = threading.Thread(target=watch, args=(first.url,), daemon=True)
            thread.start()
            before = take(1)
            for _ in range(3):
                client.submit("shell", start=1, end=1, **SHELL)
            during = take(3)
    # The master is gone; the store gets events it will find when it is back.
    store = SQLiteStore(tmp_path / "db.sqlite")
    for _ in range(600):  # more than the stream sends in one tick (500)
        store.create_job(JobSpec(renderer="shell", start=1, end=1), split_frames(1, 1))
    store.close()
    with live_api(tmp_path, port=port) as second, drqueue.Client(second.url, TOKEN) as client:
        after_restart = take(600)
        stop.set()
        client.submit("shell", start=1, end=1, **SHELL)
        last = take(1)
        thread.join(30)
    ids = [event.id for event in before + during + after_restart + last]
    assert ids == sorted(set(ids)) and len(ids) == 605
    assert all(event.kind == "job.submitted" for event in before + during + after_restart)
    assert seen.empty()


def test_watch_of_one_job_yields_only_its_events(client):
    job = client.submit("shell", start=1, end=1, **SHELL)
    other = client.submit("shell", start=1, end=1, **SHELL)
    events = client.watch(job)
    client.stop(other)
    client.stop(job)
    first = next(events)
    assert (first.job_id, first.kind) == (job.id, "job.stopped")
    events.close()
