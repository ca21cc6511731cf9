"""Run every benchmark in bench/ and print one table of figures.

    python bench/run_all.py [--only dispatch,query] [--skip soak] [--args 'utilisation=--tasks 500']
                            [--commit HEAD] [--timeout 1200] [--budget 900] [--json results.json] [-v]

Each bench/NAME.py (not this file, not files starting with "_") runs in its own subprocess, one
after the other (they all start real processes on the same cores; running two at once would
measure each other).  A benchmark that exposes ``main(argv)`` returning rows (dicts with
benchmark, store, figure, value, unit, target, ok) is called with the arguments :data:`BENCH_ARGS`
gives it (sized so that the whole run takes under 15 minutes on 2 cores), or those given with
``--args NAME=ARGS``, and its rows go into the table; any other benchmark (or a main() that
returns nothing) is run as a script with those arguments and the last lines it printed go into
the table instead.  Ratios against each benchmark's same-run baseline are rows of their own
(unit "x").  A benchmark that fails or times out gets a row saying so; the others still run,
and the exit status is 1.  A benchmark that times out is stopped with everything it started
(SIGINT first, so that it stops its own farms; then its process group).  A missed target is a figure, not a failure.

The store is a dimension of the dispatch, submit, query and dispatcher benchmarks: each runs on
SQLite and on MongoDB by default (``--store sqlite|mongo|both``; MongoDB is the test server,
SecantusDB, which each of them starts in a temporary folder and stops), and the table's
``store`` column says which backend a row measured (empty where the store plays no part).

``--commit REV`` runs the benchmarks, tests/farm.py and the master and slaves they start from
``git archive REV`` (a temporary copy, on PYTHONPATH) instead of the working tree, so that the
figures belong to one commit even while others edit the checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MARK = "@@BENCH_ROWS@@ "

#: Arguments each benchmark gets from run_all (its own defaults otherwise): one argument list,
#: or a list of them for a benchmark run more than once (each run's rows in the table).  Every
#: benchmark's own defaults are the full-size run; these cut them so that the whole run stays
#: under 15 minutes on this machine's 2 cores (issue 14), each cut named in
#: docs/performance.md, "Running them".  The store is a dimension (issue 11): dispatch,
#: dispatcher, query and submit run on SQLite at full size and again on MongoDB over the test
#: server (SecantusDB, a Python server that stores about 2,000 task documents a second), there
#: at the sizes that fit.  (``--args NAME=ARGS`` gives a benchmark one run of ARGS instead, and
#: ``--args submit=`` none at all, e.g. for a ``--commit`` older than these options.)
BENCH_ARGS: dict[str, list[str] | list[list[str]]] = {
    "dispatch": [
        ["--store", "sqlite", "--tasks", "400", "--repeat", "2"],
        ["--store", "mongo", "--engines", "4", "--no-direct", "--tasks", "200", "--repeat", "2"],
    ],
    "dispatcher": [
        ["--store", "sqlite", "--rounds", "3"],
        ["--store", "mongo", "--sizes", "1000,3000", "--rounds", "3", "--repeat", "3"],
    ],
    "query": [
        ["--store", "sqlite"],
        ["--store", "mongo", "--jobs", "500", "--tasks", "5000", "--repeat", "3"],
    ],
    "submit": [
        ["--store", "sqlite", "--million", "sqlite", "--repeat", "2", "--quiet-seconds", "2"],
        ["--store", "mongo", "--million", "none", "--giant-frames", "0", "--frames", "10000"],
    ],
    # Issue 14: 8, 32 and 128 engines (64 adds a minute and a half: `python bench/scale.py`
    # runs all four), 3 tasks per engine and 192 at least, raw ipyparallel's own start timed at
    # 8 engines only (a second start of 128 engines is minutes), 5 s idle.
    "scale": [
        "--sizes",
        "8,32,128",
        "--waves",
        "3",
        "--min-tasks",
        "192",
        "--raw-start",
        "8",
        "--idle",
        "5",
    ],
    # 10 s of each steady state instead of 20.
    "fleet": ["--window", "10"],
    # Issue 14.4: the controller's growth once its bounded caches are full, in about a minute
    # and a half instead of the long run's 300,000 tasks: the Hub keeps 1,000 completed ids
    # instead of the master's 10,000 (so they are full within 4,000 tasks), the hub's digest
    # history is full after ~16,400; the slope and the hub's heap from 18,000 on.  The
    # LoadBalancedView path (not DrQueue's) is left out.
    "memory": [
        "--no-balanced",
        "--heap",
        "--completed-kept",
        "1000",
        "--dispatch",
        "22000",
        "--chunk",
        "2500",
        "--steady-from",
        "17000",
    ],
    # 5 submit -> start rounds instead of 10, 1 registration instead of 3.
    "latency": ["--repeat", "5", "--joins", "1"],
    # 320 tasks of 0.5 s on 32 engines instead of 1,000: 10 rounds of 32, so that the ideal is
    # whole rounds for both DrQueue and raw ipyparallel (1,000 tasks need 32 rounds where 31.25
    # would do: a floor of 1.024 x the ideal for both, before any overhead), and a shorter run.
    "utilisation": ["--tasks", "320"],
    # Two jobs of 1,000 tasks on 8 engines instead of 5,000.
    "soak": ["--tasks", "1000"],
    # The web UI's smaller run (2,000 jobs, a 2,000-frame job, 4 s windows, one browser page).
    "web": ["--quick", "--clients", "0,10,50"],
}

#: What the whole run should stay under, in seconds (issue 6: 15 minutes on 2 cores).
BUDGET_SECONDS = 900

# Runs in the child: a file that defines main() is imported and main(argv) called (its rows
# printed as JSON after a marker); any other file runs as a script with argv.  The module's name
# starts with "__" like "__main__": ipyparallel sends a function defined in it (a task of a raw
# baseline) by its code, as it does for a script's, instead of importing its module on the engine
# (where "bench_dispatch" would not exist).
DRIVER = r"""
import importlib.util, json, runpy, signal, sys
# SIGINT is how run_all asks it to stop (stop_group): a KeyboardInterrupt even where it was
# ignored, as it is for a run_all started in the background of a shell script.
signal.signal(signal.SIGINT, signal.default_int_handler)
path, argv = sys.argv[1], json.loads(sys.argv[2])
sys.argv = [path, *argv]
if "def main(" in open(path).read():
    name = "__bench_" + path.rsplit("/", 1)[-1][:-3] + "__"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    rows = module.main(argv)
    if rows:
        print(MARK + json.dumps(rows, default=str), flush=True)
