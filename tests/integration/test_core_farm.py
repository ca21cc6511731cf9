"""The core farm, end to end: real master, controller, slaves and renders; nothing mocked.

One farm (slaves alpha and beta, one slot each) serves the whole module, and the
module runs twice: on the SQLite store, then on MongoDB over the wire (ids end in
[sqlite] and [mongo]).  Tests that kill things come last, and each test starts on an
idle farm with two engines.  Frames are appended to a file by the render itself, so
a test can see what ran; delivery is at least once, so a frame may appear there
twice, but the store must count it finished exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from farm import FARM_STORES, Farm, two_slave_farm, wait_for

from drqueue.models import Counts
from drqueue.store import Store, open_store
from drqueue.store.policy import count

# -- helpers -----------------------------------------------------------------------------------------


def submit_shell(farm: Farm, cmd: str, start: int = 1, end: int = 1, **options: Any) -> int:
    return farm.client.submit("shell", None, start=start, end=end, params={"cmd": cmd}, **options)[
        "id"
    ]


def tasks_of(farm: Farm, job_id: int) -> list[dict[str, Any]]:
    return farm.client.tasks(job_id)


def unique_sleep() -> str:
    """A sleep duration that doubles as a unique marker in the process table."""
    return f"299.7{random.randrange(10**8, 10**9)}"


def marker_processes(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(marker in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def sleeping(marker: str) -> list[psutil.Process]:
    """The `sleep MARKER` processes (the shells around them excluded)."""
    result = []
    for proc in marker_processes(marker):
        try:
            if proc.name() == "sleep":
                result.append(proc)
        except psutil.Error:
            pass
    return result


def attempt_logs(farm: Farm, job_id: int, index: int) -> list[Path]:
    """The log files of every attempt of one task (``<index>.<attempt>.log``)."""
    return sorted((farm.config.logs_dir / str(job_id)).glob(f"{index}.*.log"))


def frames_in(path: Path) -> list[int]:
    return sorted(int(line) for line in path.read_text().split()) if path.exists() else []


def store_of(farm: Farm) -> Store:
    """The master's store (SQLite file or MongoDB database), opened to read: the tests write
    nothing to it."""
    return open_store(farm.config.store_url)


def assert_counts_agree(farm: Farm, job_id: int) -> dict[str, int]:
    """The job's counts equal what its tasks say, so nothing was counted twice."""
    job = farm.client.job(job_id)
    tasks = tasks_of(farm, job_id)
    by_state = {
        s: sum(t["state"] == s for t in tasks)
        for s in ("queued", "dispatched", "running", "finished", "error", "cancelled")
    }
    assert job["counts"] == {
        "total": len(tasks),
        "queued": by_state["queued"],
        "running": by_state["dispatched"] + by_state["running"],
        "finished": by_state["finished"],
        "error": by_state["error"],
        "cancelled": by_state["cancelled"],
    }
    return job["counts"]


