"""Scheduling on a real farm: requirements, pools, computer control, dependencies, fair share,
GPU slots, the failing-host blocklist and ETAs.

One master and three slaves, real processes, shared by the whole module:

* ``cpu1``   one CPU slot, no pool;
* ``render2`` two CPU slots, pool ``fx``;
* ``gpubox`` one CPU slot and two declared GPU slots (devices 0 and 1), pool ``gpu``.

A fourth slave, ``late``, joins during a test.  Jobs use the shell renderer; a task's
``computer`` and its start and end times come from the master's API.  Every test leaves
the farm as it found it (slaves enabled, no limits, its jobs ended).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from farm import Farm, wait_for

ENGINES = 1 + 2 + 3


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    farm = Farm(tmp_path_factory.mktemp("scheduling"), info_cache_seconds=3)
    farm.env["COLUMNS"] = "200"  # tables from `drqueue computers` are not wrapped
    farm.start_master()
    farm.add_slave("cpu1", slots=1)
    farm.add_slave("render2", slots=2, pools=["fx"])
    farm.add_slave("gpubox", slots=1, gpus=2, pools=["gpu"])
    farm.wait_engines(ENGINES)
    yield farm
    farm.stop()


def submit(farm: Farm, cmd: str, frames: int = 1, **options) -> int:
    requirements = {
        key: options.pop(key)
        for key in ("os", "min_ram_gb", "min_cores", "pools", "gpus", "hosts", "exclude_hosts")
        if key in options
    }
    options.setdefault("owner", "ann")
    job = farm.client.submit(
        "shell",
        None,
        start=1,
        end=frames,
        params={"cmd": cmd},
        requirements=requirements,
        **options,
    )
    return job["id"]


def finished(farm: Farm, job_id: int, timeout: float = 120) -> list[dict]:
    job = farm.wait_job(job_id, timeout)
    assert job["status"] == "finished", (job, farm.client.tasks(job_id))
    return farm.client.tasks(job_id)


def reason_of(farm: Farm, job_id: int, expected: str, timeout: float = 30) -> str:
    return wait_for(
        lambda: (reason := farm.client.job(job_id)["waiting_reason"]) == expected and reason,
        timeout,
        0.2,
        f"job {job_id} to wait with {expected!r} "
        f"(now {farm.client.job(job_id)['waiting_reason']!r})",
    )


def overlaps(tasks: list[dict]) -> bool:
    spans = sorted((t["started_at"], t["ended_at"]) for t in tasks)
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))


def cli_error(farm: Farm, *args: str) -> str:
    """Run a command that must fail: one line on stderr, non-zero exit."""
    result = farm.cli(*args)
    assert result.returncode != 0, (args, result.stdout)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, (args, result.stderr)
    return lines[0]


def computer(farm: Farm, name: str) -> dict:
    return farm.client.computer(name)


# -- bad input -------------------------------------------------------------------------------------


def test_bad_scheduling_input_is_refused_with_one_line_and_changes_nothing(farm):
    jobs_before = farm.client.jobs()
    pools_before = farm.client.pools()
    computers_before = [(c["name"], c["enabled"], c["max_tasks"]) for c in farm.client.computers()]
    next_id = max((j["id"] for j in jobs_before), default=0) + 1
    submit_args = ["submit", "shell", "-s", "1", "-e", "2", "--cmd", "true"]

    assert "--min-cores must be at least 1" in cli_error(farm, *submit_args, "--min-cores", "0")
    assert "--min-ram must not be negative" in cli_error(farm, *submit_args, "--min-ram", "-1")
    assert "--gpus must not be negative" in cli_error(farm, *submit_args, "--gpus", "-1")
    assert "pool 'nosuch'" in cli_error(farm, *submit_args, "--pool", "nosuch")
    assert "waits for job 999999 (after), which does not exist" in cli_error(
        farm, *submit_args, "--after", "999999"
    )
    # A job may only depend on jobs that exist before it, so no cycle can ever form: even the
    # id it would get is refused.
    assert "does not exist" in cli_error(farm, *submit_args, "--after", str(next_id))
    assert "pool 'nosuch'" in cli_error(farm, "pool", "add", "nosuch", "cpu1")
    assert "'nohost'" in cli_error(farm, "pool", "add", "fx", "nohost")
    assert "not in pool" in cli_error(farm, "pool", "remove", "fx", "cpu1")
    assert "pool 'nosuch'" in cli_error(farm, "pool", "delete", "nosuch")
    assert "already exists" in cli_error(farm, "pool", "create", "fx")
    assert "'nohost'" in cli_error(farm, "computer", "disable", "nohost")
    assert "'nohost'" in cli_error(farm, "computer", "enable", "nohost")
    assert "'nohost'" in cli_error(farm, "computer", "limit", "nohost", "--max-tasks", "1")
    assert "no job 999999" in cli_error(farm, "job", "unblock", "999999", "cpu1")
    assert farm.cli("computer", "limit", "cpu1", "--max-tasks", "-1").returncode != 0

    assert farm.client.jobs() == jobs_before
    assert farm.client.pools() == pools_before
    assert [
        (c["name"], c["enabled"], c["max_tasks"]) for c in farm.client.computers()
    ] == computers_before


# -- requirements, pools and GPU slots ----------------------------------------------------------------


def test_a_pool_job_runs_only_on_the_pools_slaves(farm):
    tasks = finished(farm, submit(farm, "sleep 0.2", frames=6, pools=["fx"]))
    assert {t["computer"] for t in tasks} == {"render2"}


def test_host_globs_choose_and_exclude_slaves(farm):
    tasks = finished(
        farm, submit(farm, "true", frames=4, hosts=["cpu*", "render*"], exclude_hosts=["render*"])
    )
    assert {t["computer"] for t in tasks} == {"cpu1"}


def test_gpu_tasks_run_on_gpu_slots_with_their_own_device(farm, tmp_path):
    out = tmp_path / "gpu"
    out.mkdir()
    cmd = f"sh -c 'echo $CUDA_VISIBLE_DEVICES $HIP_VISIBLE_DEVICES > {out}/{{frame}}; sleep 1'"
    tasks = finished(farm, submit(farm, cmd, frames=4, gpus=1))
    assert {t["computer"] for t in tasks} == {"gpubox"}
    devices = [(out / str(frame)).read_text().split() for frame in range(1, 5)]
    assert all(cuda == hip for cuda, hip in devices)
    assert {cuda for cuda, _ in devices} == {"0", "1"}  # two GPU slots, both used


def test_a_two_gpu_task_gets_both_devices(farm, tmp_path):
    out = tmp_path / "devices"
    tasks = finished(farm, submit(farm, f"sh -c 'echo $CUDA_VISIBLE_DEVICES > {out}'", gpus=2))
    assert tasks[0]["computer"] == "gpubox"
    assert out.read_text().strip() == "0,1"


def test_cpu_jobs_use_a_gpu_hosts_cpu_slot_but_never_its_gpu_slots(farm, tmp_path):
    out = tmp_path / "cpu"
    out.mkdir()
    cmd = f"sh -c 'echo \"[$CUDA_VISIBLE_DEVICES]\" > {out}/{{frame}}; sleep 0.5'"
    tasks = finished(farm, submit(farm, cmd, frames=3, hosts=["gpubox"]))
    assert {t["computer"] for t in tasks} == {"gpubox"}
    assert not overlaps(tasks)  # one CPU slot, although two GPU slots sat idle
    assert {(out / str(frame)).read_text().strip() for frame in range(1, 4)} == {"[]"}


def test_a_job_no_slave_can_run_waits_and_says_why(farm):
    windows = submit(farm, "true", os="windows")
    cores = submit(farm, "true", min_cores=100_000)
    ram = submit(farm, "true", min_ram_gb=100_000)
    gpus = submit(farm, "true", gpus=3)
    try:
        reason_of(farm, windows, "waiting: no slave runs windows (3 slaves online)")
        reason_of(farm, cores, "waiting: no slave has 100000 cores (3 slaves online)")
        reason_of(farm, ram, "waiting: no slave has 100000 GB of RAM (3 slaves online)")
        reason_of(farm, gpus, "waiting: no slave has 3 GPUs (3 slaves online)")
        assert farm.client.job(windows)["status"] == "queued"
        shown = farm.cli("job", "show", str(windows), check=True).stdout
        assert "no slave runs windows" in shown
    finally:
        for job_id in (windows, cores, ram, gpus):
            farm.client.delete_job(job_id)


def test_a_late_slave_picks_up_waiting_work_within_a_second(farm):
    farm.cli("pool", "create", "late", "--description", "joins later", check=True)
    job_id = submit(farm, "sleep 3", pools=["late"])
    reason_of(farm, job_id, "waiting: no slave in pool 'late' (3 slaves online)")
    farm.add_slave("late", slots=1, pools=["late"])
    task = wait_for(
        lambda: (t := farm.client.tasks(job_id)[0])["state"] != "queued" and t,
        90,
        0.05,
        "the late slave to take the task",
    )
    info = computer(farm, "late")  # collected when its engine registered; it stays busy 3 s
    assert task["computer"] == "late"
    assert task["started_at"] - info["info_at"] < 1.0
    assert farm.client.job(job_id)["waiting_reason"] is None
    finished(farm, job_id)


def test_pool_membership_is_kept_in_the_store_and_survives_a_slave_restart(farm):
    farm.cli("pool", "add", "fx", "late", check=True)
    assert "late" in {p["name"]: p for p in farm.client.pools()}["fx"]["members"]
    farm.stop_slave("late")
    offline = wait_for(
        lambda: not (c := computer(farm, "late"))["online"] and c, 60, 0.2, "late offline"
    )
    assert offline["last_seen"] and time.time() - offline["last_seen"] < 60
    assert "offline" in farm.cli("computers", check=True).stdout

    farm.add_slave("late", slots=1, env={"DRQUEUE_POOL": "late"})  # the variable, not --pool
    farm.wait_engines(ENGINES + 1)
    pools = {p["name"]: p["members"] for p in farm.client.pools()}
    assert "late" in pools["fx"] and "late" in pools["late"]
    tasks = finished(farm, submit(farm, "true", frames=4, pools=["fx"], hosts=["late"]))
    assert {t["computer"] for t in tasks} == {"late"}

    farm.cli("pool", "remove", "fx", "late", check=True)
    farm.stop_slave("late")
    farm.cli("pool", "delete", "late", check=True)
    assert "late" not in {p["name"] for p in farm.client.pools()}


# -- computers ----------------------------------------------------------------------------------------


def test_a_disabled_slave_finishes_its_task_and_takes_no_more(farm, tmp_path):
    """Task 0 runs until the slave is disabled (a gate: a sleep could end first on a loaded
    machine, and task 1 start before the disable); then it ends, and no task follows it."""
    gate = tmp_path / "gate"
    cmd = f"sh -c 'while [ ! -e {gate} ]; do sleep 0.05; done'"
    job_id = submit(farm, cmd, frames=3, hosts=["cpu1"])
    wait_for(lambda: farm.client.tasks(job_id)[0]["state"] == "running", 30, 0.1, "task 0 to run")
    farm.cli("computer", "disable", "cpu1", check=True)
    try:
        assert computer(farm, "cpu1")["enabled"] is False
        assert "disabled" in farm.cli("computers", check=True).stdout
        gate.touch()
        wait_for(
            lambda: farm.client.tasks(job_id)[0]["state"] == "finished", 30, 0.1, "task 0 to finish"
        )
        reason_of(farm, job_id, "waiting: every matching slave is disabled (cpu1)")
        time.sleep(1.5)
        assert [t["state"] for t in farm.client.tasks(job_id)] == ["finished", "queued", "queued"]
    finally:
        farm.cli("computer", "enable", "cpu1", check=True)
    finished(farm, job_id)


def test_a_computer_limit_caps_its_tasks_at_once(farm):
    farm.cli("computer", "limit", "render2", "--max-tasks", "1", check=True)
    try:
        assert computer(farm, "render2")["max_tasks"] == 1
        tasks = finished(farm, submit(farm, "sleep 0.7", frames=4, pools=["fx"]))
        assert not overlaps(tasks)
    finally:
        farm.cli("computer", "limit", "render2", check=True)
    assert computer(farm, "render2")["max_tasks"] is None
    assert overlaps(finished(farm, submit(farm, "sleep 1.5", frames=2, pools=["fx"])))


def test_computers_show_the_running_task_and_idle_info_is_refreshed(farm):
    job_id = submit(farm, "sleep 60", hosts=["cpu1"])
    wait_for(lambda: farm.client.tasks(job_id)[0]["state"] == "running", 30, 0.1, "the task to run")
    running_since = time.time()
    busy = wait_for(lambda: (c := computer(farm, "cpu1"))["running"] and c, 10, 0.2, "cpu1's task")
    task_id = farm.client.tasks(job_id)[0]["id"]
    assert busy["online"] and len(busy["running"]) == 1
    running = busy["running"][0]
    # The CLI's keys, and the web UI's (job, task, progress: docs/api.md).
    assert {k: running[k] for k in ("job_id", "task_id", "task_index", "job", "task")} == {
        "job_id": job_id,
        "task_id": task_id,
        "task_index": 0,
        "job": job_id,
        "task": 0,
    }
    assert 0.0 <= running["progress"] <= 1.0
    assert f"job {job_id} task 0" in farm.cli("computers", check=True).stdout
    idle_before = computer(farm, "render2")["info_at"]
    wait_for(
        lambda: computer(farm, "render2")["info_at"] > idle_before, 15, 0.2, "idle info refresh"
    )
    time.sleep(max(0.0, running_since + 6 - time.time()))  # twice the 3 s info cache time
    # A busy slave keeps its last info.
    assert farm.client.tasks(job_id)[0]["state"] == "running"
    assert computer(farm, "cpu1")["info_at"] == busy["info_at"]
    farm.client.delete_job(job_id, force=True)  # kills the task: cpu1 is idle again
    wait_for(lambda: computer(farm, "cpu1")["info_at"] > busy["info_at"], 15, 0.2, "info once idle")
    wait_for(lambda: computer(farm, "cpu1")["running"] == [], 10, 0.2, "cpu1 idle")


# -- dependencies ----------------------------------------------------------------------------------------


def test_a_job_waits_for_the_jobs_it_depends_on(farm):
    first = submit(farm, "sleep 3", frames=2, pools=["fx"])
    second = submit(farm, "sleep 0.5", frames=2, pools=["fx"])  # waits for render2's slots
    after = submit(farm, "true", frames=2, after=[first, second])
    job = farm.client.job(after)
    assert job["status"] == "waiting" and job["after"] == [first, second]
    reason_of(farm, after, f"waiting for job {first}, job {second}")
    before = finished(farm, first) + finished(farm, second)
    tasks = finished(farm, after)
    assert min(t["started_at"] for t in tasks) >= max(t["ended_at"] for t in before)


def test_a_dependency_in_error_keeps_the_job_waiting_with_the_reason(farm):
    broken = submit(farm, "sh -c 'exit 3'", retries=0, pools=["fx"])
    assert farm.wait_job(broken)["status"] == "error"
    waiting = submit(farm, "true", after=[broken])
    reason_of(
        farm, waiting, f"waiting for job {broken} (ended in error: requeue its tasks to go on)"
    )
    assert farm.client.job(waiting)["status"] == "waiting"
    farm.client.delete_job(waiting)
    farm.client.delete_job(broken)


# -- order: priority, fair share, max-parallel ------------------------------------------------------------


def start_order(farm: Farm, *job_ids: int) -> list[int]:
    tasks = [t for job_id in job_ids for t in finished(farm, job_id)]
    return [t["job_id"] for t in sorted(tasks, key=lambda t: t["started_at"])]


def test_higher_priority_runs_first_even_when_submitted_later(farm):
    farm.cli("computer", "disable", "cpu1", check=True)
    try:
        low = submit(farm, "true", frames=3, hosts=["cpu1"], priority=10)
        high = submit(farm, "true", frames=3, hosts=["cpu1"], priority=90)
    finally:
        farm.cli("computer", "enable", "cpu1", check=True)
    assert start_order(farm, low, high) == [high] * 3 + [low] * 3


def test_owners_share_the_farm_round_robin_at_equal_priority(farm):
    farm.cli("computer", "disable", "cpu1", check=True)
    try:
        # New owners: neither has been served yet, so the earlier job goes first.
        big = submit(farm, "true", frames=8, hosts=["cpu1"], owner="carol")
        small = submit(farm, "true", frames=3, hosts=["cpu1"], owner="dave")
        reason_of(farm, small, "waiting: every matching slave is disabled (cpu1)")
    finally:
        farm.cli("computer", "enable", "cpu1", check=True)
    # carol's 8 frames came first, but dave's 3 do not wait behind them.
    assert start_order(farm, big, small) == [big, small] * 3 + [big] * 5


def test_max_parallel_caps_a_jobs_running_tasks(farm):
    tasks = finished(farm, submit(farm, "sleep 0.7", frames=3, pools=["fx"], max_parallel=1))
    assert not overlaps(tasks)


# -- the failing-host blocklist ---------------------------------------------------------------------------


def test_a_host_that_keeps_failing_a_job_is_blocked_for_it_and_can_be_unblocked(farm):
    cmd = "sh -c 'sleep 0.3; test \"$DRQUEUE_COMPID\" != render2'"
    job_id = submit(farm, cmd, frames=8, hosts=["cpu1", "render2"], retries=5)
    tasks = finished(farm, job_id)
    assert {t["computer"] for t in tasks} == {"cpu1"}
    failures = sum(t["failures"] for t in tasks)
    # block_after_failures = 2. These tasks are short, so each of render2's two slots also has
    # the next one queued behind (prefetch); it starts the moment the one before fails, before
    # the master hears of it, so up to two more may fail after the block (nothing more starts).
    assert 2 <= failures <= 4
    job = farm.client.job(job_id)
    assert job["blocked_hosts"] == ["render2"]
    shown = farm.cli("job", "show", str(job_id), check=True).stdout
    assert "blocked hosts  render2" in shown
    assert any(e["kind"] == "host.blocked" for e in farm.client.events(job_id))

    assert "unblocked" in farm.cli("job", "unblock", str(job_id), "render2", check=True).stdout
    assert farm.client.job(job_id)["blocked_hosts"] == []
    assert "not blocked" in cli_error(farm, "job", "unblock", str(job_id), "render2")


def test_a_job_that_failed_on_every_eligible_host_ends_in_error_instead_of_looping(farm):
    job_id = submit(farm, "sh -c 'exit 1'", frames=4, hosts=["cpu1", "render2"], retries=50)
    job = farm.wait_job(job_id, 90)
    assert job["status"] == "error"
    assert job["blocked_hosts"] == ["cpu1", "render2"]
    reasons = [t["reason"] or "" for t in farm.client.tasks(job_id)]
    assert any("failed on every eligible slave (cpu1, render2" in r for r in reasons), reasons
    # Without the rule, 4 tasks x 50 retries.  With it, a host is blocked after
    # block_after_failures (2); what its engines already run or started from their queue (a
    # short job's next task is queued behind the running one) may still fail: at most two per
    # slot.  cpu1 has 1 slot, render2 has 2.
    failures = sum(t["failures"] for t in farm.client.tasks(job_id))
    assert 2 * 2 <= failures <= (2 + 2 * 1) + (2 + 2 * 2), failures
    farm.client.delete_job(job_id)


# -- ETA ----------------------------------------------------------------------------------------------------


def test_eta_comes_from_the_mean_task_time_and_the_slots_the_job_can_use(farm, tmp_path):
    """Frames 1-2 take a second; the others wait on a gate, so the counts hold still while the
    ETA is read: the mean task time × the rounds of 2 slots the tasks left need.  A stopped job
    has no ETA (it will not end by itself)."""
    gate = tmp_path / "gate"
    cmd = (
        f"sh -c 'if [ $DRQUEUE_FRAME -gt 2 ]; then while [ ! -e {gate} ]; do sleep 0.05; done; "
        "fi; sleep 1'"
    )
    job_id = submit(farm, cmd, frames=8, pools=["fx"])  # render2: 2 of the farm's 6 slots
    wait_for(lambda: farm.client.job(job_id)["counts"]["finished"] == 2, 60, 0.1, "frames 1-2 done")
    job = farm.client.job(job_id)
    done = [t for t in farm.client.tasks(job_id) if t["state"] == "finished"]
    mean = sum(t["ended_at"] - t["started_at"] for t in done) / len(done)
    left = job["counts"]["queued"] + job["counts"]["running"]
    assert (len(done), left) == (2, 6), job["counts"]
    # The dispatcher's view of the online slots is refreshed every 2 s: wait for it, not a time.
    wait_for(
        lambda: (
            farm.client.job(job_id)["eta_seconds"]
            == pytest.approx(mean * math.ceil(left / 2), rel=1e-6)
        ),
        30,
        0.1,
        "the ETA of 6 tasks left on 2 slots",
    )
    farm.client.job_action(job_id, "stop")
    assert farm.client.job(job_id)["eta_seconds"] is None
    farm.client.job_action(job_id, "continue")
    gate.touch()
    finished(farm, job_id)


def test_nothing_is_left_running_or_queued(farm):
    assert all(j["status"] in ("finished", "error", "cancelled") for j in farm.client.jobs())
    assert Path(farm.root).exists()
