"""Query size: list 10,000 jobs, and show a job of 100,000 tasks, through the API and the CLI.

    python bench/query.py [--jobs 10000] [--tasks 100000] [--repeat 5]
                          [--store sqlite|mongo|both] [--mongo-url URL]

The store is filled before the master starts (10,000 ten-frame jobs and one job of 100,000
one-frame tasks, written with the store's own create_job: submitting 10,000 jobs over HTTP
would only time the submit again); every store before any master.  Then a real ``drqueue master`` (no slaves) answers
drqueue.Client and the CLI (click's CliRunner in this process, its table printed to a
terminal-sized console), timed as the user sees each call, median of ``--repeat`` (the first
call is printed too: it builds what later calls are given again while the store is unchanged):

- ``drqueue jobs``: the first page of the active jobs (all 10,001 are), table included;
- ``drqueue tasks ID`` of the 100,000-task job: its first page, table included;
- ``GET /jobs/ID`` (``drqueue job show``) of that job;
- ``GET /jobs`` without paging (``Client.jobs()``, the desktop GUI's list): the newest 10,000;
- ``GET /jobs/ID/tasks`` of that job, every task, once, for reference.

The two CLI figures are also measured against a small farm on SQLite in the same run (11 jobs:
10 ten-frame jobs and one of 1,000 tasks), and their ratio printed: how much of the time is
the farm's size.

One store and master per backend (``--store``, default both: SQLite, and MongoDB over the
wire, the test server SecantusDB started here, or ``--mongo-url``), filled alike and all up at
once; the calls alternate between them, and each figure on MongoDB gets its ratio to SQLite's.

Target: ``drqueue jobs``, ``drqueue tasks ID`` and the job show each <= 0.1 s.
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


def cli_call(env: dict[str, str], *args: str) -> str:
    """`drqueue ARGS` in this process, as a user's shell runs it; its stdout."""
    from click.testing import CliRunner

    from drqueue.cli.main import cli

    result = CliRunner().invoke(
        cli, list(args), env=env, catch_exceptions=False, terminal_width=160
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def table_rows(stdout: str) -> int:
    """The rows of a table (a row is a line that starts with its id; a long cell may wrap)."""
    return sum(
        1 for line in stdout.splitlines()[1:] if line.split()[:1] and line.split()[0].isdigit()
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from drqueue.cli.main import JOBS_SHOWN, TASKS_SHOWN
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
        envs: dict[str, dict[str, str]] = {}
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
        small = "small farm"
        urls[small] = f"sqlite:///{folder}/small.sqlite"
        bigs[small] = fill_store(urls[small], 10, 1_000)
        for name in [*store_names, small]:
            farm = stack.enter_context(drqueue_farm(args.src, store=urls[name]))
            config = farm.config
            farm.start_master()
            clients[name] = client = Client(config=config, token=config.api_token(), timeout=600)
            stack.callback(client.close)
            envs[name] = {
                "DRQUEUE_MASTER": client.url,
                "DRQUEUE_TOKEN": config.api_token(),
                "DRQUEUE_ROOT": str(config.root),
            }
        Case = tuple[str, Callable[[str], Any], float | None, Callable[[Any], bool], bool]
        cases: list[Case] = [
            (
                f"drqueue jobs, {args.jobs + 1:,} active jobs: its first page of {JOBS_SHOWN}",
                lambda name: cli_call(envs[name], "jobs"),
                TARGET_SECONDS,
                lambda out: table_rows(out) == JOBS_SHOWN,
                True,
            ),
            (
                f"drqueue tasks ID, a {args.tasks:,}-task job: its first page of {TASKS_SHOWN}",
                lambda name: cli_call(envs[name], "tasks", str(bigs[name])),
                TARGET_SECONDS,
                lambda out: table_rows(out) == TASKS_SHOWN,
                True,
            ),
            (
                f"show a {args.tasks:,}-task job (GET /jobs/ID)",
                lambda name: clients[name].job(bigs[name]),
                TARGET_SECONDS,
                lambda answer: answer["counts"]["total"] == args.tasks,
                False,
            ),
            (
                f"GET /jobs unpaged (Client.jobs(), the GUI's): the newest 10,000 of "
                f"{args.jobs + 1:,}",
                lambda name: clients[name].jobs(),
                None,
                lambda answer: len(answer) == min(args.jobs + 1, 10_000),
                False,
            ),
        ]
        for figure, call, target, check, against_small in cases:
            measured = [*store_names, small] if against_small else store_names
            times: dict[str, list[float]] = {name: [] for name in measured}
            for _ in range(args.repeat):  # the stores alternate, so load hits them alike
                for name in measured:
                    t0 = time.perf_counter()
                    answer = call(name)
                    times[name].append(time.perf_counter() - t0)
                    assert name == small or check(answer), (name, figure)
            label = f"{figure} (median of {args.repeat})"
            for name in measured:
                median = statistics.median(times[name])
                shown_name = stores.label(name) if name != small else small
                print(
                    f"  [{shown_name}] {figure}: median {median:.3f} s, "
                    f"first {times[name][0]:.3f} s",
                    flush=True,
                )
                if name == small:
                    ratio = statistics.median(times["sqlite"]) / median if "sqlite" in times else 0
                    rows.append(
                        row(f"{figure}: / the same on an 11-job farm", round(ratio, 2), "x")
                    )
                    continue
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
        for name in store_names:  # for reference, once: it takes seconds
            t0 = time.perf_counter()
            every = clients[name].tasks(bigs[name])
            seconds = time.perf_counter() - t0
            assert len(every) == args.tasks
            figure = f"list the {args.tasks:,} tasks of that job (every page of GET /jobs/ID/tasks)"
            print(f"  [{stores.label(name)}] {figure}: {seconds:.3f} s", flush=True)
            rows.append(row(figure, round(seconds, 3), "s", store=stores.label(name)))
    return report("query", rows)


if __name__ == "__main__":
    main()