def run_cli(
    farm: Farm, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`drqueue ARGS` with the farm's environment plus *env*, and a wide terminal for tables."""
    return subprocess.run(
        [sys.executable, "-m", "drqueue.cli.main", *args],
        capture_output=True,
        text=True,
        env={**farm.env, "COLUMNS": "250", **(env or {})},
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, f"expected a failure, got: {result.stdout}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    assert result.stdout == ""
    return lines[0]


def job_ids(farm: Farm) -> list[int]:
    return [job["id"] for job in farm.client.jobs()]


@pytest.fixture(scope="module", params=FARM_STORES)
def farm(request, tmp_path_factory, store_settings):
    """The module's farm on each store in turn; one farm per store, the first stopped before
    the second starts."""
    farm = two_slave_farm(
        tmp_path_factory.mktemp(f"farm-{request.param}"), **store_settings(request.param)
    )
    yield farm
    farm.stop()


@pytest.fixture(autouse=True)
def idle_farm(farm):
    """Each test starts with both engines up and nothing running, and leaves nothing running."""
    farm.wait_engines(2, timeout=120)
    yield farm
    for job in farm.client.jobs():
        if job["status"] not in ("finished", "error", "cancelled", "stopped"):
            farm.client.job_action(job["id"], "kill")
    wait_for(
        lambda: all(job["counts"]["running"] == 0 for job in farm.client.jobs()),
        60,
        what="every task off its engine",
    )


# -- queries -------------------------------------------------------------------------------------------


def test_queries_in_tables_and_json(farm, tmp_path):
    token = f"rendered-{random.randrange(10**9)}"
    job_id = submit_shell(
        farm, f"sh -c 'echo {token} frame $DRQUEUE_FRAME'", 1, 3, name="query-me", owner="ann"
    )
    farm.wait_job(job_id)

    listing = run_cli(farm, "jobs", "--all")  # by default `drqueue jobs` shows active jobs
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.split()[:1] == [str(job_id)])
    assert row.split()[1:4] == ["query-me", "ann", "shell"]
    assert "finished" in row and "3/3" in row
    active = run_cli(farm, "jobs")
    assert active.returncode == 0, active.stderr
    assert str(job_id) not in [line.split()[0] for line in active.stdout.splitlines() if line]
    jobs = json.loads(run_cli(farm, "jobs", "--all", "--json").stdout)
    mine = next(job for job in jobs if job["id"] == job_id)
    assert (mine["name"], mine["status"], mine["counts"]["finished"]) == ("query-me", "finished", 3)

    show = run_cli(farm, "job", "show", str(job_id))
    assert show.returncode == 0, show.stderr
    assert f"{job_id} query-me" in show.stdout
    assert "3/3 finished, 0 running, 0 queued, 0 error, 0 cancelled" in show.stdout
    assert "1-3 step 1, 1 per task" in show.stdout
    shown = json.loads(run_cli(farm, "job", "show", str(job_id), "--json").stdout)
    assert shown["counts"] == {
        "total": 3,
        "queued": 0,
        "running": 0,
        "finished": 3,
        "error": 0,
        "cancelled": 0,
    }
    assert shown["params"]["cmd"].startswith("sh -c 'echo rendered-")

    table = run_cli(farm, "tasks", str(job_id))
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()[1:] if line.strip()]
    assert [r[:3] for r in rows] == [
        ["0", "1", "finished"],
        ["1", "2", "finished"],
        ["2", "3", "finished"],
    ]
    assert all(
        r[3] == "100%" and r[4] in ("alpha", "beta") and r[5] == "1" and r[6] == "0" for r in rows
    )
    tasks = json.loads(run_cli(farm, "tasks", str(job_id), "--json").stdout)
    assert [(t["index"], t["start"], t["state"], t["exit_code"]) for t in tasks] == [
        (0, 1, "finished", 0),
        (1, 2, "finished", 0),
        (2, 3, "finished", 0),
    ]
    assert all(t["tail"] == f"{token} frame {t['start']}" for t in tasks)
    page = run_cli(farm, "tasks", str(job_id), "--offset", "1", "--limit", "1", "--json")
    assert [t["index"] for t in json.loads(page.stdout)] == [1]
    assert (
        json.loads(run_cli(farm, "tasks", str(job_id), "--state", "queued", "--json").stdout) == []
    )

    log = run_cli(farm, "log", str(job_id), "2")
    assert log.returncode == 0, log.stderr
    assert f"{token} frame 2\n" in log.stdout
    assert log.stdout.startswith(f"# drqueue: job {job_id} task 1 on ")
    assert f"{token} frame 1" not in log.stdout

    computers = run_cli(farm, "computers")
    assert computers.returncode == 0, computers.stderr
    names = {
        line.split()[0]: line.split()[1]
        for line in computers.stdout.splitlines()[1:]
        if line.strip()
    }
    assert names == {"alpha": "online", "beta": "online"}
    listed = json.loads(run_cli(farm, "computers", "--json").stdout)
    assert sorted((c["name"], c["online"], c["enabled"], c["slots"]) for c in listed) == [
        ("alpha", True, True, 1),
        ("beta", True, True, 1),
    ]

    alpha = run_cli(farm, "computer", "show", "alpha")
    assert alpha.returncode == 0, alpha.stderr
    assert any(line.split() == ["name", "alpha"] for line in alpha.stdout.splitlines())
    assert any(line.split() == ["online", "yes"] for line in alpha.stdout.splitlines())
    data = json.loads(run_cli(farm, "computer", "show", "alpha", "--json").stdout)
    assert (data["name"], data["online"], data["os"]) == ("alpha", True, "linux")
    assert "shell" in data["renderers"]
    assert data["cores"] == psutil.cpu_count(logical=True)


def test_progress_is_visible_while_a_task_runs(farm, tmp_path):
    flag = tmp_path / "go"
    job_id = submit_shell(
        farm, f"sh -c 'echo DRQUEUE_PROGRESS 0.5; while ! test -e {flag}; do sleep 0.1; done'"
    )
    task = wait_for(
        lambda: (t := tasks_of(farm, job_id)[0])["progress"] == 0.5 and t,
        30,
        what="progress 0.5 published by the engine",
    )
    assert task["state"] == "running"
    assert task["tail"] == "DRQUEUE_PROGRESS 0.5"
    flag.touch()
    assert farm.wait_job(job_id)["status"] == "finished"
    assert tasks_of(farm, job_id)[0]["progress"] == 1.0


