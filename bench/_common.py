"""Helpers shared by the benchmarks in bench/ (not a benchmark itself: run_all skips "_" files).

- :func:`drqueue_farm`: a real ``drqueue master`` (and slaves the caller adds) through
  tests/farm.py's Farm, in its own temporary DRQUEUE_ROOT, stopped on the way out; on an
  error the last lines of every process log are printed.
- :func:`raw_cluster`: ipyparallel alone (its own controller with ``--nodb``, as DrQueue's,
  and N engines started by ``ipyparallel.Cluster``), stopped on the way out.
- :func:`api_client`: a drqueue.Client on a farm's API with its admin token.
- :func:`submit_shell`: a shell job of one-frame tasks, the benchmarks' load;
  :func:`warm_up`: one untimed task per engine, so engines have imported the runner.
- :class:`Stores`: the store as a dimension (``--store sqlite|mongo|both``): a fresh store
  URL per backend; for MongoDB the test server (tests/mongo_server.py: SecantusDB, *not*
  ``mongod``) started in a temporary folder and stopped at the end, or ``--mongo-url``.
- :func:`master_processes`: a farm's master and its controller's processes, by name, for
  :func:`cpu_seconds` (CPU of processes and their waited-for children).
- :func:`wait_job`, :func:`process_tree`, :func:`rss_mb`, :func:`tree_rss_mb`,
  :func:`peak_rss_mb`, :func:`row`, :func:`report`, :func:`print_load`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

MB = 2**20
ENDED = ("finished", "error", "cancelled")

#: The store backends a benchmark can run on, in the order their rows are printed.
STORES = ("sqlite", "mongo")


def print_load(what: str = "") -> None:
    print(
        f"{what}{': ' if what else ''}load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} "
        "CPUs before the run",
        flush=True,
    )


def dump_logs(farm: Any, lines: int = 15) -> None:
    """The last lines of every process log of a Farm, to stderr."""
    for log in sorted(farm.root.glob("*.out")):
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        print(f"--- {log.name} (last lines)\n{tail}", file=sys.stderr)


@contextlib.contextmanager
def drqueue_farm(src: Path | None = None, **settings: Any) -> Iterator[Any]:
    """A tests/farm.py Farm in a temporary root (master not started yet); stopped at the end."""
    from farm import Farm

    with tempfile.TemporaryDirectory(prefix="drqueue-bench-") as tmp:
        farm = Farm(Path(tmp) / "farm", **settings)
        if src is not None:
            farm.env["PYTHONPATH"] = str(Path(src).resolve())
        try:
            yield farm
        except BaseException:
            dump_logs(farm)
            raise
        finally:
            stop_farm(farm)


def stop_farm(farm: Any) -> None:
    """Farm.stop, but every slave gets its SIGTERM at once: a slave stops its engines one after
    the other (about 2 s each here), so stopping 4 slaves of 8 one by one takes over a minute."""
    started = time.monotonic()
    for proc in farm.slaves.values():
        with contextlib.suppress(OSError):
            proc.terminate()
    farm.stop()
    print(f"  (farm stopped in {time.monotonic() - started:.1f} s)", flush=True)


@contextlib.contextmanager
def raw_cluster(
    engines: int,
    timeout: float = 300,
    controller_args: tuple[str, ...] = ("--nodb",),
    controller_cmd: list[str] | None = None,
) -> Iterator[tuple[Any, Any]]:
    """(cluster, client) of raw ipyparallel with *engines* engines registered; *controller_cmd*
    replaces ``python -m ipyparallel.controller`` (e.g. the master's own controller module)."""
    import ipyparallel as ipp
    from traitlets.config import Config as TraitletsConfig

    config = TraitletsConfig()
    if controller_cmd is not None:
        config.LocalControllerLauncher.controller_cmd = list(controller_cmd)
    with tempfile.TemporaryDirectory(prefix="ipp-bench-") as tmp:
        cluster = ipp.Cluster(
            n=engines,
            profile_dir=tmp,
            log_level=30,
            controller_args=list(controller_args),
            controller_ip="127.0.0.1",
            shutdown_atexit=True,
            config=config,
        )
        rc = None
        try:
            rc = cluster.start_and_connect_sync()
            if engines:
                rc.wait_for_engines(engines, timeout=timeout)
            yield cluster, rc
        finally:
            started = time.monotonic()
            if rc is not None:
                with contextlib.suppress(Exception):
                    rc.close()
            with contextlib.suppress(Exception):
                cluster.stop_cluster_sync()
            print(f"  (raw cluster stopped in {time.monotonic() - started:.1f} s)", flush=True)


def api_client(farm: Any, timeout: float) -> Any:
    """A drqueue.Client on *farm*'s API with the admin token; use it as a context manager."""
    from drqueue.client import Client

    config = farm.config
    return Client(config=config, token=config.api_token(), timeout=timeout)


def submit_shell(client: Any, name: str, *, tasks: int, cmd: str = "true") -> dict[str, Any]:
    """Submit a shell job of *tasks* one-frame tasks (block size 1) running *cmd*; its JSON.

    No retries: a task that fails shows in the counts instead of running again unseen.
    """
    return client.submit(
        "shell",
        None,
        start=1,
        end=tasks,
        block_size=1,
        retries=0,
        name=name,
        params={"cmd": cmd},
    )


def warm_up(client: Any, engines: int, timeout: float) -> None:
    """One untimed ``true`` task per engine, waited for: engines import the runner before the
    timed part."""
    wait_job(client, submit_shell(client, "warm-up", tasks=engines)["id"], timeout)


def wait_job(client: Any, job_id: int, timeout: float, interval: float = 0.1) -> dict[str, Any]:
    """Poll the API until the job has ended; its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.job(job_id)
        if job["status"] in ENDED:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} not ended after {timeout:.0f} s: {job['counts']}")
        time.sleep(interval)


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants; empty if it has gone."""
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(procs: list[psutil.Process]) -> float:
    """CPU seconds (user + system, with waited-for children) of *procs*; gone ones count 0."""
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def master_processes(farm: Any) -> dict[str, list[psutil.Process]]:
    """{"master": [the master], "controller": [its controller and the controller's forked
    schedulers], "slaves+engines": [every slave's processes]} of a started farm."""
    master = psutil.Process(farm.master_proc.pid)
    controller = [
        p for p in master.children(recursive=True) if "drqueue.master.ipcontroller" in p.cmdline()
    ]
    return {
        "master": [master],
        "controller": [p for c in controller for p in process_tree(c.pid)],
        "slaves+engines": [p for proc in farm.slaves.values() for p in process_tree(proc.pid)],
    }


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / MB


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants (shared pages counted in each)."""
    parent = psutil.Process(pid)
    total = 0
    for proc in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / MB


def peak_rss_mb(pid: int) -> float:
    """The process's high-water RSS (VmHWM) since it started, Linux only (else 0)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def row(
    figure: str,
    value: float,
    unit: str,
    target: str | None = None,
    ok: bool | None = None,
    *,
    store: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"figure": figure, "value": value, "unit": unit}
    if store is not None:
        out["store"] = store
    if target is not None:
        out["target"] = target
        out["ok"] = bool(ok)
    return out


