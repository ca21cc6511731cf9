"""The slaves' heartbeat period, set by the master, with a real master and real slaves.

The master's budget is a fifth of a heartbeat a second, so one slave online is told to call
every 5 s and two every 10 s (``next_seconds = online / heartbeats_per_second``).  The tests
count the heartbeats the master answered (``GET /farm``'s ``heartbeats``): a slave whose engines
are registered calls at the period it was told (give or take the launcher's 20 % jitter), and
one whose engine runs but is not registered calls every second whatever it was told.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from farm import Farm, wait_for

from drqueue.slave.launcher import CHECK_SECONDS, HEARTBEAT_JITTER

#: Heartbeats a second the test's master wants: 5 s for one slave, 10 s for two.
BUDGET = 0.2

#: Put on an engine's PYTHONPATH: it sleeps before ipyparallel starts, so it runs but never
#: registers (a hung engine start).  Only engines have DRQUEUE_ENGINE_UUID: the slave itself
#: imports this file too and goes on.
NEVER_REGISTERS = """\
import os
import time

if os.environ.get("DRQUEUE_ENGINE_UUID"):
    time.sleep(600)
"""


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    farm = Farm(tmp_path_factory.mktemp("beat"), heartbeats_per_second=repr(BUDGET))
    try:
        farm.start_master()
        farm.add_slave("alpha")
        farm.wait_engines(1)
        yield farm
    finally:
        farm.stop()


def heartbeats(farm: Farm) -> int:
    return farm.client.farm().heartbeats


def seconds_for_calls(farm: Farm, calls: int, timeout: float = 90) -> float:
    """Seconds from before the master answers its next heartbeat until it has answered
    *calls* (that one included): at least the time between the first of them and the last."""
    seen = heartbeats(farm)
    deadline = time.monotonic() + timeout
    while True:
        start = time.monotonic()
        if heartbeats(farm) != seen:
            break
        assert start < deadline, f"no heartbeat in {timeout} s"
        time.sleep(0.05)
    # start is before a read that saw a new call: before that call (and the ones after it)
    wait_for(lambda: heartbeats(farm) >= seen + calls, timeout, 0.05, f"{calls} heartbeats")
    return time.monotonic() - start


def test_a_slave_calls_at_the_period_the_master_sets_for_the_slaves_online(farm):
    wait_for(
        lambda: farm.client.farm().heartbeat_seconds == 5.0,
        30,
        0.2,
        "the master to count alpha online and set 5 s",
    )
    # alpha's engine is registered and it was told 5 s: four calls are three waits of 5 s
    # give or take the jitter, on the launcher's ticks a second apart (at 1 s: about 3 s).
    shortest = 5.0 * (1 - HEARTBEAT_JITTER) - CHECK_SECONDS / 2
    assert seconds_for_calls(farm, 4) >= 3 * shortest

    farm.add_slave("beta")
    farm.wait_engines(2)
    wait_for(
        lambda: farm.client.farm().heartbeat_seconds == 10.0,
        30,
        0.2,
        "the master to count two slaves online and set 10 s",
    )
    assert farm.client.heartbeat("someone", []).next_seconds == 10.0


def test_a_slave_with_an_engine_not_registered_calls_every_second(farm, tmp_path: Path):
    if "beta" not in farm.slaves:  # the test before failed before it started beta
        farm.add_slave("beta")
    farm.wait_engines(2)
    wait_for(lambda: farm.client.farm().heartbeat_seconds == 10.0, 30, 0.2, "10 s for two")
    hang = tmp_path / "hang"
    hang.mkdir()
    (hang / "sitecustomize.py").write_text(NEVER_REGISTERS)
    path = os.pathsep.join(p for p in (str(hang), os.environ.get("PYTHONPATH")) if p)
    farm.add_slave("gamma", env={"PYTHONPATH": path, "DRQUEUE_ENGINE_REGISTER_TIMEOUT": "600"})
    wait_for(lambda: farm.engine_pids("gamma"), 30, 0.1, "gamma's engine to start")
    # alpha and beta call every 10 s (a fifth of a call a second together); gamma, told 10 s
    # too, calls every second while its engine is not registered: 12 calls take about 9 s,
    # where at gamma's 10 s they would take about 37 s.
    assert seconds_for_calls(farm, 12) < 16
    assert farm.client.farm().engines == 2  # gamma's engine never registered meanwhile
    assert farm.client.farm().heartbeat_seconds == 10.0