# -- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "nosuch", "-s", "1", "-e", "2"], "unknown renderer 'nosuch'"),
        (
            ["submit", "shell", "--cmd", "true", "-s", "5", "-e", "1"],
            "end frame 1 is before start frame 5",
        ),
        (
            ["submit", "shell", "--cmd", "true", "-s", "1", "-e", "4", "-b", "0"],
            "--block must be at least 1 frame per task, not 0",
        ),
        (
            ["submit", "shell", "--cmd", "true", "-s", "1", "-e", "4", "--step", "0"],
            "--step must be at least 1, not 0",
        ),
        (
            ["submit", "shell", "--cmd", "true", "-s", "1", "-e", "4", "--env", "NOEQUALS"],
            "--env wants NAME=VALUE",
        ),
        (
            ["submit", "shell", "--cmd", "true", "-s", "1", "-e", "4", "--env", "1BAD=x"],
            "--env wants NAME=VALUE",
        ),
        (["submit", "blender", "/nope.blend", "-s", "1", "-e", "2"], "/nope.blend does not exist"),
        (["submit", "shell", "-s", "1", "-e", "2"], "needs the parameter 'cmd'"),
        (["submit", "shell", "--cmd", "sh -c 'unbalanced", "-s", "1", "-e", "2"], "cannot split"),
        (["job", "show", "987654"], "no job 987654"),
        (["job", "kill", "987654"], "no job 987654"),
        (["tasks", "987654"], "no job 987654"),
        (["log", "987654", "1"], "no job 987654"),
        (["computer", "show", "nohost"], "no computer 'nohost'"),
    ],
    ids=[
        "unknown-renderer",
        "end-before-start",
        "block-0",
        "step-0",
        "env-no-equals",
        "env-bad-name",
        "missing-scene",
        "missing-param",
        "bad-template",
        "unknown-job",
        "kill-unknown-job",
        "tasks-unknown-job",
        "log-unknown-job",
        "unknown-computer",
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(farm, args, message):
    before = job_ids(farm)
    line = one_line_error(run_cli(farm, *args))
    assert line.startswith("error: ")
    assert message in line
    assert job_ids(farm) == before


def test_unreachable_master_is_one_line(farm):
    before = job_ids(farm)
    for args in (["jobs"], ["submit", "shell", "--cmd", "true", "-s", "1", "-e", "2"]):
        line = one_line_error(run_cli(farm, *args, env={"DRQUEUE_MASTER": "http://127.0.0.1:1"}))
        assert line.startswith("error: cannot reach the master at http://127.0.0.1:1")
    assert job_ids(farm) == before


def test_wrong_token_is_refused(farm):
    before = job_ids(farm)
    line = one_line_error(
        run_cli(
            farm,
            "submit",
            "shell",
            "--cmd",
            "true",
            "-s",
            "1",
            "-e",
            "2",
            env={"DRQUEUE_TOKEN": "not-the-token"},
        )
    )
    assert "missing or wrong API token" in line
    url = farm.config.master_url
    answer = httpx.get(f"{url}/api/v1/jobs", headers={"Authorization": "Bearer not-the-token"})
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith("missing or wrong API token")
    assert httpx.get(f"{url}/api/v1/jobs").status_code == 401
    assert httpx.get(f"{url}/api/v1/health").json()["status"] == "ok"
    assert job_ids(farm) == before


def test_openapi_description_is_served(farm):
    answer = httpx.get(f"{farm.config.master_url}/openapi.json")
    assert answer.status_code == 200
    spec = answer.json()
    assert spec["info"]["title"] == "DrQueue"
    assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/computers"} <= set(spec["paths"])


# -- retries -------------------------------------------------------------------------------------------


def test_task_that_fails_twice_then_succeeds_finishes_with_retries(farm, tmp_path):
    counter = tmp_path / "tries"
    cmd = (
        f"sh -c 'n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        "echo attempt $n; test $n -gt 2'"
    )
    result = run_cli(
        farm, "submit", "shell", "--cmd", cmd, "-s", "1", "-e", "1", "--retries", "3", "--wait"
    )
    assert result.returncode == 0, result.stderr
    job_id = int(result.stdout.split()[0])
    assert counter.read_text().strip() == "3"
    task = tasks_of(farm, job_id)[0]
    assert (task["state"], task["attempts"], task["failures"], task["exit_code"]) == (
        "finished",
        3,
        2,
        0,
    )
    assert task["reason"] is None
    assert assert_counts_agree(farm, job_id)["finished"] == 1
    # Each attempt writes a log of its own (docs/deploy.md); `drqueue log` shows the last, and
    # the two before it stay beside it.
    log = farm.client.log(job_id, 1)
    assert log.count("# drqueue: job") == 1 and "attempt 3" in log, log
    assert len(attempt_logs(farm, job_id, 0)) == 3


def test_task_that_always_fails_ends_in_error_after_retries_plus_one_attempts(farm, tmp_path):
    counter = tmp_path / "tries"
    cmd = f"sh -c 'echo x >> {counter}; echo kaputt >&2; exit 7'"
    result = run_cli(
        farm, "submit", "shell", "--cmd", cmd, "-s", "1", "-e", "1", "--retries", "2", "--wait"
    )
    assert result.returncode == 1
    job_id = int(result.stdout.split()[0])
    assert f"job {job_id} error: 0/1 tasks finished, 1 in error" in result.stderr
    assert counter.read_text().count("x") == 3
    task = tasks_of(farm, job_id)[0]
    assert (task["state"], task["attempts"], task["failures"], task["exit_code"]) == (
        "error",
        3,
        3,
        7,
    )
    assert task["reason"] == "exit code 7: kaputt (failed 3 times)"
    assert farm.client.job(job_id)["status"] == "error"
    shown = run_cli(farm, "tasks", str(job_id))
    assert "exit code 7: kaputt (failed 3 times)" in shown.stdout
    assert assert_counts_agree(farm, job_id)["error"] == 1


# -- priorities ----------------------------------------------------------------------------------------


def test_later_high_priority_jobs_start_before_the_waiting_low_priority_tasks(farm, tmp_path):
    gate = tmp_path / "open"
    hold = f"sh -c 'while ! test -e {gate}; do sleep 0.05; done; sleep 0.2'"
    low = submit_shell(farm, hold, 1, 12, priority=10, name="low")
    wait_for(
        lambda: farm.client.job(low)["counts"]["running"] == 2, 60, what="the farm busy with low"
    )
    high = submit_shell(farm, "sleep 0.2", 1, 2, priority=90, name="high")
    raised = submit_shell(farm, "sleep 0.2", 1, 2, priority=5, name="raised at runtime")
    result = run_cli(farm, "job", "priority", str(raised), "95")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"job {raised}: priority 95"
    assert farm.client.job(raised)["priority"] == 95
    waiting_low = [t["index"] for t in tasks_of(farm, low) if t["state"] == "queued"]
    assert len(waiting_low) == 10
    gate.touch()
    for job_id in (low, high, raised):
        assert farm.wait_job(job_id, 120)["status"] == "finished"
    started = {
        job_id: [t["started_at"] for t in tasks_of(farm, job_id)] for job_id in (low, high, raised)
    }
    low_waiting_starts = [started[low][index] for index in waiting_low]
    # Priority 95 first, then 90, then the ten low tasks that were waiting.
    assert max(started[raised]) < min(started[high])
    assert max(started[high]) < min(low_waiting_starts)


# -- stopping, killing, rerunning --------------------------------------------------------------------------


def test_job_kill_stops_every_render_process_and_continue_resumes(farm, tmp_path):
    marker = unique_sleep()
    flag = tmp_path / "let-it-finish"
    out = tmp_path / "frames.txt"
    job_id = submit_shell(
        farm, f"sh -c 'test -e {flag} || sleep {marker}; echo $DRQUEUE_FRAME >> {out}'", 1, 2
    )
    wait_for(lambda: len(sleeping(marker)) == 2, 60, what="both renders to run")
    result = run_cli(farm, "job", "kill", str(job_id))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"job {job_id}: stopped"
    killed_at = time.monotonic()
    wait_for(lambda: not marker_processes(marker), 10, what="the killed renders to be gone")
    assert time.monotonic() - killed_at < 10
    job = farm.client.job(job_id)
    assert (job["status"], job["control"]) == ("stopped", "stopped")
    assert job["counts"]["queued"] == 2
    assert [(t["state"], t["reason"]) for t in tasks_of(farm, job_id)] == [
        ("queued", "killed by admin")
    ] * 2
    assert frames_in(out) == []
    flag.touch()
    result = run_cli(farm, "job", "continue", str(job_id))
    assert result.returncode == 0, result.stderr
    assert farm.wait_job(job_id)["status"] == "finished"
    assert frames_in(out) == [1, 2]
    assert [t["attempts"] for t in tasks_of(farm, job_id)] == [2, 2]
    assert [t["failures"] for t in tasks_of(farm, job_id)] == [0, 0]
    assert assert_counts_agree(farm, job_id)["finished"] == 2


def test_short_tasks_are_prefetched_and_every_frame_runs_once(farm, tmp_path):
    out = tmp_path / "frames.txt"
    before = farm.client.farm()
    job_id = submit_shell(farm, f"sh -c 'echo $DRQUEUE_FRAME >> {out}'", 1, 60)
    assert farm.wait_job(job_id)["status"] == "finished"
    after = farm.client.farm()
    # Tasks this short wait behind the running one on each engine, not for the master.
    assert after["prefetched"] > before["prefetched"]
    assert after["finished"] - before["finished"] == 60
    tasks = tasks_of(farm, job_id)
    # Each frame rendered; twice only where a queued task was taken back as it started (a
    # delivery the design allows: at least once), and then it counts as an attempt.
    assert sorted(set(frames_in(out))) == list(range(1, 61))
    assert len(frames_in(out)) <= sum(t["attempts"] for t in tasks)
    assert [t["failures"] for t in tasks] == [0] * 60
    assert assert_counts_agree(farm, job_id)["finished"] == 60


def test_job_kill_takes_back_prefetched_tasks_and_signals_only_the_running_ones(farm, tmp_path):
    """Frames 1-8 are quick, so the job's next tasks are queued on the engines behind the
    running ones; frames 9-12 then block.  A kill must stop the blocked renders, take back the
    queued tasks (the engine's SIGINT must not hit them), and lose or double nothing."""
    marker = unique_sleep()
    flag = tmp_path / "go"
    out = tmp_path / "frames.txt"
    before = farm.client.farm()
    job_id = submit_shell(
        farm,
        f"sh -c 'if [ $DRQUEUE_FRAME -gt 8 ]; then test -e {flag} || sleep {marker}; fi; "
        f"echo $DRQUEUE_FRAME >> {out}'",
        1,
        12,
    )
    wait_for(lambda: len(sleeping(marker)) == 2, 60, what="two blocked renders")
    assert farm.client.farm()["prefetched"] > before["prefetched"]
    result = run_cli(farm, "job", "kill", str(job_id))
    assert result.returncode == 0, result.stderr
    wait_for(lambda: not marker_processes(marker), 10, what="the killed renders to be gone")
    wait_for(
        lambda: farm.client.job(job_id)["counts"]["queued"] == 4, 30, what="four tasks requeued"
    )
    job = farm.client.job(job_id)
    assert job["counts"]["finished"] == 8 and job["counts"]["running"] == 0
    assert frames_in(out) == list(range(1, 9))
    flag.touch()
    assert run_cli(farm, "job", "continue", str(job_id)).returncode == 0
    assert farm.wait_job(job_id)["status"] == "finished"
    assert frames_in(out) == list(range(1, 13))
    assert [t["failures"] for t in tasks_of(farm, job_id)] == [0] * 12
    assert farm.client.farm()["finished"] - before["finished"] == 12
    assert assert_counts_agree(farm, job_id)["finished"] == 12
    assert not marker_processes(marker)


def test_job_stop_takes_back_the_tasks_queued_behind_the_running_ones(farm, tmp_path):
    """Frames 1-8 are short (about 0.4 s), so once they are done frames 11 and 12 are queued on
    the engines behind 9 and 10, which wait for a gate.  A stop lets 9 and 10 finish and aborts
    11 and 12 on their engines; they stay queued for a continue.

    What the design guarantees, whatever the interleaving (docs/architecture.md):
    - a task queued behind another is requeued only once its engine has aborted it, so the store
      never says queued of a task that runs: every frame written belongs to a finished task, and
      no queued task's frame was written;
    - no task is dispatched after the stop is committed (the store refuses it);
    - the stop lands long before the gate opens, so the aborts arrive first and 11 and 12 do not
      run.  (Had the stop been slower than the take-back time, 4x the job's mean, about 1.6 s,
      they would have been taken back because the tasks before them run long: same outcome.)"""
    gate = tmp_path / "gate"
    out = tmp_path / "frames.txt"
    before = farm.client.farm()
    job_id = submit_shell(
        farm,
        f"sh -c 'if [ $DRQUEUE_FRAME -gt 8 ]; then while ! test -e {gate}; do sleep 0.02; done; "
        f"else sleep 0.4; fi; echo $DRQUEUE_FRAME >> {out}'",
        1,
        12,
    )

    def gated_with_two_queued_behind() -> bool:
        counts = farm.client.job(job_id)["counts"]
        return counts["finished"] == 8 and counts["running"] == 4

    wait_for(gated_with_two_queued_behind, 60, 0.02, "9 and 10 running, 11 and 12 queued behind")
    farm.client.job_action(job_id, "stop")
    assert farm.client.farm()["prefetched"] >= before["prefetched"] + 2
    # The engines confirm the aborts at once (they will not start 11 and 12), and answer for
    # the tasks themselves when 9 and 10 end.
    wait_for(
        lambda: farm.client.farm()["aborts_confirmed"] >= before["aborts_confirmed"] + 2,
        30,
        what="the engines to confirm the aborts",
    )
    gate.touch()
    wait_for(lambda: farm.client.job(job_id)["counts"]["running"] == 0, 30, what="9-12 to settle")
    job = farm.client.job(job_id)
    assert (job["status"], job["counts"]["finished"], job["counts"]["queued"]) == ("stopped", 10, 2)
    assert frames_in(out) == list(range(1, 11))
    assert assert_counts_agree(farm, job_id)["finished"] == 10
    queued = [t for t in tasks_of(farm, job_id) if t["state"] == "queued"]
    assert [t["index"] for t in queued] == [10, 11]
    for task in queued:
        assert task["attempts"] == 1, task
        assert "requeued before it started: its job was stopped" in task["reason"] or (
            "runs long" in task["reason"]
        ), task
    assert run_cli(farm, "job", "continue", str(job_id)).returncode == 0
    assert farm.wait_job(job_id)["status"] == "finished"
    assert frames_in(out) == list(range(1, 13))


def test_job_stop_lets_running_tasks_finish_and_takes_no_new_ones(farm, tmp_path):
    out = tmp_path / "frames.txt"
    flag = tmp_path / "go"
    job_id = submit_shell(
        farm,
        f"sh -c 'while ! test -e {flag}; do sleep 0.05; done; echo $DRQUEUE_FRAME >> {out}'",
        1,
        6,
    )
    wait_for(
        lambda: farm.client.job(job_id)["counts"]["running"] == 2, 60, what="two running tasks"
    )
    result = run_cli(farm, "job", "stop", str(job_id))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"job {job_id}: stopping"
    flag.touch()
    job = farm.wait_job(job_id, 60, states=("stopped",))
    assert job["counts"] == {
        "total": 6,
        "queued": 4,
        "running": 0,
        "finished": 2,
        "error": 0,
        "cancelled": 0,
    }
    assert frames_in(out) == [1, 2]
    result = run_cli(farm, "job", "continue", str(job_id))
    assert result.returncode == 0, result.stderr
    assert farm.wait_job(job_id)["status"] == "finished"
    assert frames_in(out) == [1, 2, 3, 4, 5, 6]


def test_task_kill_and_task_requeue(farm, tmp_path):
    marker = unique_sleep()
    flag = tmp_path / "quick"
    out = tmp_path / "frames.txt"
    job_id = submit_shell(
        farm,
        f"sh -c 'test $DRQUEUE_FRAME = 2 -o -e {flag} || sleep {marker}; echo $DRQUEUE_FRAME >> {out}'",
        1,
        2,
    )
    wait_for(
        lambda: frames_in(out) == [2] and sleeping(marker),
        60,
        what="task 1 done and task 0 running",
    )
    farm.client.job_action(job_id, "stop")
    result = run_cli(farm, "task", "kill", str(job_id), "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"job {job_id} task 0: queued"
    wait_for(lambda: not marker_processes(marker), 10, what="the killed render to be gone")
    assert farm.wait_job(job_id, 30, states=("stopped",))["counts"]["queued"] == 1
    flag.touch()
    farm.client.job_action(job_id, "continue")
    assert farm.wait_job(job_id)["status"] == "finished"
    assert frames_in(out) == [1, 2]

    result = run_cli(farm, "task", "requeue", str(job_id), "1")
    assert result.returncode == 0, result.stderr
    assert farm.wait_job(job_id)["status"] == "finished"
    wait_for(lambda: frames_in(out) == [1, 2, 2], 30, what="frame 2 rendered again")
    assert [t["attempts"] for t in tasks_of(farm, job_id)] == [2, 2]
    assert farm.client.log(job_id, 2).count("# drqueue: job") == 1  # the last attempt's
    assert len(attempt_logs(farm, job_id, 1)) == 2
    assert assert_counts_agree(farm, job_id) == {
        "total": 2,
        "queued": 0,
        "running": 0,
        "finished": 2,
        "error": 0,
        "cancelled": 0,
    }


def test_rerun_and_requeue_failed(farm, tmp_path):
    out = tmp_path / "frames.txt"
    flag = tmp_path / "fixed"
    job_id = submit_shell(
        farm,
        f"sh -c 'echo $DRQUEUE_FRAME >> {out}; test $DRQUEUE_FRAME != 2 -o -e {flag}'",
        1,
        3,
        retries=0,
    )
    job = farm.wait_job(job_id)
    assert job["status"] == "error"
    assert job["counts"]["finished"] == 2 and job["counts"]["error"] == 1
    flag.touch()
    result = run_cli(farm, "job", "requeue-failed", str(job_id))
    assert result.returncode == 0, result.stderr
    assert farm.wait_job(job_id)["status"] == "finished"
    assert frames_in(out) == [1, 2, 2, 3]
    assert [t["attempts"] for t in tasks_of(farm, job_id)] == [1, 2, 1]

    result = run_cli(farm, "job", "rerun", str(job_id))
    assert result.returncode == 0, result.stderr
    wait_for(lambda: len(frames_in(out)) == 7, 60, what="every frame rendered again")
    assert farm.wait_job(job_id)["status"] == "finished"
    assert frames_in(out) == [1, 1, 2, 2, 2, 3, 3]
    assert [t["attempts"] for t in tasks_of(farm, job_id)] == [2, 3, 2]
    assert assert_counts_agree(farm, job_id)["finished"] == 3


def test_delete_is_refused_while_running_unless_forced(farm, tmp_path):
    marker = unique_sleep()
    job_id = submit_shell(farm, f"sleep {marker}", 1, 3)
    wait_for(lambda: len(sleeping(marker)) == 2, 60, what="two renders running")
    line = one_line_error(run_cli(farm, "job", "delete", str(job_id)))
    assert line == (
        f"error: job {job_id} has 2 running tasks: stop or kill it first, or force the delete"
    )
    assert job_id in job_ids(farm)
    assert farm.client.job(job_id)["counts"]["running"] == 2
    result = run_cli(farm, "job", "delete", str(job_id), "--force")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"job {job_id} deleted"
    assert job_id not in job_ids(farm)
    wait_for(lambda: not marker_processes(marker), 10, what="the deleted job's renders to be gone")
    one_line_error(run_cli(farm, "job", "show", str(job_id)))


def test_delete_of_an_ended_job(farm):
    job_id = submit_shell(farm, "true", 1, 2)
    farm.wait_job(job_id)
    result = run_cli(farm, "job", "delete", str(job_id))
    assert result.returncode == 0, result.stderr
    assert job_id not in job_ids(farm)


# -- faults ---------------------------------------------------------------------------------------------


def test_engine_killed_mid_task_loses_nothing_and_is_restarted(farm, tmp_path):
    out = tmp_path / "frames.txt"
    gate = tmp_path / "open"
    job_id = submit_shell(
        farm,
        f"sh -c 'echo $DRQUEUE_FRAME >> {out}; while ! test -e {gate}; do sleep 0.05; done; sleep 0.3'",
        1,
        12,
    )
    victim = wait_for(
        lambda: next(
            (
                t
                for t in tasks_of(farm, job_id)
                if t["computer"] == "alpha" and t["state"] == "running"
            ),
            None,
        ),
        60,
        what="a task running on alpha",
    )
    engines = farm.engine_pids("alpha")
    assert len(engines) == 1
    os.kill(engines[0], signal.SIGKILL)
    wait_for(
        lambda: tasks_of(farm, job_id)[victim["index"]]["lost"] == 1, 60, what="the task requeued"
    )
    gate.touch()
    assert farm.wait_job(job_id, 120)["status"] == "finished"
    counts = assert_counts_agree(farm, job_id)
    assert counts == {
        "total": 12,
        "queued": 0,
        "running": 0,
        "finished": 12,
        "error": 0,
        "cancelled": 0,
    }
    # At least once: the killed engine's frame may have been written twice, no frame is missing.
    assert sorted(set(frames_in(out))) == list(range(1, 13))
    tasks = tasks_of(farm, job_id)
    killed = tasks[victim["index"]]
    assert (killed["lost"], killed["attempts"], killed["state"]) == (1, 2, "finished")
    assert killed["reason"] is None
    assert sum(t["lost"] for t in tasks) == 1
    assert sum(t["attempts"] for t in tasks) == 13
    store = store_of(farm)
    try:
        assert store.get_job(job_id).timed_tasks == 12, "a finished task was counted twice"
    finally:
        store.close()
    farm.wait_engines(2, timeout=90)
    wait_for(
        lambda: (pids := farm.engine_pids("alpha")) and pids != engines,
        60,
        what="alpha's launcher to start a new engine",
    )


def test_master_killed_mid_job_then_restarted_loses_nothing(farm, tmp_path):
    out = tmp_path / "frames.txt"
    gate = tmp_path / "open"
    job_id = submit_shell(
        farm,
        f"sh -c 'echo $DRQUEUE_FRAME >> {out}; test $DRQUEUE_FRAME -le 2 && exit 0; "
        f"while ! test -e {gate}; do sleep 0.05; done; sleep 0.3'",
        1,
        8,
    )
    wait_for(
        lambda: (c := farm.client.job(job_id)["counts"])["finished"] == 2 and c["running"] == 2,
        60,
        what="frames 1 and 2 finished, 3 and 4 running",
    )
    old_engines = farm.engine_pids("alpha") + farm.engine_pids("beta")
    farm.kill_master()
    gate.touch()  # the running renders end while no master listens: their results are lost
    store = store_of(farm)
    try:
        left = sorted(d.task_id for d in store.active_dispatches())
        counts = store.get_job(job_id).counts
        ids = [task.id for task in store.list_tasks(job_id)]
    finally:
        store.close()
    # Frames 3 and 4 were running; frames 5 to 8 may have been dispatched behind them (frames 1
    # and 2 were short, so the job's next tasks are prefetched, several per engine for tasks
    # this short: dispatcher.PREFETCH_MAX) in the moment before the kill.
    assert set(ids[2:4]) <= set(left) <= set(ids[2:8]), (left, ids)
    assert counts == Counts(total=8, queued=6 - len(left), running=len(left), finished=2)
    farm.start_master()
    # No manual step: the launchers see the new master's instance and restart their engines.
    farm.wait_engines(2, timeout=120)
    assert farm.wait_job(job_id, 120)["status"] == "finished"
    counts = assert_counts_agree(farm, job_id)
    assert counts == {
        "total": 8,
        "queued": 0,
        "running": 0,
        "finished": 8,
        "error": 0,
        "cancelled": 0,
    }
    assert sorted(set(frames_in(out))) == list(range(1, 9))
    tasks = tasks_of(farm, job_id)
    attempts = [t["attempts"] for t in tasks]
    assert attempts[:4] == [1, 1, 2, 2], attempts
    # Frames 5 to 8 may have been queued behind 3 and 4, then taken back for being stuck behind
    # long ones, or requeued by the restart: each requeue is one more attempt, nothing else is.
    requeued = [e["task_index"] for e in farm.client.events(job_id) if e["kind"] == "task.requeued"]
    assert [1 + requeued.count(index) for index in range(8)] == attempts, (requeued, attempts)
    events = [e["message"] for e in farm.client.events() if e["kind"] == "master.restart"]
    assert events == [f"requeued {len(left)} tasks left running"]
    store = store_of(farm)
    try:
        assert store.get_job(job_id).timed_tasks == 8, "a finished task was counted twice"
    finally:
        store.close()
    new_engines = farm.engine_pids("alpha") + farm.engine_pids("beta")
    assert len(new_engines) == 2
    assert not set(new_engines) & set(old_engines)
    assert sorted(c["name"] for c in farm.client.computers() if c["online"]) == ["alpha", "beta"]


def test_store_is_consistent_after_the_faults(farm):
    """After the kills, the store needs no repair: its integrity check finds nothing to fix,
    and every job's counts are what its tasks say (nothing lost, nothing counted twice)."""
    url = farm.config.store_url
    if url.startswith("sqlite:///"):
        raw = sqlite3.connect(f"file:{url[len('sqlite:///') :]}?mode=ro", uri=True)
        try:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            raw.close()
    store = store_of(farm)
    try:
        jobs = store.list_jobs()
        assert jobs, "the module ran no job on this store"
        for job in jobs:
            assert job.counts == count(task.state for task in store.list_tasks(job.id)), job.id
        # On an idle farm the check repairs nothing: it would say what it had to fix.
        assert store.check_integrity() == []
    finally:
        store.close()
