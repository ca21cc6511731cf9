"""Slaves and their tokens, with a real master and real slave processes.

A slave started with a wrong token says so loudly (an ERROR naming the master and "401/403:
check DRQUEUE_TOKEN"), once, not at every heartbeat; a slave started with a slave token made by
``drqueue token create --role slave`` registers and renders, and its engines (so its renders)
never hold the token, nor can a render read the master's token through its own log.
"""

from __future__ import annotations

import psutil
import pytest
from farm import Farm, wait_for

from drqueue.errors import Forbidden

#: What the launcher logs when the master refuses its token.
REFUSED = "401/403: check DRQUEUE_TOKEN"


@pytest.fixture()
def master(tmp_path):
    farm = Farm(tmp_path / "farm")
    farm.start_master()
    yield farm
    if farm.master_proc.poll() is not None:  # say why, in the failed test's report
        print(f"the master exited {farm.master_proc.returncode}:")
        print((farm.root / "master.out").read_text()[-4000:])
    farm.stop()


def engines_of(farm: Farm, slave: str) -> list[psutil.Process]:
    return [psutil.Process(pid) for pid in farm.engine_pids(slave)]


def test_a_slave_with_a_wrong_token_logs_one_error_naming_the_master(master):
    proc = master.add_slave("wrongtoken", env={"DRQUEUE_TOKEN": "not-a-token-of-this-master"})
    out = master.root / "slave-wrongtoken.out"

    def refused_lines() -> list[str]:
        assert proc.poll() is None, out.read_text()
        return [line for line in out.read_text().splitlines() if REFUSED in line]

    first = wait_for(refused_lines, 60, 0.2, "the slave to log the refused token")
    assert " ERROR " in first[0] and master.config.master_url in first[0], first
    # Its engine uses the local connection file, so it registers all the same; the several
    # seconds that takes are several failed heartbeats (one a second): the error is not repeated.
    master.wait_engines(1)
    assert len(refused_lines()) == 1, out.read_text()


def test_a_hostile_render_on_a_slave_token_slave_gets_no_secret(master, tmp_path):
    """The slave runs on a slave token; the render reads its environment, then swaps its own
    log for a symlink to the master's token file: neither gives it a token."""
    made = master.cli("token", "create", "--role", "slave", "--name", "slaves", check=True)
    token = made.stdout.strip()
    master.add_slave("tokened", env={"DRQUEUE_TOKEN": token})
    master.wait_engines(1)
    for engine in engines_of(master, "tokened"):
        assert "DRQUEUE_TOKEN" not in engine.environ(), engine.pid
    out = tmp_path / "env.txt"
    admin_token_file = master.config.token_file
    job = master.client.submit(
        "shell",
        None,
        start=1,
        end=1,
        params={"cmd": f"sh -c 'env > {out}; ln -sf {admin_token_file} \"$DRQUEUE_LOGFILE\"'"},
    )
    assert master.wait_job(job["id"])["status"] == "finished"
    assert token not in out.read_text()
    with pytest.raises(Forbidden, match="refused"):
        master.client.log(job["id"], 1)
    assert master.client.health()["status"] == "ok"
    assert REFUSED not in (master.root / "slave-tokened.out").read_text()
