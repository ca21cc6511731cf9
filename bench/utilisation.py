"""Farm utilisation: 1,000 tasks of ``sleep 0.5`` on 32 engines, makespan against the ideal.

    python bench/utilisation.py [--tasks 1000] [--engines 32] [--slaves 4] [--seconds 0.5]
                                [--no-raw] [--src DIR]

(a) DrQueue: a real ``drqueue master`` and ``--slaves`` real ``drqueue slave`` processes
    sharing ``--engines`` slots between them (32 = 4 slaves x 8 slots), started as
    tests/farm.py does.  After one untimed warm-up task per engine (so engines have imported
    the runner), one shell job of ``--tasks`` one-frame tasks, ``cmd: sleep SECONDS``, block
    size 1, is submitted through drqueue.Client.  The makespan runs from the wall time just
    before the submit request to the job's ``finished_at`` as the API reports it (the master
    records it with the last result).  The ideal is total work / engines
    (1000 x 0.5 s / 32 = 15.6 s): every engine busy sleeping from the submit to the end.
    Tasks are whole, so no scheduler reaches it when engines do not divide tasks: the
    floor is ceil(tasks / engines) x seconds (32 x 0.5 = 16.0 s = 1.024 x ideal), printed too.
(b) raw ipyparallel, same run, after (a) has stopped: its own controller (``--nodb``) and
    ``--engines`` engines from ``ipyparallel.Cluster``, a LoadBalancedView applying
    ``subprocess.run(["sleep", SECONDS])`` ``--tasks`` times, timed from just before the
    first submit to the last result.  Skip it with ``--no-raw``.

Where the time goes is printed for both from each task's own start and end times (the
runner's ``started_at``/``ended_at`` from ``GET /jobs/ID/tasks``; the raw task returns its
own): the delay before the first task starts, the mean task duration (the sleep plus the
runner's overhead around it), the mean idle gap between one task's end and the next task's
start on the same engine (the dispatch round trip), and the busy fraction of engine-time.
The CPU seconds the master, its controller and the slaves' processes spent per task are
printed too.

Target: DrQueue makespan <= 1.03 x ideal.  Everything started here is stopped before it returns.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
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

TARGET_RATIO = 1.03


def timeline(
    t0: float, spans: dict[Any, list[tuple[float, float]]], engines: int
) -> dict[str, float]:
    """Figures from (start, end) of each task, grouped per engine, relative to submit time t0."""
    all_spans = [s for per in spans.values() for s in per]
    durations = [end - start for start, end in all_spans]
    gaps = []
    for per in spans.values():
        ordered = sorted(per)
        gaps += [b[0] - a[1] for a, b in zip(ordered, ordered[1:], strict=False)]
    last_end = max(end for _, end in all_spans)
    return {
        "first_start": min(start for start, _ in all_spans) - t0,
        "last_end": last_end - t0,
        "mean_duration": statistics.fmean(durations),
        "mean_gap": statistics.fmean(gaps) if gaps else 0.0,
        "median_gap": statistics.median(gaps) if gaps else 0.0,
        "max_gap": max(gaps) if gaps else 0.0,
        "engines_used": len(spans),
        "busy": sum(durations) / (engines * (last_end - t0)),
    }


def print_timeline(name: str, t: dict[str, float]) -> None:
    print(
        f"  {name}: first task started {t['first_start'] * 1000:.0f} ms after the submit; "
        f"mean task {t['mean_duration'] * 1000:.0f} ms; idle gap between tasks on one engine "
        f"mean {t['mean_gap'] * 1000:.0f} ms, median {t['median_gap'] * 1000:.0f} ms, "
        f"max {t['max_gap'] * 1000:.0f} ms; {t['engines_used']} engines used; "
        f"engines busy {t['busy']:.1%} of the time to the last task's end",
        flush=True,
    )


def run_drqueue(args: argparse.Namespace) -> dict[str, Any]:
    with drqueue_farm(args.src) as farm:
        started = time.monotonic()
        farm.start_master()
        per, extra = divmod(args.engines, args.slaves)
        for i in range(args.slaves):
            slots = per + (1 if i < extra else 0)
            if slots:
                farm.add_slave(f"util{i}", slots=slots)
        farm.wait_engines(args.engines, timeout=300)
        print(
            f"drqueue: {args.engines} engines up in {time.monotonic() - started:.1f} s", flush=True
        )
        with api_client(farm, timeout=120) as client:
            warm_up(client, args.engines, 120)
            time.sleep(1.0)
            groups = master_processes(farm)
            cpu0 = {k: cpu_seconds(v) for k, v in groups.items()}
            t0 = time.time()
            job = submit_shell(
                client, "utilisation", tasks=args.tasks, cmd=f"sleep {args.seconds:g}"
            )
            ideal = args.tasks * args.seconds / args.engines
            done = wait_job(client, job["id"], max(300, 20 * ideal), interval=0.25)
            cpu = {k: cpu_seconds(v) - cpu0[k] for k, v in groups.items()}
            assert done["counts"]["finished"] == args.tasks, done["counts"]
            tasks = client.tasks(job["id"])
    spans: dict[Any, list[tuple[float, float]]] = {}
    for task in tasks:
        spans.setdefault((task["computer"], task["engine_id"]), []).append(
            (task["started_at"], task["ended_at"])
        )
    result = {"makespan": done["finished_at"] - t0, **timeline(t0, spans, args.engines)}
    result["t0"], result["spans"] = t0, spans
    result["cpu_ms_per_task"] = {k: 1000 * v / args.tasks for k, v in cpu.items()}
    return result


def sleep_task(seconds: float) -> tuple[float, float, int]:
    import os
    import subprocess
    import time

    start = time.time()
    subprocess.run(["sleep", f"{seconds:g}"], check=True)
    return start, time.time(), os.getpid()


def run_raw(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    with raw_cluster(args.engines) as (_cluster, rc):
        print(f"raw: {args.engines} engines up in {time.monotonic() - started:.1f} s", flush=True)
        view = rc.load_balanced_view()
        view.wait([view.apply_async(sleep_task, 0) for _ in range(args.engines)])  # warm-up
        time.sleep(1.0)
        t0 = time.time()
        results = [view.apply_async(sleep_task, args.seconds) for _ in range(args.tasks)]
        view.wait(results)
        makespan = time.time() - t0
        spans: dict[Any, list[tuple[float, float]]] = {}
        for ar in results:
            start, end, pid = ar.get()
            spans.setdefault(pid, []).append((start, end))
    return {"makespan": makespan, **timeline(t0, spans, args.engines)}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--engines", type=int, default=32)
    parser.add_argument("--slaves", type=int, default=4, help="slaves sharing the engines")
    parser.add_argument("--seconds", type=float, default=0.5, help="each task's sleep")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw ipyparallel baseline")
    parser.add_argument(
        "--src", type=Path, help="run master and slaves from this source tree (PYTHONPATH)"
    )
    args = parser.parse_args(argv)
    n, k, s = args.tasks, args.engines, args.seconds
    ideal = n * s / k
    # Whole tasks: the last wave holds n % k tasks, so no scheduler can beat ceil(n / k) * s.
    floor = math.ceil(n / k) * s
    print_load(
        f"{n} x sleep {s:g} on {k} engines, ideal {ideal:.2f} s, "
        f"whole-task floor {floor:.2f} s = {floor / ideal:.3f} x ideal"
    )

    rows = []
    label = f"{n} x sleep {s:g} s on {k} engines"
    dq = run_drqueue(args)
    print(
        f"  drqueue: makespan {dq['makespan']:.2f} s = {dq['makespan'] / ideal:.3f} x ideal",
        flush=True,
    )
    print_timeline("drqueue", dq)
    print(
        "  drqueue CPU ms per task: "
        + ", ".join(f"{g} {v:.1f}" for g, v in dq["cpu_ms_per_task"].items()),
        flush=True,
    )
    ratio = dq["makespan"] / ideal
    rows.append(
        row(f"DrQueue makespan, {label} (ideal {ideal:.2f} s)", round(dq["makespan"], 2), "s")
    )
    rows.append(
        row(
            "DrQueue makespan / ideal",
            round(ratio, 3),
            "x",
            f"<= {TARGET_RATIO}",
            ratio <= TARGET_RATIO,
        )
    )
    rows.append(
        row(
            "DrQueue mean idle gap between tasks on one engine",
            round(dq["mean_gap"] * 1000),
            "ms",
        )
    )
    rows.append(
        row(
            f"DrQueue mean task duration (sleep {s:g} s + runner)",
            round(dq["mean_duration"] * 1000),
            "ms",
        )
    )
    rows.append(
        row(f"whole-task floor ceil({n}/{k}) x {s:g} s / ideal", round(floor / ideal, 3), "x")
    )
    if not args.no_raw:
        raw = run_raw(args)
        print(
            f"  raw: makespan {raw['makespan']:.2f} s = {raw['makespan'] / ideal:.3f} x ideal",
            flush=True,
        )
        print_timeline("raw", raw)
        rows.append(
            row(
                f"raw ipyparallel LoadBalancedView makespan, {label}",
                round(raw["makespan"], 2),
                "s",
            )
        )
        rows.append(row("raw makespan / ideal", round(raw["makespan"] / ideal, 3), "x"))
        rows.append(
            row(
                "raw mean idle gap between tasks on one engine", round(raw["mean_gap"] * 1000), "ms"
            )
        )
        rows.append(
            row("DrQueue makespan / raw makespan", round(dq["makespan"] / raw["makespan"], 3), "x")
        )
    return report("utilisation", rows)


if __name__ == "__main__":
    main()
