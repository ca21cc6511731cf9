"""The controller the master runs forgets old completed task ids and gone engines
(ipyparallel's keeps them all).

A real master runs its controller as ``python -m drqueue.master.ipcontroller`` with
``hub_completed_kept = 5``; after 40 tasks the Hub reports at most 2 x 5 completed ids for the
engine, where ipyparallel's own Hub would report every one.  An engine killed is restarted by
its slave under a new id: the Hub drops the old one's completed ids when it unregisters it,
and the engine itself once its tasks are failed, where ipyparallel's Hub lists it for good.
"""

from __future__ import annotations

import os
import signal

import pytest
from farm import Farm, wait_for

from drqueue.master.ipcontroller import RecentList, RecentLists, RecentSet


def test_recent_set_and_lists_keep_the_newest():
    seen = RecentSet(3)
    for n in [1, 2, 2, 3, 4, 5]:
        seen.add(n)
    assert sorted(seen) == [3, 4, 5] and 1 not in seen
    lists = RecentLists(2)
    lists[7] = []
    for n in range(5):
        lists[7].append(n)
    assert isinstance(lists[7], RecentList) and lists[7] == [3, 4]


@pytest.fixture(scope="module")
def small_farm(tmp_path_factory):
    farm = Farm(tmp_path_factory.mktemp("controller-memory"), hub_completed_kept=5)
    try:
        farm.start_master()
        farm.add_slave("solo")
        farm.wait_engines(1)
        yield farm
    finally:
        farm.stop()


def test_hub_remembers_only_the_newest_completed_tasks(small_farm):
    import ipyparallel

    job = small_farm.client.submit(
        "shell", None, start=1, end=40, block_size=1, params={"cmd": "true"}
    )
    assert small_farm.wait_job(job["id"])["status"] == "finished"
    assert small_farm.client.farm()["finished"] >= 40
    rc = ipyparallel.Client(str(small_farm.config.client_file), timeout=30)
    try:
        status = rc.queue_status()
    finally:
        rc.close()
    completed = [v["completed"] for k, v in status.items() if k != "unassigned"]
    assert len(completed) == 1
    assert 1 <= completed[0] <= 10, status


def _hub_status(farm: Farm) -> dict[int, dict]:
    """The Hub's queue_status by engine id (a fresh ipyparallel Client each time)."""
    import ipyparallel

    rc = ipyparallel.Client(str(farm.config.client_file), timeout=30)
    try:
        status = rc.queue_status()
    finally:
        rc.close()
    return {int(k): v for k, v in status.items() if k != "unassigned"}


def test_hub_forgets_an_engine_that_is_gone(small_farm):
    job = small_farm.client.submit(
        "shell", None, start=1, end=12, block_size=1, params={"cmd": "true"}
    )
    assert small_farm.wait_job(job["id"])["status"] == "finished"
    (old_id, old), *others = _hub_status(small_farm).items()
    assert not others and old["completed"] >= 5, old
    (engine_pid,) = small_farm.engine_pids("solo")
    os.kill(engine_pid, signal.SIGKILL)
    # Unregistered (missed heartbeats) and restarted by the slave under a new id: the old one's
    # completed ids are dropped at once (ipyparallel's Hub keeps them and lists it for good).
    status = wait_for(
        lambda: (s := _hub_status(small_farm)).get(old_id, {}).get("completed") == 0 and s,
        timeout=60,
        what=f"engine {old_id}'s completed ids dropped",
    )
    assert all(v["completed"] <= 10 for v in status.values()), status
    # The rest of it once the Hub has failed its tasks, registration_timeout (30 s) later.
    wait_for(
        lambda: old_id not in _hub_status(small_farm),
        timeout=90,
        interval=1,
        what=f"engine {old_id} forgotten",
    )
    small_farm.wait_engines(1)
    job = small_farm.client.submit(
        "shell", None, start=1, end=3, block_size=1, params={"cmd": "true"}
    )
    assert small_farm.wait_job(job["id"])["status"] == "finished"
