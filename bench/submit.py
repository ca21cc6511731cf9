"""Submit size: one job of 100,000 (and 1,000,000) one-frame tasks through the API.

    python bench/submit.py [--repeat 3] [--no-million]

A real ``drqueue master`` (no slaves, so nothing is dispatched while it runs) gets
``POST /api/v1/jobs`` for a shell job of frames 1..N, block size 1, from drqueue.Client;
the figure is the wall time of that call as the client sees it.  100,000 frames is timed
``--repeat`` times (median); 1,000,000 once.  The master's RSS after the submits is printed.

Target: 100,000 frames in <= 1 s.  (1,000,000 has no target of its own; it is reported.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MB, drqueue_farm, print_load, report, row  # noqa: E402

TARGET_SECONDS = 1.0


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from drqueue.client import Client

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-million", action="store_true", help="skip the 1,000,000-frame job")
    parser.add_argument(
        "--src", type=Path, help="run the master from this source tree (PYTHONPATH)"
    )
    args = parser.parse_args(argv)
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
    with drqueue_farm(args.src) as farm:
        farm.start_master()
        config = farm.config
        client = Client(config=config, token=config.api_token(), timeout=600)
        try:
            master = psutil.Process(farm.master_proc.pid)
            rss0 = master.memory_info().rss
            times = []
            for _ in range(args.repeat):
                times.append(submit(client, args.frames))
                print(f"  {args.frames:,} frames: {times[-1]:.2f} s", flush=True)
            median = statistics.median(times)
            rows.append(
                row(
                    f"submit {args.frames:,} frames, block 1 (median of {len(times)})",
                    round(median, 2),
                    "s",
                    f"<= {TARGET_SECONDS:g}",
                    median <= TARGET_SECONDS,
                )
            )
            if not args.no_million:
                seconds = submit(client, 1_000_000)
                print(f"  1,000,000 frames: {seconds:.2f} s", flush=True)
                rows.append(row("submit 1,000,000 frames, block 1", round(seconds, 2), "s"))
            rss = master.memory_info().rss
            print(
                f"  master RSS {rss0 / MB:.0f} MB before the submits, {rss / MB:.0f} MB after",
                flush=True,
            )
            rows.append(row("master RSS after these submits (idle farm)", round(rss / MB), "MB"))
        finally:
            client.close()
    return report("submit", rows)


if __name__ == "__main__":
    main()
