"""The controller the master runs forgets old completed task ids (ipyparallel's keeps them all).

A real master runs its controller as ``python -m drqueue.master.ipcontroller`` with
``hub_completed_kept = 5``; after 40 tasks the Hub reports at most 2 x 5 completed ids for the
engine, where ipyparallel's own Hub would report every one.
"""

from __future__ import annotations

import pytest
from farm import Farm

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
