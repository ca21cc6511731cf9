"""Fault injection on a real farm: processes are killed, frozen and starved while jobs run.

Every scenario ends with :func:`check_invariants`, which holds the farm to what
docs/reliability.md promises:

* every task finished exactly once, or is in error with a reason;
* the store's counts agree with its tasks, and each task's attempts are
  accounted for by its events (an attempt ends finished, failed or requeued,
  and only the last may end finished);
* no frame's render started more often than its task was dispatched, and every
  finished frame really rendered to the end;
* nothing is queued, dispatched or running once the farm is idle;
* no render process is left behind: no process carries the scenario's marker
  (in its command line, or in its environment, which render children inherit).

Fast variants run in `make test`, each on both stores (ids end in [sqlite] and
[mongo]: the SQLite file, and MongoDB over the wire); the longer ones are marked
slow and run on SQLite.  The invariants read the store through the Store interface,
so they hold both to the same promises.  Waits poll with generous time-outs; sleeps
only pace the faults, they never assert.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import psutil
import pytest
from farm import FARM_STORES, Farm, unwritable_folder, wait_for

from drqueue.store import open_store

#: The environment variable that carries a scenario's marker into every render process.
MARK_ENV = "DRQUEUE_FAULT_MARKER"


# -- helpers ----------------------------------------------------------------------------------------


def new_marker(scenario: str) -> str:
    return f"dqfault-{scenario}-{uuid.uuid4().hex[:10]}"


def marked_processes(marker: str) -> list[psutil.Process]:
    """Live processes whose command line or environment carries *marker*."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        if marker in " ".join(proc.info.get("cmdline") or []):
            found.append(proc)
            continue
        try:
            if proc.environ().get(MARK_ENV) == marker:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def describe(procs: list[psutil.Process]) -> str:
    out = []
    for proc in procs:
        try:
            out.append(f"{proc.pid} {' '.join(proc.cmdline())!r}")
        except psutil.Error:
            out.append(f"{proc.pid} (gone)")
    return "; ".join(out)


def frame_cmd(marker: str, frames: Path, body: str) -> str:
    """A shell template whose process carries *marker* as its $0 and that records each run of a
    frame: one line in FRAME.start when it starts, one in FRAME.done when *body* succeeded."""
    frames.mkdir(parents=True, exist_ok=True)
    record = f"{frames}/$DRQUEUE_FRAME"
    return (
        f"sh -c 'echo $DRQUEUE_COMPID >> {record}.start && {body} && "
        f"echo $DRQUEUE_COMPID >> {record}.done' {marker}"
    )


def submit(farm: Farm, marker: str, cmd: str, frames: int, **options) -> int:
    env = {MARK_ENV: marker, **options.pop("env", {})}
    job = farm.client.submit(
        "shell", None, start=1, end=frames, name=marker, env=env, params={"cmd": cmd}, **options
    )
    return job["id"]


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


def store_events(farm: Farm, job_id: int) -> Counter:
    """(task index, kind) -> count of every event of the job's tasks, read from the master's
    store itself, page by page through the Store interface (the API lists only the newest 200
    events of a job)."""
    found: Counter = Counter()
    with contextlib.closing(open_store(farm.config.store_url)) as store:
        before = None
        while page := store.events(job_id=job_id, before_id=before, limit=1000):
            found.update((e.task_index, e.kind) for e in page if e.task_index is not None)
            before = page[0].id
    return found


