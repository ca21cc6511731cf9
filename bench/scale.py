"""Scale on one machine with real engines (issue 14.2): 8 to 128 engines, DrQueue and raw
ipyparallel on the same engines.

    python bench/scale.py [--sizes 8,32,64,128] [--slots 8] [--seconds 0.2] [--waves 10] [--min-tasks 320]
                          [--idle 20] [--raw-start 8,32] [--src DIR]

For each size N (N / ``--slots`` slaves of ``--slots`` slots each: 16 x 8 at 128):

1. **Start.** A real ``drqueue master`` (tests/farm.py), then the slaves; the time from the
   slaves' start until ``GET /farm`` counts N engines *usable* (registered and probed for
   their computer's info, so the dispatcher would send them tasks).  For the sizes in
   ``--raw-start``, the same for raw ipyparallel (``ipyparallel.Cluster`` with N engines, timed
   to ``wait_for_engines``); a raw start is a second start of N engines, so it is left out
   at the large sizes to fit ``make bench``'s 15 minutes.
2. **DrQueue.** After one warm-up task per engine, one shell job of ``--waves`` x N (at least
   ``--min-tasks``) one-frame tasks of ``sleep SECONDS``: throughput (tasks / makespan, the submit to the job's
   ``finished_at``), makespan / ideal (ideal = tasks x seconds / N), and the CPU the master,
   its controller and the slaves with their engines spent per task (psutil, process and children).
3. **Raw ipyparallel on the same engines.** A raw ``ipyparallel.Client`` on the master's own
   controller (the dispatcher has no job then: it sends nothing but an occasional info
   probe), a LoadBalancedView running ``subprocess.run(["sleep", SECONDS])`` as many times:
   throughput, makespan / ideal, controller CPU per task, and this process's CPU per task
   (the raw Client's side: the counterpart of the master's).
4. **Idle.** At the largest size, the master's and the controller's CPU over ``--idle``
   seconds with every engine registered and nothing to run, in % of one core.

Memory: the engines' and the controller's PSS are printed for each size; before each size the
engines' PSS of the last size, scaled, is checked against the memory available, and a size
that would not fit is left out with a row saying so (the largest that fitted is in the table).

Targets: master CPU per task flat (max / min within 1.2x over the sizes), idle master CPU
under 2 % of one core.  Everything started here is stopped before it returns.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    MB,
    api_client,
    cpu_seconds,
    drqueue_farm,
    master_processes,
    print_load,
    raw_cluster,
    report,
    row,
    submit_shell,
    wait_job,
    warm_up,
)
from farm import wait_for  # noqa: E402

#: Master CPU per task may grow this much from the smallest size to the largest (issue 14).
FLAT_RATIO = 1.2
#: Idle master CPU, % of one core, with every engine registered (issue 14).
IDLE_TARGET_PERCENT = 2.0
#: Head room kept free when deciding whether the next size fits in memory.
MEMORY_SPARE = 2 * 1024 * MB


def pss_mb(procs: list[psutil.Process]) -> float:
    """Proportional set size (MB) of *procs*: shared pages split between the processes that
    share them, so the sum is what they take together (RSS would count the pages a forked
    scheduler shares with its controller twice)."""
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_full_info().pss
    return total / MB


def wait_usable(farm: Any, engines: int, timeout: float) -> None:
    """Until GET /farm counts *engines* usable.  A master starved of CPU by a hundred engines
    importing ipyparallel on two cores may drop a poll: that is a slow start, not a failure."""
    from drqueue.errors import MasterUnreachable

    def usable() -> bool:
        try:
            return farm.client.farm()["engines"] >= engines
        except MasterUnreachable:
            return False

    wait_for(usable, timeout, 0.2, f"{engines} engines usable")


def own_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def run_size(args: argparse.Namespace, engines: int, idle: bool) -> dict[str, Any]:
    """Figures of one size: DrQueue's start and run, raw ipyparallel on the same engines."""
    import ipyparallel as ipp

    out: dict[str, Any] = {"engines": engines}
    tasks = max(args.waves * engines, args.min_tasks)
    with drqueue_farm(args.src, heartbeat_ms=2000, heartbeat_misses=10) as farm:
        farm.start_master()
        started = time.monotonic()
        slaves, extra = divmod(engines, args.slots)
        for i in range(slaves + (1 if extra else 0)):
            farm.add_slave(f"scale{i:02}", slots=args.slots if i < slaves else extra)
        wait_usable(farm, engines, timeout=60 + 5 * engines)
        out["start"] = time.monotonic() - started
        print(f"  drqueue: {engines} engines usable in {out['start']:.1f} s", flush=True)
        groups = master_processes(farm)
        with api_client(farm, timeout=120) as client:
            warm_up(client, engines, 120 + engines)
            time.sleep(1.0)  # the warm-up's last results recorded
            cpu0 = {k: cpu_seconds(v) for k, v in groups.items()}
            t0 = time.time()
            job = submit_shell(client, "scale", tasks=tasks, cmd=f"sleep {args.seconds:g}")
            # (polled twice a second: the makespan is the stored finished_at, and each poll is
            # master CPU that would be counted against the tasks)
            done = wait_job(client, job["id"], 120 + 2 * tasks * args.seconds, interval=0.5)
            cpu = {k: cpu_seconds(v) - cpu0[k] for k, v in groups.items()}
            assert done["counts"]["finished"] == tasks, done["counts"]
        out["makespan"] = done["finished_at"] - t0
        out["master_ms"] = 1000 * cpu["master"] / tasks
        out["controller_ms"] = 1000 * cpu["controller"] / tasks
        out["slaves_ms"] = 1000 * cpu["slaves+engines"] / tasks
        out["tasks"] = tasks
        out["engines_mb"] = pss_mb(groups["slaves+engines"])
        out["controller_mb"] = pss_mb(groups["controller"])
        print(
            f"  drqueue: {tasks} x sleep {args.seconds:g} in {out['makespan']:.2f} s; CPU ms per "
            f"task: master {out['master_ms']:.2f}, controller {out['controller_ms']:.2f}, slaves+"
            f"engines {out['slaves_ms']:.1f}; PSS: "
            f"engines+slaves {out['engines_mb']:.0f} MB, controller {out['controller_mb']:.0f} MB",
            flush=True,
        )

        # Raw ipyparallel, same engines, same controller: the master has no job left.
        rc = ipp.Client(str(farm.config.client_file), timeout=60)
        try:
            view = rc.load_balanced_view()
            view.wait([view.apply_async(subprocess.run, ["true"]) for _ in range(engines)])
            cpu0 = {"controller": cpu_seconds(groups["controller"]), "client": own_cpu()}
            t0 = time.monotonic()
            sleep = ["sleep", f"{args.seconds:g}"]
            results = [view.apply_async(subprocess.run, sleep, check=True) for _ in range(tasks)]
            view.wait(results)
            out["raw_makespan"] = time.monotonic() - t0
            out["raw_controller_ms"] = (
                1000 * (cpu_seconds(groups["controller"]) - cpu0["controller"]) / tasks
            )
            out["raw_client_ms"] = 1000 * (own_cpu() - cpu0["client"]) / tasks
            for ar in results:
                ar.get()  # a failed task is an error here, not a fast one
        finally:
            rc.close()
        print(
            f"  raw: {tasks} x sleep {args.seconds:g} in {out['raw_makespan']:.2f} s; CPU ms per "
            f"task: controller {out['raw_controller_ms']:.2f}, client {out['raw_client_ms']:.2f}",
            flush=True,
        )

        if idle:
            time.sleep(2.0)  # the raw run's last messages settled
            cpu0 = {k: cpu_seconds(v) for k, v in groups.items()}
            t0 = time.monotonic()
            time.sleep(args.idle)
            seconds = time.monotonic() - t0
            out["idle_master"] = 100 * (cpu_seconds(groups["master"]) - cpu0["master"]) / seconds
            out["idle_controller"] = (
                100 * (cpu_seconds(groups["controller"]) - cpu0["controller"]) / seconds
            )
            print(
                f"  idle {seconds:.0f} s with {engines} engines: master {out['idle_master']:.2f} "
                f"%, controller {out['idle_controller']:.2f} % of one core",
                flush=True,
            )

    if engines in args.raw_start:
        started = time.monotonic()
        with raw_cluster(engines, timeout=60 + 5 * engines):
            out["raw_start"] = time.monotonic() - started
        print(f"  raw: {engines} engines registered in {out['raw_start']:.1f} s", flush=True)
    return out


