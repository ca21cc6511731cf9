"""Latency: submit -> first task start on an idle farm, and an engine registering -> its first task.

    python bench/latency.py [--repeat 10] [--joins 3] [--engines 2] [--no-raw] [--src DIR]

(a) submit -> start.  A real ``drqueue master`` and one ``drqueue slave --slots ENGINES``
    (tests/farm.py's Farm), warmed up with one task per engine and then left idle.  Each of
    ``--repeat`` rounds submits a one-frame shell job (``cmd: true``) through drqueue.Client
    and waits for it to finish; the latency is the task's ``started_at`` from
    ``GET /jobs/ID/tasks`` (the time the runner started on the engine, as the engine's clock,
    the same machine's, reports it) minus the wall time taken just before the submit request.
    The submit request's own round trip is printed apart.  Median and max are reported.
(b) registration -> first task.  A master with no slaves gets a one-frame job (it waits,
    queued); then a slave with one slot starts.  The engine's registration time is when it
    first appears in ``ipyparallel.Client.ids`` of a client this benchmark connects to the
    master's controller, polled every 2 ms: the moment any client of the hub (the master's
    dispatcher included) can learn of it.  The latency is the task's ``started_at`` minus
    that.  The master's own log line "engine N ... ready X s after it registered" (the time
    its info probe took) is printed too.  The slave is then stopped and the round repeated
    ``--joins`` times (each with a new slave name); median and max are reported.

Baselines, same run (skip with ``--no-raw``): raw ipyparallel, its own controller
(``--nodb``) and ``ipyparallel.Cluster`` engines.  (a) a LoadBalancedView ``apply_async`` of
a function returning ``time.time()`` on an idle cluster of ENGINES engines, minus the time just
before the call (median of ``--repeat``); (b) the same apply submitted while no engine is
registered, then one engine started: its start minus the engine's appearance in ``Client.ids``
(median of ``--joins``).

Targets: (a) <= 0.1 s, (b) <= 1 s.  Everything started here is stopped before it returns.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    api_client,
    drqueue_farm,
    print_load,
    raw_cluster,
    report,
    row,
    submit_shell,
    wait_job,
    warm_up,
)

TARGET_SUBMIT = 0.1
TARGET_JOIN = 1.0
READY = re.compile(r"engine (\d+) \(slot \S+ of (\S+)\) ready ([\d.]+) s after it registered")


def _wait_ids(rc: Any, condition: Any, timeout: float, interval: float = 0.002) -> float:
    """Poll the ipyparallel client's engine ids until condition(ids); the wall time it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition(rc.ids):
            return time.time()
        if time.monotonic() > deadline:
            raise TimeoutError(f"engine ids still {rc.ids} after {timeout:.0f} s")
        time.sleep(interval)


