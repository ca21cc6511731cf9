"""`drqueue submit --wait` against a real farm returns for every end (issue 10, 3c): a job stopped
while the user waits, and a job whose dependency failed, which keeps waiting with a reason."""

from __future__ import annotations

import subprocess
import sys

import pytest
from farm import Farm, wait_for


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    farm = Farm(tmp_path_factory.mktemp("farm"))
    farm.start_master()
    farm.add_slave("alpha")
    farm.wait_engines(1)
    yield farm
    farm.stop()


def submit_waiting(farm: Farm, *args: str) -> subprocess.Popen:
    """`drqueue submit shell ARGS --wait` as a user runs it, in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "drqueue.cli.main", "submit", "shell", *args, "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=farm.env,
    )


def ended(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, int(out.split()[0]), err.strip().splitlines()[-1]


def test_wait_returns_when_the_job_is_stopped_while_it_waits(farm):
    proc = submit_waiting(farm, "-s", "1", "-e", "50", "--cmd", "sleep 0.5")
    job_id = wait_for(
        lambda: [j["id"] for j in farm.client.jobs() if j["counts"]["running"]], 60, 0.1, "a task"
    )[0]
    farm.client.job_action(job_id, "stop")
    code, printed, last = ended(proc)
    assert (code, printed) == (1, job_id)
    assert f"job {job_id} stopped:" in last and f"drqueue job continue {job_id}" in last
    farm.client.delete_job(job_id, force=True)


def test_wait_returns_when_a_dependency_failed_and_the_job_keeps_waiting(farm):
    broken = farm.client.submit(
        "shell", None, start=1, end=1, params={"cmd": "sh -c 'exit 3'"}, retries=0
    )["id"]
    middle = farm.client.submit(
        "shell", None, start=1, end=1, params={"cmd": "true"}, after=[broken]
    )["id"]
    proc = submit_waiting(farm, "-s", "1", "-e", "1", "--cmd", "true", "--after", str(middle))
    code, job_id, last = ended(proc, 90)
    assert code == 1
    expected = (
        f"waiting for job {middle} (waits for job {broken} (ended in error: requeue its tasks "
        "to go on))"
    )
    assert last.endswith(expected)
    assert farm.client.job(job_id)["status"] == "waiting"
    # The master says the same in the job's waiting reason.
    wait_for(lambda: farm.client.job(job_id)["waiting_reason"] == expected, 30, 0.2, "the reason")
    for job in (job_id, middle, broken):
        farm.client.delete_job(job, force=True)
