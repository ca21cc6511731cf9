"""Dispatch throughput: N no-op tasks (`true`) on K local engines, DrQueue versus raw ipyparallel.

    python bench/dispatch.py [--tasks 500] [--engines 4,16] [--repeat 3] [--profile DIR]
                             [--profile-gil] [--src DIR] [--store sqlite|mongo|both]
                             [--mongo-url URL]

(a) DrQueue end to end: a real ``drqueue master`` and one ``drqueue slave --slots K``
    (started as tests/farm.py does), one shell job ``cmd: "true"`` of N one-frame tasks,
    timed from just before the submit request to the job's ``finished_at`` as the API
    reports it (the API is polled every 0.1 s; the polled wall time is printed too).
    Once per store (``--store``, default both): the master's SQLite file, and MongoDB over
    the wire, the test server (SecantusDB, not mongod) started here, or ``--mongo-url``.
(b) raw ipyparallel: its own controller (``--nodb``, the default hwm=1, as DrQueue's) and
    K engines from ``ipyparallel.Cluster``, a LoadBalancedView applying
    ``subprocess.run(["true"])`` N times, timed from the first submit to the last result.
(c) for reference ("direct", skip with --no-direct): the same raw cluster, but the client
    sends each task to an idle engine it picked (one DirectView per engine, one task per
    engine at a time): DrQueue's dispatch pattern with no store and no runner.

All farms are started first and stay up; then the timed rounds alternate (DrQueue on each
store, raw, direct, DrQueue, ...) so that load from other work on the machine hits every side
alike, and the figures are the median rate of each side, with the ratios DrQueue / raw for
each store and MongoDB / SQLite.  Both sides first run K untimed warm-up tasks, so
imports on the engines are not timed.
The CPU seconds each process group spent during the timed phase are printed per task.
``--profile DIR`` records the master (and one engine) with py-spy during the DrQueue
phase into ``DIR/master.txt`` and ``DIR/engine.txt``, or ``DIR/STORE/…`` when more than one
store is measured (collapsed stacks; summarise them with
``python bench/_pyspy_top.py DIR/master.txt``).  Sampling costs CPU: profiled rates are lower.
``--src DIR`` runs the master and slave from another source tree (a patched copy of src/),
to measure a proposed change without touching the working tree.

Each engine count (``--engines``, default 4 and 16) is measured on farms of its own, one after
the other.  Targets (issue 14): DrQueue >= 1.0 x raw LoadBalancedView, and the master's CPU per
task <= 2 ms (printed beside the raw client's).  Everything started here is stopped before it
returns.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Stores,
    add_store_options,
    chosen_stores,
    process_tree,
    submit_shell,
)

#: DrQueue's rate over raw ipyparallel's LoadBalancedView's, on the same engines (issue 14).
TARGET_RATIO = 1.0
#: CPU milliseconds the master may spend per task (dispatcher, store, API) (issue 14).
TARGET_MASTER_CPU_MS = 2.0


# -- process accounting ---------------------------------------------------------------------------


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for proc in procs:
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return out


def _delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)


class CpuMeter:
    """CPU seconds spent by named groups of processes between start() and stop()."""

    def __init__(self, groups: dict[str, list[psutil.Process]]):
        self.groups = groups
        self.before: dict[str, dict[int, float]] = {}
        self.spent: dict[str, float] = {}

    def start(self) -> None:
        self.before = {name: _cpu(procs) for name, procs in self.groups.items()}

    def stop(self) -> dict[str, float]:
        self.spent = {
            name: _delta(self.before[name], _cpu(procs)) for name, procs in self.groups.items()
        }
        return self.spent


def _is(proc: psutil.Process, marker: str) -> bool:
    try:
        return marker in " ".join(proc.cmdline())
    except psutil.Error:
        return False


# -- (a) DrQueue -----------------------------------------------------------------------------------


#: Set by --profile-gil: py-spy keeps only the samples of a thread holding the GIL (the
#: Python code's CPU; a thread in SQLite or a system call has let go of it).
PROFILE_GIL = False


def _spy(pid: int, out: Path, seconds: float) -> list[subprocess.Popen]:
    """py-spy record of *pid* (collapsed stacks, 100 Hz); bench/_pyspy_top.py summarises them."""
    gil = ["--gil"] if PROFILE_GIL else []
    return [
        subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "100",
                "--threads",
                "--nonblocking",
                *gil,
                "--duration",
                str(int(seconds)),
                "--format",
                "raw",
                "-o",
                str(out.with_suffix(".txt")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]


def _stop_spies(spies: list[subprocess.Popen]) -> None:
    for spy in spies:
        if spy.poll() is None:
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
    for spy in spies:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


class DrQueueSide:
    """A real master and one slave with K slots (as tests/farm.py starts them), on one store."""

    def __init__(
        self,
        engines: int,
        src: Path | None = None,
        profile: Path | None = None,
        *,
        store: str = "sqlite",
        stores: Stores | None = None,
    ):
        from farm import Farm

        stores = stores or Stores([store])
        self.store = stores.label(store)
        self.name = f"drqueue-{self.store}"
        self.engines = engines
        self.profile = profile
        self._tmp = tempfile.TemporaryDirectory(prefix="drqueue-bench-")
        self.farm = Farm(Path(self._tmp.name) / "farm", **stores.farm_settings(store))
        #: The test MongoDB server this side's master uses (started by farm_settings), if any.
        self._server_pid = stores.server_pid if store == "mongo" else None
        if src is not None:
            self.farm.env["PYTHONPATH"] = str(src.resolve())
        self.rounds = 0

    def start(self) -> None:
        t = time.monotonic()
        try:
            self.farm.start_master()
            self.farm.add_slave("bench", slots=self.engines)
            self.farm.wait_engines(self.engines, timeout=120)
        except BaseException:
            self.dump_logs()
            raise
        self.startup = time.monotonic() - t
        self.client = self.farm.client
        self._finished(
            self._submit(self.engines)[1]["id"], 60
        )  # warm-up: engines import the runner
        master = psutil.Process(self.farm.master_proc.pid)
        controller = [
            p for p in master.children(recursive=True) if _is(p, "drqueue.master.ipcontroller")
        ]
        slave_tree = process_tree(self.farm.slaves["bench"].pid)
        self.engine_procs = [p for p in slave_tree if _is(p, "ipyparallel.engine")]
        self.master = master
        self.groups = {
            "master": [master],
            "controller": controller,
            "engines": self.engine_procs,
            "slave": slave_tree[:1],
        }
        if self._server_pid is not None:  # the test MongoDB server, a process of its own
            self.groups["database"] = process_tree(self._server_pid)

    def _submit(self, n: int) -> tuple[float, dict]:
        t0 = time.time()
        job = submit_shell(self.client, f"bench-{n}", tasks=n)
        return t0, job

    def _finished(self, job_id: int, timeout: float) -> dict:
        from farm import wait_for

        return wait_for(
            lambda: (
                (j := self.client.job(job_id))["status"] in ("finished", "error", "cancelled") and j
            ),
            timeout,
            0.1,
            f"job {job_id}",
        )

    def round(self, tasks: int) -> dict[str, Any]:
        self.rounds += 1
        spies: list[subprocess.Popen] = []
        if self.profile is not None and self.rounds == 1:  # py-spy the first timed round only
            self.profile.mkdir(parents=True, exist_ok=True)
            spies += _spy(self.master.pid, self.profile / "master", 300)
            if self.engine_procs:
                spies += _spy(self.engine_procs[0].pid, self.profile / "engine", 300)
            time.sleep(1.0)  # py-spy attaches
        meter = CpuMeter(self.groups)
        meter.start()
        t0, job = self._submit(tasks)
        try:
            done = self._finished(job["id"], max(120, tasks / 5))
        except BaseException:
            self.dump_logs()
            raise
        wall = time.time() - t0
        cpu = meter.stop()
        _stop_spies(spies)
        seconds = (done["finished_at"] or time.time()) - t0
        if done["counts"]["finished"] != tasks:  # say why, or a missing task goes unexplained
            for event in self.client.events(job["id"]):
                if event["kind"] not in ("job.submitted", "task.first-frame", "job.finished"):
                    print(f"    {event['kind']}: {event['message']}", flush=True)
        return {
            "finished": done["counts"]["finished"],
            "seconds": seconds,
            "polled_seconds": wall,
            "rate": tasks / seconds,
            "cpu_ms_per_task": {k: 1000 * v / tasks for k, v in cpu.items()},
        }

    def dump_logs(self) -> None:
        for log in sorted(self.farm.root.glob("*.out")):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            print(f"--- {log.name} (last lines)\n{tail}", file=sys.stderr)

    def stop(self) -> None:
        try:
            self.farm.stop()
        finally:
            self._tmp.cleanup()


def noop_task() -> int:
    import subprocess

    return subprocess.run(["true"]).returncode


class RawSide:
    """ipyparallel alone: its own controller (--nodb, default hwm=1) and K engines."""

    name = "raw"

    def __init__(self, engines: int):
        self.engines = engines
        self._tmp = tempfile.TemporaryDirectory(prefix="ipp-bench-")
        self.cluster = None
        self.rc = None

    def start(self) -> None:
        import ipyparallel as ipp

        t = time.monotonic()
        self.cluster = ipp.Cluster(
            n=self.engines,
            profile_dir=self._tmp.name,
            log_level=30,
            controller_args=["--nodb"],
            controller_ip="127.0.0.1",
            shutdown_atexit=True,
        )
        self.rc = self.cluster.start_and_connect_sync()
        self.rc.wait_for_engines(self.engines, timeout=120)
        self.startup = time.monotonic() - t
        self.view = self.rc.load_balanced_view()
        self.view.wait([self.view.apply_async(noop_task) for _ in range(self.engines)])  # warm-up
        controller = process_tree(self.cluster.controller.pid)
        # The cluster's engines are this process's own children (a DrQueue engine is the
        # slave's child); each with its nanny, as on the DrQueue side.
        engine_procs = [
            p
            for child in psutil.Process().children()
            if _is(child, "ipyparallel.engine")
            for p in process_tree(child.pid)
        ]
        self.groups = {
            "controller": controller,
            "engines": engine_procs,
            "client": [psutil.Process()],
        }

    def round(self, tasks: int) -> dict[str, Any]:
        meter = CpuMeter(self.groups)
        meter.start()
        t0 = time.monotonic()
        results = [self.view.apply_async(noop_task) for _ in range(tasks)]
        self.view.wait(results)
        seconds = time.monotonic() - t0
        cpu = meter.stop()
        return {
            "finished": sum(1 for ar in results if ar.get() == 0),
            "seconds": seconds,
            "rate": tasks / seconds,
            "cpu_ms_per_task": {k: 1000 * v / tasks for k, v in cpu.items()},
        }

    def round_direct(self, tasks: int) -> dict[str, Any]:
        """DrQueue's pattern without DrQueue: the client picks an idle engine for each task
        (a DirectView per engine, one task per engine at a time), so every task waits for a
        round trip through the client, as it does through the master."""
        views = {engine_id: self.rc[engine_id] for engine_id in self.rc.ids}
        arrived = threading.Event()
        idle, pending, results = list(views), {}, []
        meter = CpuMeter(self.groups)
        meter.start()
        t0 = time.monotonic()
        while len(results) < tasks:
            while idle and len(results) + len(pending) < tasks:
                engine_id = idle.pop()
                ar = views[engine_id].apply_async(noop_task)
                ar.add_done_callback(lambda _: arrived.set())
                pending[ar] = engine_id
            arrived.wait(1.0)
            arrived.clear()
            for ar in [ar for ar in pending if ar.done()]:
                idle.append(pending.pop(ar))
                results.append(ar.get())
        seconds = time.monotonic() - t0
        cpu = meter.stop()
        return {
            "finished": results.count(0),
            "seconds": seconds,
            "rate": tasks / seconds,
            "cpu_ms_per_task": {k: 1000 * v / tasks for k, v in cpu.items()},
        }

    def stop(self) -> None:
        try:
            if self.rc is not None:
                with contextlib.suppress(Exception):
                    self.rc.close()
            if self.cluster is not None:
                self.cluster.stop_cluster_sync()
        finally:
            self._tmp.cleanup()


# -- main --------------------------------------------------------------------------------------------


class RawDirectSide:
    """The raw cluster driven the way DrQueue's master drives its engines (RawSide.round_direct)."""

    name = "direct"

    def __init__(self, raw: RawSide):
        self.raw = raw
        self.startup = 0.0

    def start(self) -> None:
        pass  # the raw side's cluster

    def round(self, tasks: int) -> dict[str, Any]:
        return self.raw.round_direct(tasks)

    def stop(self) -> None:
        pass


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument(
        "--engines",
        default="4,16",
        help="engine counts, comma-separated: each is measured on its own farms (default 4,16)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds per side, alternating")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the master and one engine into this folder"
    )
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: keep only samples holding the GIL (Python's own CPU)",
    )
    parser.add_argument("--only", choices=("drqueue", "raw"), help="run one side only")
    parser.add_argument(
        "--no-direct",
        action="store_true",
        help="skip the raw cluster driven one task per engine by the client",
    )
    parser.add_argument(
        "--src", type=Path, help="run master and slave from this source tree (PYTHONPATH)"
    )
    add_store_options(parser)
    args = parser.parse_args(argv)
    global PROFILE_GIL
    PROFILE_GIL = args.profile_gil
    counts = [int(k) for k in str(args.engines).split(",") if k.strip()]
    rows: list[dict[str, Any]] = []
    for k in counts:
        profile = (
            args.profile / f"{k}-engines" if args.profile and len(counts) > 1 else args.profile
        )
        rows += measure(args, k, profile)
    return rows