def drqueue_submit_latency(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """(start latencies, submit round trips) on an idle farm."""
    with drqueue_farm(args.src) as farm:
        farm.start_master()
        farm.add_slave("lat", slots=args.engines)
        farm.wait_engines(args.engines, timeout=180)
        with api_client(farm, timeout=60) as client:
            warm_up(client, args.engines, 60)
            latencies, trips = [], []
            for i in range(args.repeat):
                time.sleep(0.5)  # idle: the dispatcher is back in its wait
                t0 = time.time()
                job = submit_shell(client, f"latency-{i}", tasks=1)
                trips.append(time.time() - t0)
                wait_job(client, job["id"], 60, interval=0.05)
                (task,) = client.tasks(job["id"])
                latencies.append(task["started_at"] - t0)
                print(
                    f"  drqueue submit -> start {latencies[-1] * 1000:6.1f} ms "
                    f"(submit request {trips[-1] * 1000:.1f} ms)",
                    flush=True,
                )
    return latencies, trips


def drqueue_join_latency(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """(registration -> first task start, registration -> 'ready' per the master's log)."""
    import ipyparallel

    with drqueue_farm(args.src) as farm:
        farm.start_master()
        client = api_client(farm, timeout=60)
        rc = ipyparallel.Client(str(farm.config.client_file), timeout=60)
        try:
            latencies, probes = [], []
            for i in range(args.joins):
                name = f"join{i}"
                job = submit_shell(client, f"join-{i}", tasks=1)
                time.sleep(0.3)  # the job is queued and the dispatcher idle
                t_slave = time.time()
                farm.add_slave(name, slots=1)
                t_reg = _wait_ids(rc, bool, 120)
                wait_job(client, job["id"], 120, interval=0.05)
                (task,) = client.tasks(job["id"])
                latencies.append(task["started_at"] - t_reg)
                log = (farm.root / "master.out").read_text(errors="replace")
                ready = [float(m[2]) for m in READY.findall(log) if m[1] == name]
                probes.append(ready[0] if ready else float("nan"))
                print(
                    f"  drqueue registration -> first task {latencies[-1] * 1000:6.0f} ms "
                    f"(slave start -> registration {t_reg - t_slave:.1f} s; master log: ready "
                    f"{probes[-1] * 1000:.0f} ms after it registered)",
                    flush=True,
                )
                farm.stop_slave(name)
                _wait_ids(rc, lambda ids: not ids, 60, 0.05)
                deadline = time.monotonic() + 60
                while client.farm()["engines"] and time.monotonic() < deadline:
                    time.sleep(0.1)
        finally:
            rc.close()
            client.close()
    return latencies, probes


def stamp() -> float:
    import time

    return time.time()


def raw_latencies(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """(submit -> start on an idle cluster, registration -> start of a waiting task)."""
    submit = []
    with raw_cluster(args.engines) as (_cluster, rc):
        view = rc.load_balanced_view()
        view.wait([view.apply_async(stamp) for _ in range(args.engines)])  # warm-up
        for _ in range(args.repeat):
            time.sleep(0.5)
            t0 = time.time()
            submit.append(view.apply_async(stamp).get(timeout=60) - t0)
            print(f"  raw submit -> start {submit[-1] * 1000:6.1f} ms", flush=True)
    join = []
    with raw_cluster(0) as (cluster, rc):
        view = rc.load_balanced_view()
        for _ in range(args.joins):
            ar = view.apply_async(stamp)
            time.sleep(0.3)
            cluster.start_engines_sync(n=1)
            t_reg = _wait_ids(rc, bool, 120)
            join.append(ar.get(timeout=60) - t_reg)
            print(f"  raw registration -> first task {join[-1] * 1000:6.1f} ms", flush=True)
            cluster.stop_engines_sync()
            _wait_ids(rc, lambda ids: not ids, 60, 0.05)
    return submit, join


def median_row(
    figure: str, seconds: list[float], digits: int, target: float | None = None
) -> dict[str, Any]:
    """The row of the median of *seconds*, with "(median of N)" after *figure*; the target,
    if any, is met at or below *target*."""
    median = statistics.median(seconds)
    figure = f"{figure} (median of {len(seconds)})"
    if target is None:
        return row(figure, round(median, digits), "s")
    return row(figure, round(median, digits), "s", f"<= {target:g}", median <= target)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="submit -> start rounds")
    parser.add_argument("--joins", type=int, default=3, help="registration -> first task rounds")
    parser.add_argument("--engines", type=int, default=2, help="engines of the idle farm in (a)")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw ipyparallel baselines")
    parser.add_argument(
        "--src", type=Path, help="run master and slaves from this source tree (PYTHONPATH)"
    )
    args = parser.parse_args(argv)
    print_load(f"latency: {args.repeat} submits, {args.joins} joins")

    submit, trips = drqueue_submit_latency(args)
    join, probes = drqueue_join_latency(args)
    rows = [
        median_row("DrQueue submit -> first task start, idle farm", submit, 3, TARGET_SUBMIT),
        row("DrQueue submit -> first task start, max", round(max(submit), 3), "s"),
        row("  of which the submit request (median)", round(statistics.median(trips), 3), "s"),
        median_row("DrQueue engine registered -> its first task start", join, 3, TARGET_JOIN),
        row("DrQueue engine registered -> its first task start, max", round(max(join), 3), "s"),
        row(
            "  of which the master's info probe (median, master log 'ready')",
            round(statistics.median(probes), 3),
            "s",
        ),
    ]
    if not args.no_raw:
        raw_submit, raw_join = raw_latencies(args)
        submit_ratio = statistics.median(submit) / statistics.median(raw_submit)
        join_ratio = statistics.median(join) / statistics.median(raw_join)
        rows += [
            median_row("raw LoadBalancedView submit -> start, idle cluster", raw_submit, 4),
            row("DrQueue / raw, submit -> start", round(submit_ratio, 1), "x"),
            median_row("raw engine registered -> waiting task start", raw_join, 4),
            row("DrQueue / raw, registered -> start", round(join_ratio, 1), "x"),
        ]
    return report("latency", rows)


if __name__ == "__main__":
    main()
