"""Helpers shared by the benchmarks in bench/ (not a benchmark itself: run_all skips "_" files).

- :func:`drqueue_farm`: a real ``drqueue master`` (and slaves the caller adds) through
  tests/farm.py's Farm, in its own temporary DRQUEUE_ROOT, stopped on the way out; on an
  error the last lines of every process log are printed.
- :func:`raw_cluster`: ipyparallel alone (its own controller with ``--nodb``, as DrQueue's,
  and N engines started by ``ipyparallel.Cluster``), stopped on the way out.
- :func:`api_client`: a drqueue.Client on a farm's API with its admin token.
- :func:`submit_shell`: a shell job of one-frame tasks, the benchmarks' load;
  :func:`warm_up`: one untimed task per engine, so engines have imported the runner.
- :func:`wait_job`, :func:`process_tree`, :func:`rss_mb`, :func:`tree_rss_mb`,
  :func:`peak_rss_mb`, :func:`row`, :func:`report`, :func:`print_load`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

MB = 2**20
ENDED = ("finished", "error", "cancelled")


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
) -> dict[str, Any]:
    out: dict[str, Any] = {"figure": figure, "value": value, "unit": unit}
    if target is not None:
        out["target"] = target
        out["ok"] = bool(ok)
    return out


def report(benchmark: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tag the rows with the benchmark's name and print them; return them."""
    for r in rows:
        r["benchmark"] = benchmark
        line = f"{r['figure']}: {r['value']} {r['unit']}"
        if "target" in r:
            line += f" (target {r['target']}: {'met' if r['ok'] else 'MISSED'})"
        print(line, flush=True)
    return rows