def size_rows(r: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    n = r["engines"]
    tasks = r["tasks"]
    ideal = tasks * args.seconds / n
    label = f"{n} engines"
    rows = [
        row(f"{label}: start until all usable (DrQueue)", round(r["start"], 1), "s"),
    ]
    if "raw_start" in r:
        rows.append(
            row(f"{label}: start until all registered (raw)", round(r["raw_start"], 1), "s")
        )
    rows += [
        row(
            f"{label}: throughput, {tasks} x {args.seconds:g} s (DrQueue / raw)",
            f"{tasks / r['makespan']:.0f} / {tasks / r['raw_makespan']:.0f}",
            "tasks/s",
        ),
        row(
            f"{label}: makespan / ideal {ideal:g} s (DrQueue / raw)",
            f"{r['makespan'] / ideal:.2f} / {r['raw_makespan'] / ideal:.2f}",
            "x",
        ),
        row(f"{label}: master CPU per task", round(r["master_ms"], 2), "ms"),
        row(
            f"{label}: controller CPU per task (DrQueue / raw)",
            f"{r['controller_ms']:.2f} / {r['raw_controller_ms']:.2f}",
            "ms",
        ),
        row(f"{label}: raw Client CPU per task", round(r["raw_client_ms"], 2), "ms"),
        row(
            f"{label}: slaves' and engines' CPU per task (DrQueue)", round(r["slaves_ms"], 1), "ms"
        ),
        row(
            f"{label}: memory (PSS) of slaves+engines / controller",
            f"{r['engines_mb']:.0f} / {r['controller_mb']:.0f}",
            "MB",
        ),
    ]
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,32,64,128", help="engines in total, comma-separated")
    parser.add_argument("--slots", type=int, default=8, help="slots (engines) per slave")
    parser.add_argument("--seconds", type=float, default=0.2, help="each task's sleep")
    parser.add_argument("--waves", type=int, default=10, help="tasks per engine")
    parser.add_argument("--min-tasks", type=int, default=320, help="tasks at the least")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of the idle figure")
    parser.add_argument(
        "--raw-start", default="8,32", help="sizes at which raw ipyparallel's start is timed too"
    )
    parser.add_argument(
        "--src", type=Path, help="run master and slaves from this source tree (PYTHONPATH)"
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    args.raw_start = {int(s) for s in args.raw_start.split(",") if s}
    print_load(
        f"scale: {sizes} engines, {args.slots} per slave, {args.waves} x sleep {args.seconds:g}"
    )

    results: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for engines in sizes:
        if results:
            per_engine = results[-1]["engines_mb"] / results[-1]["engines"]
            need = per_engine * engines * MB + MEMORY_SPARE
            available = psutil.virtual_memory().available
            if need > available:
                why = (
                    f"{engines} engines left out: need ~{need / 2**30:.1f} GB "
                    f"({per_engine:.0f} MB an engine), {available / 2**30:.1f} GB available"
                )
                print("  " + why, flush=True)
                rows.append(row(why, 0, ""))
                break
        print(f"{engines} engines:", flush=True)
        results.append(run_size(args, engines, idle=engines == sizes[-1]))
        rows += size_rows(results[-1], args)

    masters = [r["master_ms"] for r in results]
    spread = max(masters) / min(masters)
    rows.append(
        row(
            f"master CPU per task, largest / smallest ({results[0]['engines']} to "
            f"{results[-1]['engines']} engines)",
            round(spread, 2),
            "x",
            f"<= {FLAT_RATIO}",
            spread <= FLAT_RATIO,
        )
    )
    last = results[-1]
    if "idle_master" in last:
        rows.append(
            row(
                f"idle master CPU, {last['engines']} engines registered",
                round(last["idle_master"], 2),
                "% core",
                f"< {IDLE_TARGET_PERCENT:g}",
                last["idle_master"] < IDLE_TARGET_PERCENT,
            )
        )
        rows.append(
            row(
                f"idle controller CPU, {last['engines']} engines registered",
                round(last["idle_controller"], 2),
                "% core",
            )
        )
    return report("scale", rows)


if __name__ == "__main__":
    main()
