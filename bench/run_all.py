"""Run every benchmark in bench/ and print one table of figures.

    python bench/run_all.py [--only dispatch,query] [--timeout 900] [--json results.json]

Each bench/NAME.py (not this file, not files starting with "_") runs in its own subprocess.
A benchmark that exposes ``main()`` returning rows (dicts with benchmark, figure, value, unit,
target, ok) is called with its default arguments and its rows go into the table; any other
benchmark (or a main() that returns nothing) is run as a script and the last lines it printed
go into the table instead.  A benchmark that fails or times out gets a row saying so; the
others still run, and the exit status is 1.  A missed target is a figure, not a failure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MARK = "@@BENCH_ROWS@@ "

# Runs in the child: a file that defines main() is imported and main() called with no arguments
# (its rows printed as JSON after a marker); any other file runs as a script.
DRIVER = r"""
import importlib.util, json, runpy, sys
path = sys.argv[1]
sys.argv = [path]
if "def main(" in open(path).read():
    spec = importlib.util.spec_from_file_location("bench_" + path.rsplit("/", 1)[-1][:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main()
    if rows:
        print(MARK + json.dumps(rows, default=str), flush=True)
else:
    runpy.run_path(path, run_name="__main__")
""".replace("MARK", repr(MARK))

COLUMNS = ("benchmark", "figure", "value", "unit", "target", "ok")


def benchmarks(only: set[str] | None) -> list[Path]:
    found = []
    for path in sorted(HERE.glob("*.py")):
        if path.name in ("run_all.py", "__main__.py") or path.name.startswith("_"):
            continue
        if only and path.stem not in only:
            continue
        found.append(path)
    return found


def as_rows(name: str, rows: Any) -> list[dict[str, Any]]:
    out = []
    for row in rows if isinstance(rows, list) else [rows]:
        if isinstance(row, dict):
            out.append({"benchmark": name, **row})
        elif isinstance(row, (list, tuple)):
            out.append({"benchmark": name, **dict(zip(COLUMNS[1:], row, strict=False))})
        else:
            out.append({"benchmark": name, "figure": str(row)})
    return out


def run_one(path: Path, timeout: float) -> tuple[list[dict[str, Any]], str, float]:
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-c", DRIVER, str(path)], capture_output=True,
                              text=True, timeout=timeout, cwd=HERE.parent)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return [{"benchmark": path.stem, "figure": f"TIMED OUT after {timeout:.0f} s", "ok": False}], out, timeout
    seconds = time.monotonic() - started
    output = proc.stdout + proc.stderr
    rows: list[dict[str, Any]] = []
    printed = []
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            rows += as_rows(path.stem, json.loads(line[len(MARK):]))
        else:
            printed.append(line)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        rows.append({"benchmark": path.stem, "figure": f"FAILED (exit {proc.returncode}): {last[:120]}",
                     "ok": False})
    elif not rows:  # a script that only prints: keep its last lines as the figures
        rows = [{"benchmark": path.stem, "figure": line.strip()} for line in printed[-12:] if line.strip()]
    return rows, output, seconds


def failed(rows: list[dict[str, Any]]) -> bool:
    return any(str(row.get("figure", "")).startswith(("FAILED", "TIMED OUT")) for row in rows)


def table(rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        if value is None:
            return ""
        if key == "ok":
            return "yes" if value else "NO"
        return f"{value:g}" if isinstance(value, float) else str(value)

    widths = {k: max(len(k), *(len(cell(r, k)) for r in rows)) for k in COLUMNS}
    lines = ["  ".join(k.ljust(widths[k]) for k in COLUMNS).rstrip(), "  ".join("-" * widths[k] for k in COLUMNS)]
    for row in rows:
        lines.append("  ".join(cell(row, k).ljust(widths[k]) for k in COLUMNS).rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description="run every bench/*.py and print one table")
    parser.add_argument("--only", help="comma-separated benchmark names (file stems)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per benchmark")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each benchmark's output")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    all_rows: list[dict[str, Any]] = []
    for path in benchmarks(only):
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        rows, output, seconds = run_one(path, args.timeout)
        print(f"  {path.name}: {seconds:.0f} s", file=sys.stderr, flush=True)
        if args.verbose:
            print(output, file=sys.stderr)
        all_rows += rows
    if all_rows:
        print(table(all_rows))
    if args.json:
        args.json.write_text(json.dumps(all_rows, indent=1, default=str))
    return all_rows


if __name__ == "__main__":
    sys.exit(1 if failed(main()) else 0)