def report(benchmark: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tag the rows with the benchmark's name and print them; return them."""
    for r in rows:
        r["benchmark"] = benchmark
        line = f"{r['figure']}: {r['value']} {r['unit']}"
        if "store" in r:
            line = f"[{r['store']}] {line}"
        if "target" in r:
            line += f" (target {r['target']}: {'met' if r['ok'] else 'MISSED'})"
        print(line, flush=True)
    return rows


# -- the store as a dimension ----------------------------------------------------------------------


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--store sqlite|mongo|both`` (default both) and ``--mongo-url``."""
    parser.add_argument(
        "--store",
        choices=(*STORES, "both"),
        default="both",
        help="the store backend(s) to measure, side by side (default: both)",
    )
    parser.add_argument(
        "--mongo-url",
        help="a MongoDB server (mongodb://host:port/) to measure instead of starting the test "
        "server (SecantusDB); each store gets a fresh database there, dropped at the end",
    )


def chosen_stores(choice: str) -> list[str]:
    """The backends a ``--store`` value names."""
    return list(STORES) if choice == "both" else [choice]


class Stores:
    """Fresh, empty stores of each backend a benchmark measures, and the servers they need.

    SQLite needs none: a store is a file in a folder the caller owns.  MongoDB is the test
    server, tests/mongo_server.py's WireServer (SecantusDB over the wire, a Python server on
    WiredTiger: *not* ``mongod``, so its figures are not mongod's), started in a temporary
    folder at the first MongoDB store and stopped, with its data, on the way out; or the
    server of *mongo_url*, where each store is a new database dropped on the way out.
    Use it as a context manager.
    """

    def __init__(self, names: list[str], mongo_url: str | None = None):
        self.names = names
        self.mongo_url = mongo_url
        self._server: Any = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._databases: list[str] = []

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def label(self, name: str) -> str:
        """What a row's ``store`` column says: sqlite, mongo (the test server) or mongo-url."""
        return "mongo-url" if name == "mongo" and self.mongo_url else name

    @property
    def server_pid(self) -> int | None:
        """The test server's process id (for CPU accounting), None when it is not ours."""
        if self._server is None or self._server.process is None:
            return None
        return self._server.process.pid

    def url(self, name: str, folder: Path) -> str:
        """The URL of a new, empty store of backend *name*; SQLite's is a file in *folder*."""
        if name == "sqlite":
            folder.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{folder / f'drqueue-{uuid.uuid4().hex[:8]}.sqlite'}"
        database = f"drqbench_{uuid.uuid4().hex[:12]}"
        self._databases.append(database)
        if self.mongo_url:
            base = self.mongo_url.split("?")[0].rstrip("/")
            host = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
            query = self.mongo_url.partition("?")[2]
            return f"{host}/{database}" + (f"?{query}" if query else "")
        return self._test_server().database_url(database)

    def farm_settings(self, name: str) -> dict[str, str]:
        """Farm(root, **settings) for a master on a new store of *name*: nothing for SQLite
        (the master's own file under its root), ``store=URL`` for MongoDB."""
        return {} if name == "sqlite" else {"store": self.url(name, Path())}

    def _test_server(self) -> Any:
        if self._server is None:
            from mongo_server import WireServer

            self._tmp = tempfile.TemporaryDirectory(prefix="drqueue-bench-mongo-")
            server = WireServer(Path(self._tmp.name))
            started = time.monotonic()
            server.start()
            self._server = server
            print(
                f"  (test MongoDB server, SecantusDB, on port {server.port}: up in "
                f"{time.monotonic() - started:.1f} s)",
                flush=True,
            )
        return self._server

    def close(self) -> None:
        if self.mongo_url and self._databases:
            import pymongo

            client = pymongo.MongoClient(self.mongo_url, serverSelectionTimeoutMS=5000)
            try:
                for database in self._databases:
                    with contextlib.suppress(pymongo.errors.PyMongoError):
                        client.drop_database(database)
            finally:
                client.close()
        self._databases.clear()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
