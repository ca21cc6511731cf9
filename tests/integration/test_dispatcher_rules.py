"""The dispatcher's rules about slaves that are not at fault, on a real small farm.

- A slave whose info probe fails is probed again with a back-off, not every round.
- A task that cannot write its log (the shared storage's fault, not the slave's) goes back to
  the queue with no failure counted: no host is blocked, no retry is used, no task ends in
  error, and the job finishes once the storage is fixed.

The farm is conftest's: a master and two one-slot slaves for the module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from farm import Farm, unwritable_folder, wait_for


def probe_warnings(farm: Farm) -> list[str]:
    text = (farm.root / "master.out").read_text(errors="replace")
    return [line for line in text.splitlines() if "info probe failed" in line]


def test_a_slave_whose_info_probe_fails_is_probed_again_with_a_back_off(farm):
    """A bare engine whose environment breaks collect_info (DRQUEUE_GPUS is not a number)."""
    env = {**farm.env, "DRQUEUE_GPUS": "not-a-number", "DRQUEUE_SLAVE_NAME": "broken"}
    engine = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ipyparallel.engine",
            f"--file={farm.root / 'ipython' / 'security' / 'ipcontroller-engine.json'}",
            f"--profile-dir={farm.root / 'ipython'}",
            "--log-level=WARN",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: probe_warnings(farm), 60, 0.1, "the first failed probe")
        first = time.monotonic()
        # Without a back-off the probe was resent every round (about 20 ms): over 4 s that is
        # some 200 probes and as many WARNINGs. With it (0.5, 1, 2 s ...) a handful at most.
        wait_for(lambda: time.monotonic() - first > 4, 10, 0.2, "four seconds of probing")
        warnings = probe_warnings(farm)
        assert 1 <= len(warnings) <= 4, warnings
        assert "next in" in warnings[0]
        # The broken engine never becomes a slot, and the healthy slaves still work.
        assert farm.client.farm()["engines"] == 2
        job = farm.client.submit("shell", None, start=1, end=2, params={"cmd": "true"})
        assert farm.wait_job(job["id"])["status"] == "finished"
    finally:
        engine.terminate()
        engine.wait(20)


def test_a_task_log_that_cannot_be_written_blames_no_slave(farm, tmp_path):
    """The job's log folder cannot be written: every attempt fails before the render starts."""
    out = tmp_path / "frames.txt"
    blocked_for: dict[str, int] = {}
    # The next job's id is one more than the newest; its log folder cannot be made.
    newest = max((job["id"] for job in farm.client.jobs()), default=0)
    logs = Path(farm.config.logs_dir)
    spoiler = logs / str(newest + 1)
    spoiler.parent.mkdir(parents=True, exist_ok=True)
    # (Not a file or a link in its place: the runner replaces those, see test_log_squatting.)
    unwritable_folder(spoiler)
    job_id = farm.client.submit(
        "shell",
        None,
        start=1,
        end=6,
        retries=1,
        params={"cmd": f"sh -c 'echo $DRQUEUE_FRAME >> {out}'"},
    )["id"]
    assert job_id == newest + 1

    def requeued_without_failure() -> bool:
        tasks = farm.client.tasks(job_id)
        return sum(1 for t in tasks if t["attempts"] >= 2) >= 2

    wait_for(requeued_without_failure, 60, 0.1, "tasks tried again after the log failure")
    job = farm.client.job(job_id)
    tasks = farm.client.tasks(job_id)
    assert job["counts"]["error"] == 0, tasks
    assert job["counts"]["finished"] == 0
    assert not job.get("blocked_hosts"), job
    for task in tasks:
        assert task["state"] in ("queued", "dispatched", "running"), task
        if task["attempts"] and task["state"] == "queued":
            assert "cannot write the task log" in task["reason"], task
            assert "not counted as a failure" in task["reason"], task
    events = farm.client.events(job_id=job_id)
    assert any(e["kind"] == "job.held" for e in events), events
    blocked_for = {e["computer"]: 1 for e in events if e["kind"] == "host.blocked"}
    assert not blocked_for, events

    # The storage is fixed: the job finishes on the retries it never used.
    os.rmdir(spoiler)
    job = farm.wait_job(job_id, 120)
    assert job["status"] == "finished", job
    assert sorted(int(x) for x in out.read_text().split()) == [1, 2, 3, 4, 5, 6]
    assert all(t["failures"] == 0 for t in farm.client.tasks(job_id) if "failures" in t)