def check_invariants(
    farm: Farm,
    job_ids: list[int],
    marker: str,
    frames: Path | None = None,
    *,
    all_finished: bool = True,
    finished_stat_before: int | None = None,
    orphan_timeout: float = 30,
) -> dict:
    """The checks every scenario ends with; returns a summary for the test to print."""
    summary = {"tasks": 0, "finished": 0, "error": 0, "attempts": 0, "requeued": 0, "failed": 0}
    for job_id in job_ids:
        job = farm.wait_job(job_id, timeout=120)  # idle: every task ended
        tasks = farm.client.tasks(job_id)
        counts = job["counts"]
        by_state = Counter(task["state"] for task in tasks)
        # The counts on the job row agree with its tasks, and nothing is left in flight.
        assert counts["total"] == len(tasks), (counts, len(tasks))
        assert counts["finished"] == by_state["finished"], (counts, by_state)
        assert counts["error"] == by_state["error"], (counts, by_state)
        assert counts["cancelled"] == by_state["cancelled"], (counts, by_state)
        assert counts["queued"] == by_state["queued"] == 0, (counts, by_state)
        assert counts["running"] == by_state["dispatched"] + by_state["running"] == 0, (
            counts,
            by_state,
        )
        assert sorted(task["index"] for task in tasks) == list(range(len(tasks)))
        if all_finished:
            assert job["status"] == "finished", (job["status"], counts)
        events = store_events(farm, job_id)
        for task in tasks:
            index, state = task["index"], task["state"]
            assert state in ("finished", "error"), task
            failed = events[(index, "task.failed")]
            requeued = events[(index, "task.requeued")]
            # Each attempt ended once: failed, requeued (lost, restart) or, for the last, finished.
            ended = failed + requeued + (1 if state == "finished" else 0)
            assert task["attempts"] == ended, (task, failed, requeued)
            assert task["failures"] == failed, (task, failed)
            assert task["lost"] <= requeued, (task, requeued)
            if state == "finished":
                assert task["attempts"] >= 1 and task["progress"] == 1.0, task
                assert task["reason"] is None, task
            else:
                assert task["reason"], f"task {index} is in error without a reason: {task}"
            if frames is not None:
                frame = task["start"]
                starts = lines(frames / f"{frame}.start")
                done = lines(frames / f"{frame}.done")
                # A render runs only for a dispatch (ipyparallel never runs a task twice).
                assert len(starts) <= task["attempts"], (task, starts)
                if state == "finished":
                    assert done, f"frame {frame} is finished but never rendered to the end"
                    assert task["computer"] in done, (task, done)
            summary["attempts"] += task["attempts"]
            summary["requeued"] += requeued
            summary["failed"] += failed
        summary["tasks"] += len(tasks)
        summary["finished"] += by_state["finished"]
        summary["error"] += by_state["error"]
    if finished_stat_before is not None:
        # One master lifetime: the dispatcher counted each finish once.
        stats = farm.client.farm()
        assert stats["finished"] - finished_stat_before == summary["finished"], stats
        summary["stale"] = stats["stale"]
    wait_for(
        lambda: not marked_processes(marker),
        orphan_timeout,
        0.5,
        f"render processes of {marker} to end",
    )
    return summary


def dump_logs(farm: Farm) -> None:
    for path in sorted(farm.root.glob("*.out")) + [farm.root / "logs" / "controller.log"]:
        with contextlib.suppress(OSError):
            print(f"==== {path.name} ====\n{path.read_text(errors='replace')[-4000:]}")


@contextlib.contextmanager
def running_farm(root: Path, slaves: dict[str, int], **settings):
    """A started farm with slaves {name: slots}; its logs are printed if the test fails."""
    farm = Farm(root, **settings)
    try:
        farm.start_master()
        for name, slots in slaves.items():
            farm.add_slave(name, slots=slots)
        farm.wait_engines(sum(slaves.values()))
        yield farm
    except BaseException:
        dump_logs(farm)
        raise
    finally:
        farm.stop()


