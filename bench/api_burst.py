"""API burst: a bounded burst of read requests while the farm renders, against the same burst idle.

    python bench/api_burst.py [--requests 2000] [--clients 4] [--tasks 500] [--task-seconds 0.2]
                              [--rounds 1] [--src DIR]

A real ``drqueue master`` and two ``drqueue slave --slots 2`` processes (4 engines, started as
tests/farm.py does) run one shell job of ``--tasks`` one-frame tasks (``sleep --task-seconds``).
While it runs ("busy"), ``--clients`` threads, each with its own keep-alive ``httpx.Client`` and
the admin token, send ``--requests`` GET requests in all, as fast as each gets its answers (a
closed loop), cycling through a mix a monitoring page would send:

    GET /api/v1/jobs                  the job list
    GET /api/v1/jobs/ID               job show
    GET /api/v1/jobs/ID/tasks         the running job's task list (--tasks rows)
    GET /api/v1/computers             the slaves and their current tasks
    GET /api/v1/events                the newest 200 events
    GET /api/v1/jobs/ID/events        the job's newest 200 events

Each request's latency is timed by the client (``time.perf_counter`` around the call, the body
read included).  Then the job is stopped and, once nothing runs, the same burst is sent to the now
idle farm ("idle", same jobs and tasks in the store); then the job continues.  ``--rounds``
repeats busy and idle alternately.  The burst's clients run on the same 2 cores as the master,
so they compete with it; the idle burst pays the same cost.

Reported: p50, p99 and max latency per route (busy) and overall (busy and idle), their busy/idle
ratios, requests per second, and that every request was answered 200.  The job must still be
running when each busy burst ends (otherwise part of the burst hit an idle farm: reported).

Target: every request answered 200.  Latencies are reported without targets.
Everything started here is stopped before it returns.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import api_client, drqueue_farm, print_load, report, submit_shell  # noqa: E402

ROUTES = (
    ("jobs", "/jobs"),
    ("job show", "/jobs/{job}"),
    ("tasks", "/jobs/{job}/tasks"),
    ("computers", "/computers"),
    ("events", "/events"),
    ("job events", "/jobs/{job}/events"),
)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class Burst:
    """The latencies (seconds, by route) and statuses of one burst."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[int, int] = defaultdict(int)
        self.seconds = 0.0

    @property
    def all(self) -> list[float]:
        return [x for values in self.latency.values() for x in values]

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def merge(self, other: Burst) -> None:
        for route, values in other.latency.items():
            self.latency[route] += values
        for status, count in other.statuses.items():
            self.statuses[status] += count
        self.seconds += other.seconds


