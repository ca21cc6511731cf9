"""The one process-tree killer (drqueue.procs.stop_process_tree), on real process trees."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import psutil
import pytest

from drqueue.procs import child_pids, gpu_environment, new_process_group, stop_process_tree

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the trees are built with sh")


def marker() -> str:
    """A sleep duration that is also a unique marker in the process table."""
    return f"299.7{random.randrange(10**8, 10**9)}"


def running(mark: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and mark in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {condition}")


def start(script: str) -> subprocess.Popen:
    return subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, **new_process_group())


def test_a_child_reparented_away_from_the_tree_still_goes_with_its_process_group():
    orphan, leader = marker(), marker()
    # The subshell starts a sleep and exits: that sleep is nobody's descendant any more (init
    # adopted it), but it is still in the group the tree's root leads.
    proc = start(f"(sleep {orphan} &); exec sleep {leader}")
    wait_for(lambda: running(orphan) and running(leader))
    adopted = running(orphan)[0]
    assert adopted.pid not in {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
    stop_process_tree(proc.pid, timeout=5)
    assert proc.poll() is not None
    assert running(orphan) == [] and running(leader) == []


def test_a_child_that_left_the_group_still_goes_as_a_descendant():
    escaped = marker()
    proc = start(f"setsid sleep {escaped} & wait")
    wait_for(lambda: running(escaped))
    stop_process_tree(proc.pid, timeout=5)
    assert running(escaped) == []


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout():
    stubborn = marker()
    proc = start(f"trap '' TERM; sleep {stubborn} & wait")
    wait_for(lambda: running(stubborn))
    started = time.monotonic()
    stop_process_tree(proc.pid, timeout=1)
    took = time.monotonic() - started
    assert proc.poll() is not None
    assert running(stubborn) == []
    assert 1 <= took < 5


def test_many_trees_stop_at_once():
    marks = [marker() for _ in range(4)]
    procs = [start(f"trap '' TERM; sleep {mark}") for mark in marks]
    wait_for(lambda: all(running(mark) for mark in marks))
    started = time.monotonic()
    stop_process_tree(*(proc.pid for proc in procs), timeout=1)
    assert time.monotonic() - started < 3  # one timeout, not four
    assert all(running(mark) == [] for mark in marks)


def test_a_process_already_gone_is_no_error():
    proc = start("exit 0")
    proc.wait()
    stop_process_tree(proc.pid, timeout=1)


def test_gpu_environment_names_the_devices_in_every_vendors_variable():
    assert gpu_environment(["0", "2"]) == {
        "CUDA_VISIBLE_DEVICES": "0,2",
        "HIP_VISIBLE_DEVICES": "0,2",
        "ROCR_VISIBLE_DEVICES": "0,2",
        "GPU_DEVICE_ORDINAL": "0,2",
        "ONEAPI_DEVICE_SELECTOR": "*:0,2",
    }


def test_child_pids_are_this_process_children_as_psutil_finds_them():
    """child_pids reads the children's list the kernel keeps (Linux), not every process: it
    must name exactly the children psutil finds by its scan, those started from any thread."""
    import threading

    started: list[subprocess.Popen] = []
    procs = [subprocess.Popen(["sleep", "30"]) for _ in range(3)]
    thread = threading.Thread(target=lambda: started.append(subprocess.Popen(["sleep", "30"])))
    thread.start()
    thread.join()
    procs += started
    try:
        mine = {proc.pid for proc in procs}
        assert mine <= child_pids()
        assert child_pids() == {child.pid for child in psutil.Process().children()}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert not mine & child_pids()
