"""The dispatcher keeps its books as things change (issue 14: a round costs what changed).

A real :class:`~drqueue.master.dispatcher.Dispatcher` over a real SQLite store and a real
ipyparallel cluster (controller and engines as processes on 127.0.0.1), stepped round by round
in this thread: after every round, the idle engines, the engines probing or with tasks queued
behind their running one, and the tasks out per job, owner and computer that the dispatcher
keeps must be what a walk over its engines and tasks out finds (:meth:`Dispatcher.recount`).
The rounds cover registrations, info probes, sends, prefetched short tasks, results, a stopped
job's tasks taken back, and engines that unregister mid-task.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Any

import pytest

from drqueue.config import Config
from drqueue.master.dispatcher import Dispatcher
from drqueue.models import JobSpec, split_frames
from drqueue.store import open_store


def books(dispatcher: Dispatcher) -> tuple[Any, ...]:
    return (
        set(dispatcher._idle),
        set(dispatcher._probing),
        set(dispatcher._queued_behind),
        +Counter(dispatcher._out_by_job),
        +Counter(dispatcher._out_by_owner),
        +Counter(dispatcher._out_by_computer),
    )


def step_checked(dispatcher: Dispatcher) -> None:
    dispatcher.step()
    kept = books(dispatcher)
    dispatcher.recount()
    assert kept == books(dispatcher)
    walked = {e.slot.computer for e in dispatcher.engines.values() if e.slot}
    assert dispatcher.online_computers() == walked  # what GET /computers reads, kept too


def shell_job(store: Any, owner: str, cmd: str, frames: int) -> int:
    spec = JobSpec(
        name=f"{owner}-{frames}",
        renderer="shell",
        start=1,
        end=frames,
        owner=owner,
        params={"cmd": cmd},
    )
    return store.create_job(spec, split_frames(1, frames))


@pytest.fixture
def cluster(tmp_path):
    import ipyparallel as ipp

    cluster = ipp.Cluster(
        n=0,
        profile_dir=str(tmp_path / "ipp"),
        log_level=30,
        controller_args=["--nodb"],
        controller_ip="127.0.0.1",
        shutdown_atexit=True,
    )
    rc = cluster.start_and_connect_sync()
    try:
        yield cluster, rc
    finally:
        with contextlib.suppress(Exception):
            rc.close()
        with contextlib.suppress(Exception):
            cluster.stop_cluster_sync()


def until(dispatcher: Dispatcher, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        step_checked(dispatcher)
        dispatcher._wake.wait(0.02)
        dispatcher._wake.clear()


def test_the_kept_books_match_a_walk_after_every_round(tmp_path, cluster):
    ipp_cluster, rc = cluster
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    dispatcher = Dispatcher(store, Config(root=tmp_path / "farm"))
    dispatcher.client = rc
    rc._registration_callbacks.append(dispatcher._engines_changed)
    try:
        ipp_cluster.start_engines_sync(n=3)
        rc.wait_for_engines(3, timeout=120)
        until(dispatcher, lambda: len(dispatcher._idle) == 3, 60, "3 engines probed and idle")

        short = shell_job(store, "ann", "true", 40)  # short tasks: prefetched, 4 deep
        slow = shell_job(store, "bob", "sleep 30", 2)  # runs until stopped
        until(dispatcher, lambda: store.get_job(short).counts.finished == 40, 120, "40 short")
        assert dispatcher.stats.prefetched > 0  # the queued-behind books were exercised
        until(dispatcher, lambda: store.get_job(slow).counts.running == 2, 60, "2 slow running")

        # Deleted while it runs: its tasks are interrupted on their engines (a SIGINT each).
        dispatcher.kill(store.delete_job(slow, force=True))
        until(
            dispatcher,
            lambda: not dispatcher._out_by_job.get(slow),
            60,
            "the deleted job's tasks to come back",
        )
        more = shell_job(store, "cat", "sleep 0.2", 12)
        # A second engine set joins, then leaves with its tasks: lost engines' books go too.
        second = ipp_cluster.start_engines_sync(n=2)
        rc.wait_for_engines(5, timeout=120)
        until(dispatcher, lambda: len(dispatcher.engines) == 5, 60, "5 engines known")
        until(
            dispatcher, lambda: store.get_job(more).counts.finished >= 2, 120, "more tasks ending"
        )
        ipp_cluster.stop_engines_sync(second)
        until(dispatcher, lambda: len(dispatcher.engines) == 3, 120, "2 engines lost")
        until(dispatcher, lambda: store.get_job(more).counts.finished == 12, 120, "12 finished")
        assert not dispatcher.outstanding and len(dispatcher._idle) == 3
    finally:
        store.close()