else:
    runpy.run_path(path, run_name="__main__")
""".replace("MARK", repr(MARK))

COLUMNS = ("benchmark", "store", "figure", "value", "unit", "target", "ok")
#: The columns a row given as a tuple fills, in order.
POSITIONAL = ("figure", "value", "unit", "target", "ok")


def benchmarks(folder: Path, only: set[str] | None, skip: set[str]) -> list[Path]:
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.name in ("run_all.py", "__main__.py") or path.name.startswith("_"):
            continue
        if (only and path.stem not in only) or path.stem in skip:
            continue
        found.append(path)
    return found


def as_rows(name: str, rows: Any) -> list[dict[str, Any]]:
    out = []
    for row in rows if isinstance(rows, list) else [rows]:
        if isinstance(row, dict):
            out.append({"benchmark": name, **row})
        elif isinstance(row, (list, tuple)):
            out.append({"benchmark": name, **dict(zip(POSITIONAL, row, strict=False))})
        else:
            out.append({"benchmark": name, "figure": str(row)})
    return out


def run_one(
    path: Path, argv: list[str], timeout: float, env: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], str, float]:
    started = time.monotonic()
    # Its own process group: a benchmark that times out (or a Ctrl-C here) is stopped with
    # everything it started (masters, slaves, engines, the test MongoDB server), not just the
    # driver, which would leave them running.  Its own TMPDIR, removed after it: the folders
    # of farms and servers it had no time to remove go too.
    with tempfile.TemporaryDirectory(prefix="drqueue-bench-run-") as scratch:
        proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(path), json.dumps(argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=path.parent.parent,
            env={**(os.environ if env is None else env), "TMPDIR": scratch},
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stdout, stderr = stop_group(proc)
            figure = f"TIMED OUT after {timeout:.0f} s"
            return (
                [{"benchmark": path.stem, "figure": figure, "ok": False}],
                stdout + stderr,
                timeout,
            )
        except BaseException:
            stop_group(proc)
            raise
    seconds = time.monotonic() - started
    output = stdout + stderr
    rows: list[dict[str, Any]] = []
    printed = []
    for line in stdout.splitlines():
        if line.startswith(MARK):
            rows += as_rows(path.stem, json.loads(line[len(MARK) :]))
        else:
            printed.append(line)
    if proc.returncode != 0:
        last = (stderr.strip().splitlines() or ["?"])[-1]
        figure = f"FAILED (exit {proc.returncode}): {last[:120]}"
        rows.append({"benchmark": path.stem, "figure": figure, "ok": False})
    elif not rows:  # a script that only prints: keep its last lines as the figures
        rows = [
            {"benchmark": path.stem, "figure": line.strip()}
            for line in printed[-12:]
            if line.strip()
        ]
    return rows, output, seconds


def stop_group(proc: subprocess.Popen, grace: float = 60) -> tuple[str, str]:
    """Stop a benchmark and everything it started; what it printed.  SIGINT to the benchmark
    first (its ``finally`` blocks stop its masters, slaves and servers and remove their
    folders), then SIGTERM and at last SIGKILL to what is left of its process group."""
    output = ("", "")
    steps = ((proc.pid, signal.SIGINT, grace), (-proc.pid, signal.SIGTERM, 20))
    for target, sig, wait in (*steps, (-proc.pid, signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, sig)
        try:
            stdout, stderr = proc.communicate(timeout=wait)
            output = (stdout or "", stderr or "")
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # anything the benchmark left behind
        os.killpg(proc.pid, signal.SIGTERM)
    return output


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
    lines = [
        "  ".join(k.ljust(widths[k]) for k in COLUMNS).rstrip(),
        "  ".join("-" * widths[k] for k in COLUMNS),
    ]
    for row in rows:
        lines.append("  ".join(cell(row, k).ljust(widths[k]) for k in COLUMNS).rstrip())
    return "\n".join(lines)


def targets(rows: list[dict[str, Any]]) -> str:
    """One line per benchmark: how many of its targets were met, and the missed ones named."""
    lines = ["", "targets:"]
    for name in dict.fromkeys(row["benchmark"] for row in rows):
        mine = [row for row in rows if row["benchmark"] == name and row.get("target")]
        if not mine:
            continue
        missed = [row for row in mine if not row.get("ok")]
        line = f"  {name}: {len(mine) - len(missed)} of {len(mine)} met"
        for row in missed:
            store = f"[{row['store']}] " if row.get("store") else ""
            line += f"\n    MISSED {store}{row['figure']}: {row.get('value')} {row.get('unit', '')}"
            line += f" (target {row['target']})"
        lines.append(line)
    return "\n".join(lines)


def runs_of(argv: list[str] | list[list[str]]) -> list[list[str]]:
    """The runs a benchmark's BENCH_ARGS entry asks for: one argument list, or several (one run
    each, their rows in the same table)."""
    if argv and all(isinstance(item, list) for item in argv):
        return [list(item) for item in argv]
    return [list(argv)]


def bench_args(given: list[str]) -> dict[str, list[str] | list[list[str]]]:
    """BENCH_ARGS, overridden by --args NAME=ARGS (ARGS split as a shell would)."""
    out: dict[str, list[str] | list[list[str]]] = {
        name: list(argv) for name, argv in BENCH_ARGS.items()
    }
    for item in given:
        name, sep, argv = item.partition("=")
        if not sep:
            raise SystemExit(f"--args wants NAME=ARGS, not {item!r}")
        out[name.strip()] = shlex.split(argv)
    return out


@contextlib.contextmanager
def checkout(rev: str | None):
    """(bench folder, environment, commit) for the working tree (environment and commit None),
    or for a `git archive` of *rev*."""
    if rev is None:
        yield HERE, None, None
        return
    repo = HERE.parent
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", commit, "src", "bench", "tests"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory(prefix="drqueue-bench-src-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path(tmp) / "src"), env.get("PYTHONPATH", "")) if p
        )
        print(f"benchmarks and code of commit {commit[:12]} ({tmp})", file=sys.stderr, flush=True)
        yield Path(tmp) / "bench", env, commit


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description="run every bench/*.py and print one table")
    parser.add_argument("--only", help="comma-separated benchmark names (file stems)")
    parser.add_argument("--skip", default="", help="comma-separated benchmark names to leave out")
    parser.add_argument(
        "--args",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="arguments for one benchmark instead of BENCH_ARGS (repeatable)",
    )
    parser.add_argument("--commit", help="run the benchmarks and the code of this commit")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per benchmark")
    parser.add_argument(
        "--budget", type=float, default=BUDGET_SECONDS, help="seconds the whole run should take"
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print each benchmark's output"
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    skip = {name for name in args.skip.split(",") if name}
    per_bench = bench_args(args.args)
    all_rows: list[dict[str, Any]] = []
    durations: dict[str, float] = {}
    started = time.monotonic()
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs at the start",
        file=sys.stderr,
        flush=True,
    )
    with checkout(args.commit) as (folder, env, commit):
        for path in benchmarks(folder, only, skip):
            durations[path.stem] = 0.0
            for bench_argv in runs_of(per_bench.get(path.stem, [])):
                shown = " ".join(shlex.quote(a) for a in bench_argv)
                print(f"running {path.name} {shown} ...", file=sys.stderr, flush=True)
                rows, output, seconds = run_one(path, bench_argv, args.timeout, env)
                durations[path.stem] += seconds
                print(f"  {path.name}: {seconds:.0f} s", file=sys.stderr, flush=True)
                if args.verbose or failed(rows):
                    print(output, file=sys.stderr, flush=True)
                all_rows += rows
    total = time.monotonic() - started
    if all_rows:
        print(table(all_rows))
        print(targets(all_rows))
    times = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in durations.items())
    over = f" (OVER the {args.budget:.0f} s budget)" if total > args.budget else ""
    print(f"\nwall time: {times}; total {total:.0f} s{over}")
    if args.json:
        record = {
            "commit": commit,
            "seconds": {**durations, "total": total},
            "rows": all_rows,
        }
        args.json.write_text(json.dumps(record, indent=1, default=str))
    return all_rows


if __name__ == "__main__":
    sys.exit(1 if failed(main()) else 0)
