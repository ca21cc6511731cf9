"""Soak: 5,000 short tasks on 8 engines; the master's memory before, during and after.

    python bench/soak.py [--tasks 5000] [--rounds 2] [--slaves 2] [--slots 4] [--interval 0.5]
                         [--src DIR]

A real ``drqueue master`` and ``--slaves`` real ``drqueue slave --slots`` processes (started as
tests/farm.py does: real ipyparallel controller and engines on 127.0.0.1), 8 engines by default.
One untimed warm-up job of one task per engine runs first, so that the engines' first imports and
the master's first-use allocations are not counted as growth.  Then a shell job of ``--tasks``
one-frame tasks running ``true`` is submitted through the API and followed until it ends, and
again ``--rounds`` times in all (default 2: growth that continues in the second job is a leak;
growth that stops was warm-up).

Memory: the resident set (RSS) of the master process itself, and separately of its ipyparallel
controller (the controller process, and the controller with the scheduler processes it forks,
summed: forked processes share pages, so the sum overstates their real use).  It is sampled
just before the first submit ("before"), every ``--interval`` seconds by a thread while the
jobs run (the maximum is "peak"), and ``--settle`` seconds after each job ended ("after job N").

Also reported: the wall time from the submit request to the job's end as the API reports it
(polled every 0.2 s), tasks per second, and whether every task finished and was counted exactly
once: each task ``finished`` in the store, and the dispatcher's own ``finished`` counter moved by
exactly the number of tasks, none failed.  Next to it, from the dispatcher's counters and the
tasks: dispatches beyond one per task (a task prefetched behind a slow one is taken back and sent
again), results ignored as stale (a taken-back attempt that had started: that frame ran twice and
is counted once, as docs/reliability.md allows), tasks with more than one attempt, and attempts
lost with an engine the controller declared dead (on a heavily loaded machine a starved engine can
miss its heartbeats): requeued, and still counted once.

Target: every task finished exactly once.  Memory and time are reported without targets.
``--src DIR`` runs the master and slaves from another source tree (PYTHONPATH), e.g. a
``git archive`` of one commit, so the figures belong to that commit and not to a working tree
others are editing.  Everything started here is stopped before it returns.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MB, api_client, drqueue_farm, print_load, report, submit_shell  # noqa: E402


def rss(pids: list[int]) -> int:
    """Summed RSS of *pids* in bytes (processes that have gone count 0)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_info().rss
    return total


