"""bench/run_all.py's table: the targets summary under it names every missed target."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import run_all  # noqa: E402


def test_the_targets_summary_counts_each_benchmarks_targets_and_names_the_missed_ones():
    rows = [
        {"benchmark": "fleet", "figure": "decision", "value": 12, "target": "< 50", "ok": True},
        {
            "benchmark": "fleet",
            "store": "mongo",
            "figure": "CPU",
            "value": 31.5,
            "unit": "% core",
            "target": "< 25",
            "ok": False,
        },
        {"benchmark": "scale", "figure": "start", "value": 9.7, "unit": "s"},
        {"benchmark": "query", "figure": "FAILED (exit 1): boom", "ok": False},
    ]
    summary = run_all.targets(rows).splitlines()
    assert summary[1:] == [
        "targets:",
        "  fleet: 1 of 2 met",
        "    MISSED [mongo] CPU: 31.5 % core (target < 25)",
    ]


def test_a_benchmark_given_several_argument_lists_runs_once_for_each(tmp_path):
    bench = tmp_path / "echo.py"
    bench.write_text(
        "def main(argv):\n"
        "    return [{'store': argv[1], 'figure': 'argv', 'value': ' '.join(argv)}]\n"
    )
    runs = run_all.runs_of([["--store", "sqlite"], ["--store", "mongo", "--jobs", "1001"]])
    rows = [row for argv in runs for row in run_all.run_one(bench, argv, 60)[0]]
    assert [(row["benchmark"], row["store"], row["value"]) for row in rows] == [
        ("echo", "sqlite", "--store sqlite"),
        ("echo", "mongo", "--store mongo --jobs 1001"),
    ]
    assert run_all.runs_of(["--window", "15"]) == [["--window", "15"]]
    assert run_all.runs_of([]) == [[]]
