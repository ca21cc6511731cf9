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
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

TARGET_SECONDS = 1.0


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from farm import Farm

    from drqueue.client import Client

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-million", action="store_true", help="skip the 1,000,000-frame job")
    parser.add_argument("--src", type=Path, help="run the master from this source tree (PYTHONPATH)")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs before the run", flush=True)

    def submit(client: Client, frames: int) -> float:
        t0 = time.perf_counter()
        job = client.submit("shell", None, start=1, end=frames, block_size=1,
                            name=f"submit-{frames}", params={"cmd": "true"})
        seconds = time.perf_counter() - t0
        assert job["tasks"] == frames, job
        return seconds

    rows = []
    with tempfile.TemporaryDirectory(prefix="drqueue-bench-") as tmp:
        farm = Farm(Path(tmp) / "farm")
        if args.src is not None:
            farm.env["PYTHONPATH"] = str(args.src.resolve())
        try:
            farm.start_master()
            config = farm.config
            client = Client(config=config, token=config.api_token(), timeout=600)
            master = psutil.Process(farm.master_proc.pid)
            rss0 = master.memory_info().rss
            times = []
            for _ in range(args.repeat):
                times.append(submit(client, args.frames))
                print(f"  {args.frames:,} frames: {times[-1]:.2f} s", flush=True)
            median = statistics.median(times)
            rows.append({"figure": f"submit {args.frames:,} frames, block 1 (median of {len(times)})",
                         "value": round(median, 2), "unit": "s", "target": f"<= {TARGET_SECONDS:g}",
                         "ok": median <= TARGET_SECONDS})
            if not args.no_million:
                seconds = submit(client, 1_000_000)
                print(f"  1,000,000 frames: {seconds:.2f} s", flush=True)
                rows.append({"figure": "submit 1,000,000 frames, block 1", "value": round(seconds, 2),
                             "unit": "s"})
            rss = master.memory_info().rss
            print(f"  master RSS {rss0 / 2**20:.0f} MB before the submits, {rss / 2**20:.0f} MB after",
                  flush=True)
            rows.append({"figure": "master RSS after these submits (idle farm)",
                         "value": round(rss / 2**20), "unit": "MB"})
            client.close()
        finally:
            farm.stop()
    for row in rows:
        row["benchmark"] = "submit"
        print(f"{row['figure']}: {row['value']} {row['unit']}"
              + (f" (target {row['target']}: {'met' if row['ok'] else 'MISSED'})" if "target" in row else ""))
    return rows


if __name__ == "__main__":
    main()