class Sampler:
    """The master's, the controller's and the controller tree's RSS, sampled by a thread."""

    def __init__(self, master_pid: int, controller_pids: list[int], interval: float):
        self.master_pid = master_pid
        self.controller_pid = next(
            (p for p in controller_pids if psutil.Process(p).ppid() == master_pid),
            controller_pids[0],
        )
        self.controller_pids = controller_pids
        self.interval = interval
        self.peak = {"master": 0, "controller": 0, "controller tree": 0}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> dict[str, int]:
        return {
            "master": rss([self.master_pid]),
            "controller": rss([self.controller_pid]),
            "controller tree": rss(self.controller_pids),
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, value in self.sample().items():
                self.peak[key] = max(self.peak[key], value)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def wait_job_end(client, job_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while True:
        job = client.job(job_id)
        if job["status"] in ("finished", "error", "cancelled"):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} did not end within {timeout:.0f} s: {job['counts']}")
        if time.monotonic() - last_report > 15:
            print(
                f"  ... {job['counts']['finished']:,} of {job['counts']['total']:,} finished",
                flush=True,
            )
            last_report = time.monotonic()
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument(
        "--rounds", type=int, default=2, help="jobs of --tasks, one after the other"
    )
    parser.add_argument("--slaves", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4, help="engines per slave")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between RSS samples")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds after the job before 'after'"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds the job may take")
    parser.add_argument("--src", type=Path, help="run the master and slaves from this source tree")
    args = parser.parse_args(argv)
    engines = args.slaves * args.slots
    print_load()

    rows: list[dict[str, Any]] = []
    rounds: list[dict[str, Any]] = []  # per job: elapsed, after, exactly-once count and check
    with drqueue_farm(args.src) as farm:
        farm.start_master()
        for n in range(args.slaves):
            farm.add_slave(f"soak{n}", slots=args.slots)
        farm.wait_engines(engines, timeout=240)
        with api_client(farm, timeout=120) as client:
            warm = submit_shell(client, "soak-warm-up", tasks=engines)
            assert wait_job_end(client, warm["id"], 300)["status"] == "finished"
            time.sleep(args.settle)

            sampler = Sampler(farm.master_proc.pid, farm.controller_pids(), args.interval)
            before = sampler.sample()
            print(
                f"{engines} engines up; before: master {before['master'] / MB:.1f} MB, controller "
                f"{before['controller'] / MB:.1f} MB ({before['controller tree'] / MB:.1f} MB with "
                f"its {len(sampler.controller_pids) - 1} forked processes)",
                flush=True,
            )
            with sampler:
                for number in range(1, args.rounds + 1):
                    rounds.append(run_round(client, args, sampler, number))

    size = f"{args.tasks:,} tasks, {engines} engines"
    for r in rounds:
        label = f"{size}, job {r['number']} of {len(rounds)}"
        rows.append(
            {
                "figure": f"{label}: finished exactly once",
                "value": r["once"],
                "unit": "tasks",
                "target": f"= {args.tasks:,}",
                "ok": r["exact"],
            }
        )
        for key, what in (
            ("sent again", "dispatches beyond one per task (prefetched, taken back, sent again)"),
            ("stale", "results ignored as stale (a taken-back attempt that had started)"),
            ("attempts > 1", "tasks with more than one counted attempt"),
            ("lost", "attempts lost with their engine and requeued"),
        ):
            rows.append({"figure": f"{label}: {what}", "value": r[key], "unit": "tasks"})
        rows.append(
            {
                "figure": f"{label}: wall time, submit to job end",
                "value": round(r["elapsed"], 1),
                "unit": "s",
            }
        )
        rows.append(
            {
                "figure": f"{label}: throughput",
                "value": round(args.tasks / r["elapsed"], 1),
                "unit": "tasks/s",
            }
        )
    whats = {
        "master": "master RSS",
        "controller": "controller RSS",
        "controller tree": "controller + forked schedulers RSS (summed)",
    }
    for key, what in whats.items():
        rows.append(
            {"figure": f"{size}: {what} before", "value": round(before[key] / MB, 1), "unit": "MB"}
        )
        rows.append(
            {
                "figure": f"{size}: {what} peak, all jobs",
                "value": round(sampler.peak[key] / MB, 1),
                "unit": "MB",
            }
        )
        previous = before[key]
        for r in rounds:
            label = f"{size}: {what} after job {r['number']}"
            growth = r["after"][key] - previous
            previous = r["after"][key]
            rows.append({"figure": label, "value": round(r["after"][key] / MB, 1), "unit": "MB"})
            rows.append(
                {
                    "figure": f"{label}, growth in that job",
                    "value": round(growth / MB, 1),
                    "unit": "MB",
                }
            )
            rows.append(
                {
                    "figure": f"{label}, growth per task",
                    "value": round(growth / args.tasks / 1024, 2),
                    "unit": "KB",
                }
            )
    return report("soak", rows)


def run_round(client, args: argparse.Namespace, sampler: Sampler, number: int) -> dict[str, Any]:
    """One job of args.tasks tasks: its wall time, the RSS after it, and the exactly-once check."""
    stats0 = client.farm()
    t0 = time.perf_counter()
    job = submit_shell(client, f"soak-{number}", tasks=args.tasks)
    job = wait_job_end(client, job["id"], args.timeout)
    elapsed = time.perf_counter() - t0
    time.sleep(args.settle)
    after = sampler.sample()
    stats1 = client.farm()
    tasks = client.tasks(job["id"])
    once = sum(1 for t in tasks if t["state"] == "finished")
    keys = ("dispatched", "prefetched", "finished", "failed", "lost", "stale")
    moved = {key: stats1.get(key, 0) - stats0.get(key, 0) for key in keys}
    # Counted once: the store has every task finished, and the dispatcher recorded exactly that
    # many finishes (a second finish of a task would be a second count), none failed.  An attempt
    # lost with its engine (declared dead under load) is requeued and reported beside it.
    exact = (
        job["status"] == "finished"
        and len(tasks) == args.tasks
        and once == args.tasks
        and (moved["finished"], moved["failed"]) == (args.tasks, 0)
    )
    print(
        f"job {number}: {job['status']} in {elapsed:.1f} s; dispatcher counters moved by {moved}; "
        f"after: master {after['master'] / MB:.1f} MB, controller {after['controller'] / MB:.1f} MB",
        flush=True,
    )
    extra = {
        "sent again": moved["dispatched"] - args.tasks,
        "stale": moved["stale"],
        "attempts > 1": sum(1 for t in tasks if t["attempts"] > 1),
        "lost": moved["lost"],
    }
    return {
        "number": number,
        "elapsed": elapsed,
        "after": after,
        "once": once,
        "exact": exact,
        **extra,
    }


if __name__ == "__main__":
    main()
