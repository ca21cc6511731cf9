"""Query size: list 10,000 jobs, and show a job of 100,000 tasks, through the API.

    python bench/query.py [--jobs 10000] [--tasks 100000] [--repeat 5]

The store is filled before the master starts (10,000 ten-frame jobs and one job of 100,000
one-frame tasks, written with the store's own create_job: submitting 10,000 jobs over HTTP
would only time the submit again).  Then a real ``drqueue master`` (no slaves) answers
drqueue.Client, timed as the client sees each call, median of ``--repeat``:

- ``GET /jobs`` (``drqueue jobs``): all 10,000 jobs;
- ``GET /jobs/ID`` (``drqueue job show``) of the 100,000-task job;
- ``GET /jobs/ID/tasks`` (``drqueue job tasks``) of that job: every task, for reference.

Target: the jobs list and the job show each <= 0.1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import drqueue_farm, print_load, report, row  # noqa: E402

TARGET_SECONDS = 0.1


def fill_store(store_url: str, jobs: int, tasks: int) -> int:
    """Write *jobs* small jobs and one big one; return the big job's id."""
    from drqueue.models import JobSpec, split_frames
    from drqueue.store import open_store

    store = open_store(store_url)
    try:
        for i in range(jobs):
            spec = JobSpec(
                renderer="shell",
                start=1,
                end=10,
                name=f"query-{i}",
                owner=f"artist{i % 7}",
                params={"cmd": "true"},
            )
            store.create_job(spec, split_frames(1, 10))
        big = JobSpec(
            renderer="shell",
            start=1,
            end=tasks,
            name="big",
            owner="artist0",
            params={"cmd": "true"},
        )
        return store.create_job(big, split_frames(1, tasks))
    finally:
        store.close()


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(median seconds, first-call seconds, last answer)."""
    times, answer = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        answer = call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times[0], answer


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from drqueue.client import Client

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--src", type=Path, help="run the master from this source tree (PYTHONPATH)"
    )
    args = parser.parse_args(argv)
    print_load("query")

    rows = []
    with drqueue_farm(args.src) as farm:
        config = farm.config
        config.ensure_dirs()
        t0 = time.perf_counter()
        big = fill_store(config.store_url, args.jobs, args.tasks)
        print(f"  store filled in {time.perf_counter() - t0:.1f} s", flush=True)
        farm.start_master()
        client = Client(config=config, token=config.api_token(), timeout=300)
        try:
            cases = [
                (
                    f"list {args.jobs + 1:,} jobs (GET /jobs)",
                    client.jobs,
                    TARGET_SECONDS,
                    lambda answer: len(answer) == args.jobs + 1,
                ),
                (
                    f"show a {args.tasks:,}-task job (GET /jobs/ID)",
                    lambda: client.job(big),
                    TARGET_SECONDS,
                    lambda answer: answer["counts"]["total"] == args.tasks,
                ),
                (
                    f"list the {args.tasks:,} tasks of that job (GET /jobs/ID/tasks)",
                    lambda: client.tasks(big),
                    None,
                    lambda answer: len(answer) == args.tasks,
                ),
            ]
            for figure, call, target, check in cases:
                median, first, answer = timed(call, args.repeat)
                assert check(answer), figure
                print(f"  {figure}: median {median:.3f} s, first {first:.3f} s", flush=True)
                label = f"{figure} (median of {args.repeat})"
                if target is None:
                    rows.append(row(label, round(median, 3), "s"))
                else:
                    rows.append(
                        row(label, round(median, 3), "s", f"<= {target:g}", median <= target)
                    )
        finally:
            client.close()
    return report("query", rows)


if __name__ == "__main__":
    main()