def burst(base_url: str, token: str, job_id: int, requests: int, clients: int) -> Burst:
    """Send *requests* GETs from *clients* threads; the mix cycles through ROUTES."""
    result = Burst()
    lock = threading.Lock()
    paths = [(name, path.format(job=job_id)) for name, path in ROUTES]
    shares = [requests // clients + (1 if n < requests % clients else 0) for n in range(clients)]
    start = threading.Barrier(clients + 1)

    def client(number: int, count: int) -> None:
        mine = Burst()
        with httpx.Client(
            base_url=f"{base_url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as http:
            start.wait()
            for n in range(count):
                name, path = paths[(number + n) % len(paths)]
                t0 = time.perf_counter()
                try:
                    response = http.get(path)
                    response.read()
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                mine.latency[name].append(time.perf_counter() - t0)
                mine.statuses[status] += 1
        with lock:
            result.merge(mine)

    threads = [
        threading.Thread(target=client, args=(n, c), name=f"burst-{n}")
        for n, c in enumerate(shares)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - t0
    return result


def summary(label: str, result: Burst) -> str:
    lines = [
        f"{label}: {result.requests} requests in {result.seconds:.1f} s "
        f"({result.requests / result.seconds:.0f}/s), statuses {dict(result.statuses)}",
        f"  {'route':<11} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
    ]
    for name, _ in ROUTES:
        values = result.latency[name]
        lines.append(
            f"  {name:<11} {len(values):>5} {percentile(values, 50) * 1e3:>8.1f} "
            f"{percentile(values, 99) * 1e3:>8.1f} {max(values) * 1e3:>8.1f}"
        )
    values = result.all
    lines.append(
        f"  {'all':<11} {len(values):>5} {percentile(values, 50) * 1e3:>8.1f} "
        f"{percentile(values, 99) * 1e3:>8.1f} {max(values) * 1e3:>8.1f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from farm import wait_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per burst")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--tasks", type=int, default=500, help="tasks of the running job")
    parser.add_argument(
        "--task-seconds", type=float, default=0.2, help="each task runs sleep this long"
    )
    parser.add_argument("--rounds", type=int, default=1, help="busy and idle bursts, alternating")
    parser.add_argument("--src", type=Path, help="run the master and slaves from this source tree")
    args = parser.parse_args(argv)
    print_load()

    busy, idle = Burst(), Burst()
    still_running: list[bool] = []
    finished_during: list[int] = []
    with drqueue_farm(args.src) as farm:
        farm.start_master()
        farm.add_slave("burst0", slots=2)
        farm.add_slave("burst1", slots=2)
        farm.wait_engines(4, timeout=240)
        token = farm.config.api_token()
        with api_client(farm, timeout=120) as client:
            job_id = submit_shell(
                client, "burst", tasks=args.tasks, cmd=f"sleep {args.task_seconds:g}"
            )["id"]

            def running() -> bool:
                return client.job(job_id)["counts"]["running"] > 0

            for round_ in range(args.rounds):
                wait_for(
                    lambda: running() and client.job(job_id)["counts"]["finished"] > 0,
                    60,
                    0.1,
                    "the job to run",
                )
                done0 = client.job(job_id)["counts"]["finished"]
                result = burst(client.url, token, job_id, args.requests, args.clients)
                job = client.job(job_id)
                still_running.append(job["status"] == "running" and job["counts"]["running"] > 0)
                finished_during.append(job["counts"]["finished"] - done0)
                print(
                    summary(f"busy {round_ + 1}", result)
                    + f"\n  {finished_during[-1]} tasks finished during the burst; job still running "
                    f"at its end: {still_running[-1]}",
                    flush=True,
                )
                busy.merge(result)

                client.job_action(job_id, "stop")
                wait_for(lambda: not running(), 60, 0.1, "the stopped job's running tasks to end")
                result = burst(client.url, token, job_id, args.requests, args.clients)
                print(summary(f"idle {round_ + 1}", result), flush=True)
                idle.merge(result)
                client.job_action(job_id, "continue")
            client.job_action(job_id, "kill")

    rows: list[dict[str, Any]] = []
    size = f"{args.requests:,} GETs x{args.rounds}, {args.clients} clients"
    answered = busy.statuses.get(200, 0) + idle.statuses.get(200, 0)
    total = busy.requests + idle.requests
    rows.append(
        {
            "figure": f"{size}: answered 200 (busy and idle)",
            "value": answered,
            "unit": "requests",
            "target": f"= {total:,}",
            "ok": answered == total,
        }
    )
    rows.append(
        {
            "figure": f"{size}: job running through every busy burst",
            "value": all(still_running),
            "unit": "",
            "target": "True",
            "ok": all(still_running),
        }
    )
    for name, _ in ROUTES:
        values = busy.latency[name]
        for q in (50, 99):
            rows.append(
                {
                    "figure": f"busy: {name} p{q}",
                    "value": round(percentile(values, q) * 1e3, 1),
                    "unit": "ms",
                }
            )
    stats = {}
    for label, result in (("busy", busy), ("idle", idle)):
        values = result.all
        stats[label] = {
            "p50": percentile(values, 50),
            "p99": percentile(values, 99),
            "max": max(values),
            "rate": result.requests / result.seconds,
        }
        for key in ("p50", "p99", "max"):
            rows.append(
                {
                    "figure": f"{label}: all routes {key}",
                    "value": round(stats[label][key] * 1e3, 1),
                    "unit": "ms",
                }
            )
        rows.append(
            {"figure": f"{label}: rate", "value": round(stats[label]["rate"]), "unit": "requests/s"}
        )
    for key in ("p50", "p99"):
        rows.append(
            {
                "figure": f"busy / idle: all routes {key}",
                "value": round(stats["busy"][key] / stats["idle"][key], 2),
                "unit": "x",
            }
        )
    rows.append(
        {
            "figure": "busy: tasks finished during the bursts",
            "value": sum(finished_during),
            "unit": "tasks",
        }
    )
    return report("api_burst", rows)


if __name__ == "__main__":
    main()