def measure(args: argparse.Namespace, k: int, profile_dir: Path | None) -> list[dict[str, Any]]:
    """Every side on K engines, the timed rounds alternating; the rows of its figures."""
    n = args.tasks
    store_names = chosen_stores(args.store) if args.only != "raw" else []
    print(
        f"{n} tasks on {k} engines, {args.repeat} rounds per side, stores: "
        f"{', '.join(store_names) or 'none'}; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs before the run",
        flush=True,
    )

    runs: dict[str, list[dict[str, Any]]] = {}
    drqueue_sides: dict[str, str] = {}  # side name -> store label
    with contextlib.ExitStack() as stack:
        stores = stack.enter_context(Stores(store_names, args.mongo_url))  # closed last
        sides: list[Any] = []
        for store in store_names:
            profile = profile_dir
            if profile is not None and len(store_names) > 1:
                profile = profile / stores.label(store)
            side = DrQueueSide(k, args.src, profile, store=store, stores=stores)
            drqueue_sides[side.name] = side.store
            sides.append(side)
        if args.only != "drqueue":
            sides.append(RawSide(k))
            if not args.no_direct:
                sides.append(RawDirectSide(sides[-1]))
        runs = {side.name: [] for side in sides}
        for side in sides:  # every side's folder goes, even if an earlier side fails to start
            stack.callback(side.stop)
        for side in sides:
            side.start()
            if side.startup:
                print(f"{side.name}: {k} engines up in {side.startup:.1f} s", flush=True)
        for i in range(args.repeat):
            for side in sides:
                r = side.round(n)
                runs[side.name].append(r)
                cpu = ", ".join(f"{g} {v:.2f}" for g, v in r["cpu_ms_per_task"].items())
                print(
                    f"  round {i + 1} {side.name:14}: {r['finished']}/{n} in {r['seconds']:.2f} s"
                    f" = {r['rate']:6.1f} tasks/s   CPU ms/task: {cpu}",
                    flush=True,
                )

    def median_rate(name: str) -> float:
        return statistics.median(r["rate"] for r in runs[name])

    def median_cpu(name: str) -> str:
        groups = runs[name][0]["cpu_ms_per_task"]
        return ", ".join(
            f"{g} {statistics.median(r['cpu_ms_per_task'][g] for r in runs[name]):.2f}"
            for g in groups
        )

    rows = []
    label = f"{n} x `true` on {k} engines"
    figures = {
        "raw": f"raw ipyparallel LoadBalancedView, {label}",
        "direct": f"raw ipyparallel, client picks an idle engine per task (DrQueue's pattern), {label}",
    }
    for name in runs:
        rate = median_rate(name)
        spread = ", ".join(f"{r['rate']:.0f}" for r in runs[name])
        print(
            f"{name}: median {rate:.1f} tasks/s (rounds: {spread}); CPU ms/task {median_cpu(name)}"
        )
        out = {
            "benchmark": "dispatch",
            "figure": figures.get(name, f"DrQueue end to end, {label}")
            + f" (median of {len(runs[name])})",
            "value": round(rate, 1),
            "unit": "tasks/s",
        }
        if name in drqueue_sides:
            out["store"] = drqueue_sides[name]
        rows.append(out)
    if "direct" in runs:
        ratio = median_rate("direct") / median_rate("raw")
        rows.append(
            {
                "benchmark": "dispatch",
                "figure": f"raw one-per-engine / raw LoadBalancedView, {k} engines",
                "value": round(ratio, 2),
                "unit": "x",
            }
        )
        print(f"ratio raw one-per-engine / raw LoadBalancedView, {k} engines: {ratio:.2f}")
    if "raw" in runs:
        for name, store in drqueue_sides.items():
            ratio = median_rate(name) / median_rate("raw")
            rows.append(
                {
                    "benchmark": "dispatch",
                    "store": store,
                    "figure": f"DrQueue / raw LoadBalancedView, tasks/s, {k} engines",
                    "value": round(ratio, 2),
                    "unit": "x",
                    "target": f">= {TARGET_RATIO}",
                    "ok": ratio >= TARGET_RATIO,
                }
            )
            print(
                f"ratio DrQueue/raw, {store}, {k} engines: {ratio:.2f} (target >= {TARGET_RATIO}: "
                f"{'met' if ratio >= TARGET_RATIO else 'MISSED'})"
            )

    def median_ms(name: str, group: str) -> float:
        return statistics.median(r["cpu_ms_per_task"][group] for r in runs[name])

    for name, store in drqueue_sides.items():
        master = median_ms(name, "master")
        rows.append(
            {
                "benchmark": "dispatch",
                "store": store,
                "figure": f"master CPU per task (dispatcher, store, API), {k} engines",
                "value": round(master, 2),
                "unit": "ms",
                "target": f"<= {TARGET_MASTER_CPU_MS}",
                "ok": master <= TARGET_MASTER_CPU_MS,
            }
        )
        print(
            f"master CPU ms/task, {store}, {k} engines: {master:.2f} "
            f"(target <= {TARGET_MASTER_CPU_MS}: "
            f"{'met' if master <= TARGET_MASTER_CPU_MS else 'MISSED'})"
        )
    if "raw" in runs:
        client = median_ms("raw", "client")
        rows.append(
            {
                "benchmark": "dispatch",
                "figure": f"raw LoadBalancedView client CPU per task, {k} engines",
                "value": round(client, 2),
                "unit": "ms",
            }
        )
        print(f"raw client CPU ms/task, {k} engines: {client:.2f}")
    by_store = {store: name for name, store in drqueue_sides.items()}
    mongo = by_store.get("mongo-url") or by_store.get("mongo")
    if mongo and "sqlite" in by_store:
        ratio = median_rate(mongo) / median_rate(by_store["sqlite"])
        rows.append(
            {
                "benchmark": "dispatch",
                "store": drqueue_sides[mongo],
                "figure": f"DrQueue on MongoDB / DrQueue on SQLite, tasks/s, {k} engines",
                "value": round(ratio, 2),
                "unit": "x",
            }
        )
        print(f"ratio DrQueue on MongoDB / on SQLite: {ratio:.2f}")
    return rows


if __name__ == "__main__":
    main()
