"""Run one test (or a few) N times in a row under extra CPU load; stop at the first failure.

The suite's rule (docs/testing.md): a new or changed integration test passes 20 runs in a row
on a 2-core machine with other load present before it lands.  `make repeat T=<test id>` runs
this with N=20 and one busy process per core beside the tests.

    python tests/tools/repeat.py -n 20 --load 2 tests/integration/test_core_farm.py::test_x
    python tests/tools/repeat.py -n 20 --load 1 -k mongo -m "not slow" tests/faults
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import time


def _burn() -> None:
    os.nice(5)  # load, not starvation: the tests still get their share
    while True:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=20)
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy processes")
    # -k and -m take a value: declared here, so the value is not taken for a test id.
    parser.add_argument("-k", dest="keyword", help="pytest's -k: only tests matching this")
    parser.add_argument("-m", dest="marker", help="pytest's -m: only tests with these markers")
    parser.add_argument("tests", nargs="+", help="test ids; other options go to pytest")
    args, pytest_options = parser.parse_known_args()
    if args.keyword is not None:
        pytest_options += ["-k", args.keyword]
    if args.marker is not None:
        pytest_options += ["-m", args.marker]
    # SIGTERM (a `kill`, a time-out) stops the run as Ctrl-C does: the pytest run and the
    # busy processes end with it, instead of running on without their parent.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(args.load)]
    for proc in burners:
        proc.start()
    try:
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            pytest = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-x",
                    "-p",
                    "no:cacheprovider",
                    *pytest_options,
                ]
                + args.tests,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                stdout, stderr = pytest.communicate()
            finally:
                if pytest.poll() is None:  # stopped: the run goes with it (its farms too)
                    pytest.terminate()
                    pytest.wait(60)
            took = time.monotonic() - started
            if pytest.returncode != 0:
                print(stdout[-6000:], stderr[-2000:], sep="\n")
                print(f"run {run}/{args.runs}: FAILED after {took:.0f} s")
                return 1
            print(f"run {run}/{args.runs}: passed in {took:.0f} s", flush=True)
    finally:
        for proc in burners:
            proc.terminate()
    print(f"{args.runs} runs in a row passed under a load of {args.load} busy processes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
