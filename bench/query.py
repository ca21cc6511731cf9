"""Query size: list 10,000 jobs, and show a job of 100,000 tasks, through the API.

    python bench/query.py [--jobs 10000] [--tasks 100000] [--repeat 5]
                          [--store sqlite|mongo|both] [--mongo-url URL]

The store is filled before the master starts (10,000 ten-frame jobs and one job of 100,000
one-frame tasks, written with the store's own create_job: submitting 10,000 jobs over HTTP
would only time the submit again); every store before any master.  Then a real ``drqueue master`` (no slaves) answers
drqueue.Client, timed as the client sees each call, median of ``--repeat``:

- ``GET /jobs`` (``drqueue jobs``): all 10,000 jobs;
- ``GET /jobs/ID`` (``drqueue job show``) of the 100,000-task job;
- ``GET /jobs/ID/tasks`` (``drqueue job tasks``) of that job: every task, for reference.

One store and master per backend (``--store``, default both: SQLite, and MongoDB over the
wire, the test server SecantusDB started here, or ``--mongo-url``), filled alike and all up at
once; the calls alternate between them, and each figure on MongoDB gets its ratio to SQLite's.

Target: the jobs list and the job show each <= 0.1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Stores,
    add_store_options,
    chosen_stores,
    drqueue_farm,
    print_load,
    report,
    row,
)

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


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from drqueue.client import Client

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--src", type=Path, help="run the master from this source tree (PYTHONPATH)"
    )
    add_store_options(parser)
    args = parser.parse_args(argv)
    store_names = chosen_stores(args.store)
    print_load("query")

    rows = []
    with contextlib.ExitStack() as stack:
        stores = stack.enter_context(Stores(store_names, args.mongo_url))  # closed last
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="drqueue-bench-")))
        clients: dict[str, Client] = {}
        bigs: dict[str, int] = {}
        urls: dict[str, str] = {}
        # Every store is filled before any farm picks its ports: filling one on MongoDB takes
        # minutes, long enough for other processes to take a port picked before it.
        for name in store_names:
            urls[name] = stores.url(name, folder)
            t0 = time.perf_counter()
            bigs[name] = fill_store(urls[name], args.jobs, args.tasks)
            print(
                f"  [{stores.label(name)}] store filled in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
        for name in store_names:
            farm = stack.enter_context(drqueue_farm(args.src, store=urls[name]))
            config = farm.config
            farm.start_master()
            clients[name] = client = Client(config=config, token=config.api_token(), timeout=600)
            stack.callback(client.close)
        cases: list[tuple[str, Callable[[str], Any], float | None, Callable[[Any], bool]]] = [
            (
                f"list {args.jobs + 1:,} jobs (GET /jobs)",
                lambda name: clients[name].jobs(),
                TARGET_SECONDS,
                lambda answer: len(answer) == args.jobs + 1,
            ),
            (
                f"show a {args.tasks:,}-task job (GET /jobs/ID)",
                lambda name: clients[name].job(bigs[name]),
                TARGET_SECONDS,
                lambda answer: answer["counts"]["total"] == args.tasks,
            ),
            (
                f"list the {args.tasks:,} tasks of that job (GET /jobs/ID/tasks)",
                lambda name: clients[name].tasks(bigs[name]),
                None,
                lambda answer: len(answer) == args.tasks,
            ),
        ]
        for figure, call, target, check in cases:
            times: dict[str, list[float]] = {name: [] for name in store_names}
            for _ in range(args.repeat):  # the stores alternate, so load hits them alike
                for name in store_names:
                    t0 = time.perf_counter()
                    answer = call(name)
                    times[name].append(time.perf_counter() - t0)
                    assert check(answer), (name, figure)
            label = f"{figure} (median of {args.repeat})"
            for name in store_names:
                median = statistics.median(times[name])
                print(
                    f"  [{stores.label(name)}] {figure}: median {median:.3f} s, "
                    f"first {times[name][0]:.3f} s",
                    flush=True,
                )
                ok = None if target is None else median <= target
                shown = None if target is None else f"<= {target:g}"
                rows.append(row(label, round(median, 3), "s", shown, ok, store=stores.label(name)))
            if "sqlite" in times and "mongo" in times:
                ratio = statistics.median(times["mongo"]) / statistics.median(times["sqlite"])
                rows.append(
                    row(
                        f"MongoDB / SQLite, {figure}",
                        round(ratio, 2),
                        "x",
                        store=stores.label("mongo"),
                    )
                )
    return report("query", rows)


if __name__ == "__main__":
    main()