def signal_all(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


# -- a. engines SIGKILLed at random during a 200-task job --------------------------------------------


def _age(pid: int) -> float:
    try:
        return time.time() - psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def _random_engine_kills(tmp_path: Path, tasks: int, kills: int, **settings: str) -> None:
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    rnd = random.Random(seed)
    marker = new_marker("engines")
    frames = tmp_path / "frames"
    with running_farm(tmp_path / "farm", {"a1": 2, "a2": 2}, **settings) as farm:
        before = farm.client.farm()["finished"]
        job_id = submit(farm, marker, frame_cmd(marker, frames, "sleep 0.2"), tasks)
        killed = 0
        while killed < kills and farm.client.job(job_id)["status"] != "finished":
            time.sleep(rnd.uniform(0.4, 1.6))  # pacing the faults, not a wait for a state
            # Engines up for a few seconds are registered and most likely rendering; a freshly
            # restarted one is still registering and would make the kill a no-op for the job.
            pids = [pid for pid in farm.engine_pids("a1") + farm.engine_pids("a2") if _age(pid) > 4]
            if not pids:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(rnd.choice(pids), signal.SIGKILL)
                killed += 1
        assert killed >= min(kills, 3), f"only {killed} engines were killed before the job ended"
        job = farm.wait_job(job_id, timeout=240)
        assert job["status"] == "finished", job
        summary = check_invariants(farm, [job_id], marker, frames, finished_stat_before=before)
        stats = farm.client.farm()
        assert stats["lost"] >= 1, f"no kill hit a running task: {stats}"
        farm.wait_engines(4, timeout=90)  # every killed engine came back
        print(f"{killed} engines killed: {summary}, {stats}")


@pytest.mark.parametrize("store", FARM_STORES)
def test_random_engine_sigkills_during_a_200_task_job(tmp_path, store, store_settings):
    _random_engine_kills(tmp_path, tasks=200, kills=6, **store_settings(store))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_many_random_engine_sigkills_during_a_500_task_job(tmp_path):
    _random_engine_kills(tmp_path, tasks=500, kills=25)


# -- b. the master and its controller SIGKILLed mid-job, restarted, three times ------------------------


def _master_restarts(tmp_path: Path, restarts: int, tasks: int, **settings: str) -> None:
    marker = new_marker("master")
    frames = tmp_path / "frames"
    with running_farm(tmp_path / "farm", {"b1": 1, "b2": 1}, **settings) as farm:
        job_id = submit(farm, marker, frame_cmd(marker, frames, "sleep 0.3"), tasks)
        for round_ in range(restarts):
            target = farm.client.job(job_id)["counts"]["finished"] + 2

            def mid_job(target=target):
                counts = farm.client.job(job_id)["counts"]
                return counts["finished"] >= target and counts["running"] >= 1

            wait_for(mid_job, 120, 0.1, f"job progress before kill {round_ + 1}")
            killed_at = time.monotonic()
            farm.kill_master()  # SIGKILL; its controller dies with it
            farm.start_master()
            # The slaves rejoin by themselves: no engine restart is asked for.
            farm.wait_engines(2, timeout=120)
            print(f"kill {round_ + 1}: slaves back {time.monotonic() - killed_at:.1f} s after it")
        job = farm.wait_job(job_id, timeout=240)
        assert job["status"] == "finished", job
        summary = check_invariants(farm, [job_id], marker, frames)
        restart_events = [e for e in farm.client.events() if e["kind"] == "master.restart"]
        assert restart_events, "no master start requeued anything: the kills missed the job"
        assert summary["requeued"] >= 1, summary
        assert job["counts"]["finished"] == tasks
        print(f"{restarts} master kills: {summary}, {len(restart_events)} restarts requeued tasks")


@pytest.mark.parametrize("store", FARM_STORES)
def test_master_sigkill_and_restart_three_times_mid_job(tmp_path, store, store_settings):
    _master_restarts(tmp_path, restarts=3, tasks=36, **store_settings(store))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_master_sigkill_and_restart_eight_times_mid_job(tmp_path):
    _master_restarts(tmp_path, restarts=8, tasks=150)


# -- c. a whole slave vanishes (SIGSTOP), then comes back ----------------------------------------------


@pytest.mark.parametrize("store", FARM_STORES)
def test_frozen_slave_task_is_requeued_and_its_late_result_ignored(tmp_path, store, store_settings):
    marker = new_marker("frozen")
    frames = tmp_path / "frames"
    settings = {"heartbeat_ms": 500, "heartbeat_misses": 4, "engine_register_timeout": 10}
    settings |= store_settings(store)
    with running_farm(tmp_path / "farm", {"steady": 1, "frozen": 1}, **settings) as farm:
        before = farm.client.farm()["finished"]
        job_id = submit(farm, marker, frame_cmd(marker, frames, "sleep 2"), 6)

        def frozen_rendering():
            for task in farm.client.tasks(job_id):
                started = lines(frames / f"{task['start']}.start")
                if (
                    task["computer"] == "frozen"
                    and task["state"] in ("dispatched", "running")
                    and started == ["frozen"]
                ):
                    return task
            return None

        victim = wait_for(frozen_rendering, 60, 0.05, "a task rendering on slave 'frozen'")
        launcher = psutil.Process(farm.slaves["frozen"].pid)
        rest = launcher.children(recursive=True)  # engine, nanny, render
        assert len(rest) >= 3, describe(rest)
        signal_all([launcher], signal.SIGSTOP)  # the launcher first: it must not react
        signal_all(rest, signal.SIGSTOP)
        frozen_at = time.time()
        try:

            def moved():
                task = farm.client.tasks(job_id)[victim["index"]]
                return task["state"] == "finished" and task["computer"] == "steady" and task

            # period 0.5 s x 4 misses: lost after ~2 s; generous for a loaded machine.
            redone = wait_for(moved, 60, 0.1, "the frozen slave's task to finish elsewhere")
            requeued_at = [
                e["at"]
                for e in farm.client.events(job_id)
                if e["kind"] == "task.requeued" and e["task_index"] == victim["index"]
            ]
            assert requeued_at, "the task was not requeued"
            detection = requeued_at[0] - frozen_at
            assert detection < 30, f"a vanished slave was detected after {detection:.1f} s"

            # The frozen engine comes back (its launcher still frozen) and finishes its frame.
            signal_all(rest, signal.SIGCONT)
            done = frames / f"{victim['start']}.done"
            wait_for(lambda: "frozen" in lines(done), 60, 0.1, "the stale frame to finish")
            # Its result is stale: the task stays finished once, by the steady slave.
            wait_for(lambda: farm.client.job(job_id)["status"] == "finished", 120, 0.2, "job 1")
            after = farm.client.tasks(job_id)[victim["index"]]
            assert after["computer"] == "steady" and after["attempts"] == redone["attempts"], after
            assert after["ended_at"] == redone["ended_at"], (after, redone)
        finally:
            signal_all(rest, signal.SIGCONT)
            signal_all([launcher], signal.SIGCONT)
        # The launcher sees its engine is no longer registered and restarts it.
        farm.wait_engines(2, timeout=120)
        second = submit(
            farm,
            marker,
            frame_cmd(marker, tmp_path / "frames2", "true"),
            2,
            requirements={"hosts": ["frozen"]},
        )
        assert farm.wait_job(second, timeout=120)["status"] == "finished"
        slave_log = (farm.root / "slave-frozen.out").read_text()
        assert "does not count it as registered" in slave_log, slave_log[-2000:]
        summary = check_invariants(farm, [job_id], marker, frames)
        summary2 = check_invariants(
            farm, [second], marker, tmp_path / "frames2", finished_stat_before=before + 6
        )
        print(f"detected in {detection:.1f} s; {summary}; rejoined: {summary2}")


# -- d. the controller alone dies --------------------------------------------------------------------


def _controller_dies(tmp_path: Path, which: str, **settings: str) -> None:
    marker = new_marker("controller")
    frames = tmp_path / "frames"
    with running_farm(tmp_path / "farm", {"d1": 1, "d2": 1}, **settings) as farm:
        job_id = submit(farm, marker, frame_cmd(marker, frames, "sleep 0.3"), 16)
        wait_for(
            lambda: (c := farm.client.job(job_id)["counts"])["finished"] >= 2 and c["running"],
            120,
            0.1,
            "job progress",
        )
        pids = farm.controller_pids()
        main = [pid for pid in pids if psutil.Process(pid).ppid() == farm.master_proc.pid]
        assert len(main) == 1, (pids, main)
        if which == "all":
            victims = pids
        else:  # one of its forked schedulers; the controller process itself lives on
            victims = [random.choice([pid for pid in pids if pid != main[0]])]
        killed_at = time.monotonic()
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # The master notices and exits non-zero (its supervisor restarts it) ...
        wait_for(lambda: farm.master_proc.poll() is not None, 60, 0.1, "the master to exit")
        exited = time.monotonic() - killed_at
        assert farm.master_proc.returncode not in (0, None), farm.master_proc.returncode
        out = (farm.root / "master.out").read_text()
        assert "the ipyparallel controller died" in out, out[-2000:]
        assert not farm.controller_pids(), "the master left controller processes behind"
        # ... as systemd's Restart=on-failure would.
        farm.start_master()
        farm.wait_engines(2, timeout=120)
        job = farm.wait_job(job_id, timeout=240)
        assert job["status"] == "finished", job
        summary = check_invariants(farm, [job_id], marker, frames)
        print(f"controller ({which}) killed: master exited after {exited:.1f} s; {summary}")


@pytest.mark.parametrize("store", FARM_STORES)
def test_controller_death_makes_the_master_exit_and_a_restart_finishes_the_job(
    tmp_path, store, store_settings
):
    _controller_dies(tmp_path, "all", **store_settings(store))


@pytest.mark.slow
def test_a_dead_scheduler_process_makes_the_master_exit(tmp_path):
    _controller_dies(tmp_path, "one-scheduler")


# -- e, f and a leftover render: one farm ------------------------------------------------------------


@pytest.fixture(scope="module", params=FARM_STORES)
def worker_farm(request, tmp_path_factory, store_settings):
    """A master with one one-slot slave, 'worker', shared by the scenarios below: one farm on
    each store in turn."""
    root = tmp_path_factory.mktemp(f"faults-{request.param}")
    with running_farm(root, {"worker": 1}, **store_settings(request.param)) as farm:
        yield farm


def _gated_job(farm: Farm, marker: str, cmd: str, frames: int, **options) -> tuple[int, Path]:
    """Submit a job no slave may run yet (it needs a pool nobody is in); returns the job id and
    its log directory, which the test may sabotage before opening the gate with _open_gate."""
    pool = f"gate-{marker}"
    farm.client.create_pool(pool)
    job_id = submit(farm, marker, cmd, frames, requirements={"pools": [pool]}, **options)
    return job_id, farm.config.logs_dir / str(job_id)


def _open_gate(farm: Farm, marker: str) -> None:
    farm.client.pool_member(f"gate-{marker}", "worker", True)


@contextlib.contextmanager
def full_tmpfs(path: Path):
    """A 64 KB tmpfs at *path*, or skip the test where mounting is not permitted."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.parametrize(
    "fault", ["log-folder-is-unwritable", "log-on-a-full-device", "log-disk-fills-mid-render"]
)
def test_unwritable_log_blames_no_one_and_the_slave_serves_on(worker_farm, tmp_path, fault):
    """A task whose log cannot be written is the shared storage's fault, not the slave's nor the
    job's: it goes back to the queue with no failure counted (even with retries=0), no host is
    blocked, other jobs run on the slave meanwhile, and once the storage is fixed it finishes."""
    farm = worker_farm
    marker = new_marker("log")
    body = (
        "yes drqueue-fault-output | head -c 1000000"
        if fault == "log-disk-fills-mid-render"
        else "true"
    )
    cmd = f"sh -c '{body}' {marker}"
    job_id, log_dir = _gated_job(farm, marker, cmd, 1, retries=0)
    with contextlib.ExitStack() as undo:
        if fault == "log-folder-is-unwritable":
            # (A file or a link in its place would not do: the runner replaces those.)
            expected = unwritable_folder(log_dir)
            undo.callback(log_dir.rmdir)
        elif fault == "log-on-a-full-device":
            # (A link to /dev/full would not do: the runner never writes through a link.)
            undo.enter_context(full_tmpfs(log_dir))
            filler = log_dir / "filler"
            with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
                while True:  # every write to the log then fails: ENOSPC
                    out.write(b"x" * 4096)
            expected = "No space left on device"
        else:
            undo.enter_context(full_tmpfs(log_dir))
            expected = "No space left on device"
        _open_gate(farm, marker)

        def tried_twice() -> dict | None:
            task = farm.client.tasks(job_id)[0]
            return task if task["attempts"] >= 2 and task["state"] == "queued" else None

        task = wait_for(tried_twice, 120, 0.1, "the task tried again after its log failed")
        assert "cannot write the task log" in task["reason"] and expected in task["reason"], task
        assert "not counted as a failure" in task["reason"], task
        assert task["failures"] == 0, task
        job = farm.client.job(job_id)
        assert job["status"] != "error" and not job["blocked_hosts"], job
        # The slave is not harmed: the next job runs on it while the broken one is held.
        frames = tmp_path / "frames"
        next_id = submit(
            farm, marker, frame_cmd(marker, frames, "true"), 3, requirements={"hosts": ["worker"]}
        )
        assert farm.wait_job(next_id, timeout=120)["status"] == "finished"
    # The storage is fixed (the file removed, the full tmpfs unmounted): the job finishes.
    assert farm.wait_job(job_id, timeout=120)["status"] == "finished"
    check_invariants(farm, [job_id, next_id], marker, all_finished=False)
    check_invariants(farm, [next_id], marker, frames)


@pytest.mark.parametrize(
    "script",
    [
        "sleep 300 & sleep 300",
        "setsid sleep 300 & sleep 300",  # a child that left the render's process group
        'trap "" TERM; sleep 300 & sleep 300',  # deaf to SIGTERM: SIGKILL after the grace time
    ],
    ids=["children", "setsid-child", "ignores-sigterm"],
)
def test_timeout_kills_the_whole_render_tree(worker_farm, script):
    farm = worker_farm
    marker = new_marker("timeout")
    job_id = submit(farm, marker, f"sh -c '{script}' {marker}", 1, timeout=2, retries=0)
    wait_for(lambda: len(marked_processes(marker)) >= 3, 60, 0.1, "the render and its children")
    job = farm.wait_job(job_id, timeout=120)
    # The runner returns only once the whole tree is gone, so nothing may be left now.
    left = marked_processes(marker)
    assert not left, f"render processes survived the time-out: {describe(left)}"
    task = farm.client.tasks(job_id)[0]
    assert job["status"] == "error" and task["reason"].startswith("timed out after 2 s"), task
    check_invariants(farm, [job_id], marker, all_finished=False, orphan_timeout=1)


def test_sigkilled_engine_leaves_no_render_behind(worker_farm, tmp_path):
    """A SIGKILLed engine's render runs in its own session and would outlive it; the slave
    stops it when it restarts the engine (the render carries the engine's DRQUEUE_ENGINE_UUID)."""
    farm = worker_farm
    marker = new_marker("leftover")
    frames = tmp_path / "frames"
    first = tmp_path / "first-attempt"
    body = f"if [ -e {first} ]; then true; else touch {first}; sleep 120; fi"
    job_id = submit(farm, marker, frame_cmd(marker, frames, body), 1)
    wait_for(first.exists, 60, 0.1, "the first attempt to start")
    wait_for(lambda: len(marked_processes(marker)) >= 2, 30, 0.1, "the render and its sleep")
    for pid in farm.engine_pids("worker"):
        os.kill(pid, signal.SIGKILL)
    job = farm.wait_job(job_id, timeout=120)
    assert job["status"] == "finished", job
    task = farm.client.tasks(job_id)[0]
    assert task["attempts"] == 2 and task["lost"] == 1, task
    check_invariants(farm, [job_id], marker, frames, orphan_timeout=20)
    farm.wait_engines(1)
