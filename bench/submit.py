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

Target: 100,000 frames in <= 1 s.  (1,000,000 has no target of its own; it is reported.)
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

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
            settings["max_frames_per_job"] = max(args.frames, 1_000_000)
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
