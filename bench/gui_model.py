"""The desktop GUI's jobs table: 10,000 jobs loaded into the model, sorted and filtered.

    python bench/gui_model.py [--jobs 10000] [--repeat 5]

No master and no window: the jobs are the JSON ``GET /jobs`` answers, made here (a mix of
statuses, owners, names and progress), read with ``Job.list_from_json`` as drqueue.Client
reads them, then put in drqueue.gui's JobsModel behind its JobFilter, as the jobs view has
them.  Each figure is the median of ``--repeat``:

- the JSON read into typed Jobs (the client's share, for scale);
- the model loaded (``set_items``: a reset of 10,000 rows);
- a sort by name, by progress and by ETA (``JobsModel.sort``, one ``sorted()`` over keys);
- a search typed into the filter (``JobFilter.set_filter``) and cleared;
- a live-stream tick of 100 changed jobs (``JobsModel.apply``), sorted by progress, which the
  changes move, so the model is re-sorted after (a tick that moves no sort key is not).

Baselines in the same run, for the ratios: Python's own ``sorted()`` of the same Jobs by name
(the floor of any sort in Python), and Qt's QSortFilterProxyModel sorting the same model by
its display text (the usual way, which calls ``data()`` from C++ for each comparison).

Target: load and each sort under 1 s (issue 16).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_load, report, row  # noqa: E402

TARGET_SECONDS = 1.0
STATUSES = ("queued", "running", "waiting", "stopped", "finished", "error", "cancelled")


def jobs_json(count: int) -> list[dict[str, Any]]:
    """*count* jobs as GET /jobs lists them, alike in size to a studio's."""
    out = []
    for i in range(1, count + 1):
        total = 10 + i % 240
        finished = (i * 37) % (total + 1)
        running = min(total - finished, i % 5)
        status = STATUSES[i % len(STATUSES)]
        out.append(
            {
                "id": i,
                "name": f"seq{i % 40:03d}_shot{i % 997:04d}_{('beauty', 'fx', 'comp')[i % 3]}",
                "owner": f"artist{i % 25}",
                "renderer": ("blender", "shell", "nuke", "povray")[i % 4],
                "scene": f"/proj/seq{i % 40:03d}/shot{i % 997:04d}.blend",
                "start": 1,
                "end": total,
                "priority": 50 + i % 11,
                "status": status,
                "control": "stopped" if status == "stopped" else "active",
                "counts": {
                    "total": total,
                    "finished": finished,
                    "running": running,
                    "queued": total - finished - running,
                },
                "submitted_at": 1_760_000_000 + i * 7.0,
                "eta_seconds": None if i % 9 == 0 else float((i * 131) % 86_400),
                "requirements": {"pools": ["gpu"] if i % 6 == 0 else []},
            }
        )
    return out


def median_seconds(
    repeat: int, run: Callable[[], Any], before: Callable[[], Any] = lambda: None
) -> float:
    times = []
    for _ in range(repeat):
        before()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    from PySide6.QtCore import QCoreApplication, QSortFilterProxyModel, Qt

    from drqueue.api_types import Job
    from drqueue.gui.models import JobFilter, JobsModel

    app = QCoreApplication.instance() or QCoreApplication([])  # noqa: F841 - models need one
    print_load("gui_model")
    data = jobs_json(args.jobs)
    n, repeat = args.jobs, args.repeat
    jobs = Job.list_from_json(data)
    model = JobsModel()
    shown = JobFilter(model)
    name, progress, eta = 1, 4, 6

    parse = median_seconds(repeat, lambda: Job.list_from_json(data))
    load = median_seconds(repeat, lambda: model.set_items(jobs), lambda: model.set_items([]))
    model.set_items(jobs)
    ascending, descending = Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder
    sorts = {}
    for label, column in (("name", name), ("progress", progress), ("ETA", eta)):
        sorts[label] = median_seconds(
            repeat,
            lambda c=column: shown.sort(c, descending),
            lambda: model.sort(0, ascending),
        )
    search = median_seconds(
        repeat, lambda: shown.set_filter(search="shot0042"), lambda: shown.set_filter(search="")
    )
    found = shown.rowCount()
    shown.set_filter(search="")
    changed = [
        Job.from_json({**data[i], "counts": {**data[i]["counts"], "finished": 0}})
        for i in range(0, n, max(1, n // 100))
    ][:100]
    tick = median_seconds(  # sorted by progress, which each change moves: a re-sort each time
        repeat,
        lambda: model.apply(changed),
        lambda: (model.set_items(jobs), shown.sort(progress, descending)),
    )

    python_sort = median_seconds(
        repeat, lambda: sorted(jobs, key=lambda j: (j.name.casefold(), j.id))
    )
    plain = JobsModel()
    plain.set_items(jobs)
    qt_proxy = QSortFilterProxyModel()
    qt_proxy.setSourceModel(plain)
    qt_sort = median_seconds(
        repeat,
        lambda: qt_proxy.sort(name, descending),
        lambda: qt_proxy.sort(-1),
    )

    ok = lambda seconds: seconds < TARGET_SECONDS  # noqa: E731
    target = f"< {TARGET_SECONDS:.0f} s"
    rows = [
        row(f"{n:,} jobs read from JSON (Job.list_from_json)", round(parse, 4), "s"),
        row(f"{n:,} jobs loaded into the model", round(load, 4), "s", target, ok(load)),
    ]
    for label, seconds in sorts.items():
        rows.append(
            row(f"{n:,} jobs sorted by {label}", round(seconds, 4), "s", target, ok(seconds))
        )
    rows += [
        row(f"search typed over {n:,} jobs ({found} match)", round(search, 4), "s"),
        row("live tick: 100 changed jobs applied and re-sorted", round(tick, 4), "s"),
        row(f"baseline: Python sorted() of {n:,} Jobs by name", round(python_sort, 4), "s"),
        row("sort by name / Python sorted()", round(sorts["name"] / python_sort, 2), "x"),
        row(f"baseline: QSortFilterProxyModel sort of {n:,} rows by name", round(qt_sort, 4), "s"),
        row("sort by name / QSortFilterProxyModel's", round(sorts["name"] / qt_sort, 3), "x"),
    ]
    return report("gui_model", rows)


if __name__ == "__main__":
    main()
