"""Submit size: one job of 100,000 (and 1,000,000) one-frame tasks through the API.

    python bench/submit.py [--repeat 3] [--million sqlite|mongo|both|none] [--no-million]
                           [--store sqlite|mongo|both] [--mongo-url URL]

A real ``drqueue master`` (no slaves, so nothing is dispatched while it runs) gets
``POST /api/v1/jobs`` for a shell job of frames 1..N, block size 1, from drqueue.Client;
the figure is the wall time of that call as the client sees it.  100,000 frames is timed
``--repeat`` times (median); 1,000,000 once.  The master's RSS after the submits is printed.
The masters run with ``max_frames_per_job`` raised to the largest job sent (the default,
100,000, would refuse the 1,000,000-frame job).

One master per store (``--store``, default both: its SQLite file, and MongoDB over the wire,
the test server SecantusDB started here, or ``--mongo-url``), all up at once; the 100,000-frame
submits alternate between them, and each figure on MongoDB gets its ratio to SQLite's.
``--million`` names the stores that also take the 1,000,000-frame job (default: every store
measured; ``--no-million`` is ``--million none``).

Then, on SQLite (``--giant-frames``, default 1,000,000; ``--giant-frames 0`` skips it),
**other clients during a giant submit**: two clients loop, one submitting small jobs (10
frames) and one asking ``GET /jobs`` as ``drqueue jobs`` does (the first page of the active
jobs), each with its own connection, first for ``--quiet-seconds`` with nothing else running
(the baseline), then while a third submits the giant job.  Printed: each loop's p50, p99 and
worst latency and its error answers (any status >= 400, a 503 included), and the ratio of
each p99 during the giant submit to the baseline's.

Target: 100,000 frames in <= 1 s.  (1,000,000 has no target of its own; it is reported.)
During the giant submit: the p99 of the small submits and of GET /jobs <= 0.2 s, no error.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    MB,
    Stores,
    add_store_options,
    chosen_stores,
    drqueue_farm,
    print_load,
    report,
    row,
)

TARGET_SECONDS = 1.0
#: The most the other clients' p99 may be while a giant job is submitted.
CONTENTION_TARGET_SECONDS = 0.2


def other_clients(url: str, token: str, until: threading.Event) -> dict[str, list[float]]:
    """Loop a small submit and a GET /jobs (the CLI's first page) on two threads, each with its
    own connection, until *until* is set: each call's seconds, by loop, and its errors."""
    small = {"renderer": "shell", "start": 1, "end": 10, "params": {"cmd": "true"}}
    calls = {
        "small submit (10 frames)": ("POST", "/api/v1/jobs", {"json": small}),
        "GET /jobs (drqueue jobs' page)": (
            "GET",
            "/api/v1/jobs",
            {"params": {"active": "true", "limit": 50, "offset": 0, "order": "desc"}},
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    errors: dict[str, list[float]] = {name: [] for name in calls}

    def loop(name: str) -> None:
        method, path, kwargs = calls[name]
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            while not until.is_set():
                t0 = time.perf_counter()
                try:
                    status = http.request(method, path, **kwargs).status_code
                except httpx.HTTPError:
                    status = 599
                seconds = time.perf_counter() - t0
                times[name].append(seconds)
                if status >= 400:
                    errors[name].append(status)
                time.sleep(0.01)  # a busy client, not a flood

    threads = [threading.Thread(target=loop, args=(name,)) for name in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {**times, **{f"{name} errors": errs for name, errs in errors.items()}}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def contention(client: Any, frames: int, quiet_seconds: float) -> list[dict[str, Any]]:
    """The other clients' latencies idle, then during a submit of *frames* frames."""
    token = client.token
    url = client.url
    phases: dict[str, dict[str, list[float]]] = {}
    stop = threading.Event()
    timer = threading.Timer(quiet_seconds, stop.set)
    timer.start()
    phases["quiet"] = other_clients(url, token, stop)
    stop = threading.Event()
    result: dict[str, Any] = {}

    def giant() -> None:
        t0 = time.perf_counter()
        try:
            result["job"] = client.submit(
                "shell", None, start=1, end=frames, name="giant", params={"cmd": "true"}
            )
        finally:
            result["seconds"] = time.perf_counter() - t0
            stop.set()

    submitter = threading.Thread(target=giant)
    submitter.start()
    phases["giant"] = other_clients(url, token, stop)
    submitter.join()
    assert result.get("job") and result["job"]["tasks"] == frames, result
    print(f"  giant submit of {frames:,} frames: {result['seconds']:.2f} s", flush=True)
    rows = []
    for name in [n for n in phases["quiet"] if not n.endswith(" errors")]:
        quiet, busy = phases["quiet"][name], phases["giant"][name]
        errors = len(phases["giant"][f"{name} errors"]) + len(phases["quiet"][f"{name} errors"])
        p99_quiet, p99 = percentile(quiet, 0.99), percentile(busy, 0.99)
        print(
            f"  {name}: quiet p50/p99/max {percentile(quiet, 0.5):.3f}/{p99_quiet:.3f}/"
            f"{max(quiet):.3f} s ({len(quiet)} calls); during the giant submit "
            f"{percentile(busy, 0.5):.3f}/{p99:.3f}/{max(busy):.3f} s ({len(busy)} calls), "
            f"errors {errors}",
            flush=True,
        )
        figure = f"{name} during a {frames:,}-frame submit"
        ok = p99 <= CONTENTION_TARGET_SECONDS and not errors
        rows.append(row(f"{figure}: p99", round(p99, 3), "s", "<= 0.2, no error", ok))
        rows.append(row(f"{figure}: p50", round(percentile(busy, 0.5), 3), "s"))
        rows.append(row(f"{figure}: error answers", errors, "calls"))
        rows.append(row(f"{figure}: p99 / idle p99", round(p99 / max(p99_quiet, 1e-6), 1), "x"))
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from drqueue.client import Client

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--million",
        choices=("sqlite", "mongo", "both", "none"),
        help="the stores that also take the 1,000,000-frame job (default: all measured)",
    )
    parser.add_argument("--no-million", action="store_true", help="= --million none")
    parser.add_argument(
        "--giant-frames",
        type=int,
        default=1_000_000,
        help="frames of the giant job other clients work beside (SQLite; 0: skip)",
    )
    parser.add_argument("--quiet-seconds", type=float, default=5.0)
    parser.add_argument(
        "--src", type=Path, help="run the master from this source tree (PYTHONPATH)"
    )
    add_store_options(parser)
    args = parser.parse_args(argv)
    store_names = chosen_stores(args.store)
    million = "none" if args.no_million else (args.million or args.store)
    million_stores = [] if million == "none" else chosen_stores(million)
    print_load("submit")

    def submit(client: Client, frames: int) -> float:
        t0 = time.perf_counter()
        job = client.submit(
            "shell",
            None,
            start=1,
            end=frames,
            block_size=1,
            name=f"submit-{frames}",
            params={"cmd": "true"},
        )
        seconds = time.perf_counter() - t0
        assert job["tasks"] == frames, job
        return seconds

    rows = []
    times: dict[str, list[float]] = {name: [] for name in store_names}
    millions: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        stores = stack.enter_context(Stores(store_names, args.mongo_url))  # closed last
        clients: dict[str, Client] = {}
        masters: dict[str, tuple[psutil.Process, int]] = {}
        for name in store_names:
            settings = stores.farm_settings(name)
            settings["max_frames_per_job"] = max(args.frames, args.giant_frames, 1_000_000)
            farm = stack.enter_context(drqueue_farm(args.src, **settings))
            farm.start_master()
            config = farm.config
            clients[name] = client = Client(config=config, token=config.api_token(), timeout=1800)
            stack.callback(client.close)
            master = psutil.Process(farm.master_proc.pid)
            masters[name] = (master, master.memory_info().rss)
        for _ in range(args.repeat):
            for name in store_names:
                times[name].append(submit(clients[name], args.frames))
                print(f"  [{stores.label(name)}] {args.frames:,} frames: {times[name][-1]:.2f} s")
        for name in store_names:
            if name in million_stores:
                millions[name] = submit(clients[name], 1_000_000)
                print(f"  [{stores.label(name)}] 1,000,000 frames: {millions[name]:.2f} s")
        for name in store_names:
            label = stores.label(name)
            median = statistics.median(times[name])
            rows.append(
                row(
                    f"submit {args.frames:,} frames, block 1 (median of {len(times[name])})",
                    round(median, 2),
                    "s",
                    f"<= {TARGET_SECONDS:g}",
                    median <= TARGET_SECONDS,
                    store=label,
                )
            )
            if name in millions:
                figure = "submit 1,000,000 frames, block 1"
                rows.append(row(figure, round(millions[name], 2), "s", store=label))
            master, rss0 = masters[name]
            rss = master.memory_info().rss
            print(
                f"  [{label}] master RSS {rss0 / MB:.0f} MB before the submits, "
                f"{rss / MB:.0f} MB after",
                flush=True,
            )
            rows.append(
                row(
                    "master RSS after these submits (idle farm)", round(rss / MB), "MB", store=label
                )
            )
        if args.giant_frames and "sqlite" in store_names:
            rows += contention(clients["sqlite"], args.giant_frames, args.quiet_seconds)
        if "sqlite" in store_names and "mongo" in store_names:
            label = stores.label("mongo")
            ratio = statistics.median(times["mongo"]) / statistics.median(times["sqlite"])
            rows.append(
                row(f"MongoDB / SQLite, {args.frames:,} frames", round(ratio, 2), "x", store=label)
            )
            if "mongo" in millions and "sqlite" in millions:
                ratio = millions["mongo"] / millions["sqlite"]
                rows.append(
                    row("MongoDB / SQLite, 1,000,000 frames", round(ratio, 2), "x", store=label)
                )
    return report("submit", rows)


if __name__ == "__main__":
    main()
