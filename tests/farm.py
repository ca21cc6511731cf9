"""A real farm for tests: `drqueue master` and `drqueue slave` processes on 127.0.0.1.

Nothing here is mocked: the master runs the ipyparallel controller, the slaves
run real ipengines, and tests talk to the master through drqueue.Client.
Each farm gets its own DRQUEUE_ROOT and its own free ports.
"""

from __future__ import annotations

import os
import random
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from drqueue.client import Client
from drqueue.config import load_config
from drqueue.errors import MasterUnreachable
from drqueue.procs import stop_process_tree

#: The stores the farm tests that run on each start their master on: SQLite (the default, a
#: file under the farm's root) and MongoDB over the wire (tests/mongo_server.py); see the
#: ``store_settings`` fixture in tests/conftest.py.
FARM_STORES = ("sqlite", "mongo")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port_block(size: int = 21) -> int:
    """The first port of *size* consecutive free ports, below Linux's ephemeral range
    (32768-60999), so no process's outgoing connection takes one between this check and the
    master's bind."""
    low, high = _ephemeral_ports()
    for _ in range(200):
        base = random.randrange(10000, low - size) if low > 10000 + size else None
        if base is None:
            base = random.randrange(high + 1, 65535 - size)
        if all(_free(port) for port in range(base, base + size)):
            return base
    raise RuntimeError("no free port block")


def wait_for(
    condition: Callable[[], Any], timeout: float = 60, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll *condition* until it returns something truthy; fail the test after *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or condition}")
        time.sleep(interval)


def unwritable_folder(path: Path) -> str:
    """Make *path* a folder the slaves' user cannot write into and cannot replace (root ignores
    modes, so as root it belongs to another user); the words the runner's reason will use."""
    path.mkdir(parents=True)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.chown(path, 65534, 65534)
        return "belongs to another user (uid 65534)"
    path.chmod(0o500)
    return "Permission denied"


def stills_command(out: Path, gate: Path | None = None) -> str:
    """A shell job's command: say which frame, wait for *gate* if given, and write a 320x240
    PNG of FFmpeg's test pattern, out/still_NNNN.png (the job's `output`, so the runner checks
    it and records it as the task's output)."""
    wait = (
        f"while [ ! -e {shlex.quote(str(gate))} ]; do echo waiting {{frame}}; sleep 0.2; done; "
        if gate
        else ""
    )
    script = (
        f"echo rendering frame {{frame}}; {wait}"
        "ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi "
        "-i testsrc=size=320x240:rate=1 -frames:v 1 "
        f"{shlex.quote(str(out))}/still_{{padframe}}.png && echo wrote frame {{frame}}"
    )
    return f"sh -c {shlex.quote(script)}"


class Farm:
    """A master and any number of slaves, started as processes."""

    def __init__(self, root: Path, **settings: Any):
        self.root = root
        base = free_port_block()
        self.env = dict(os.environ)
        self.env.update(
            {
                "DRQUEUE_ROOT": str(root),
                "DRQUEUE_API_PORT": str(base),
                "DRQUEUE_CONTROLLER_PORTS": f"{base + 1}-{base + 20}",
                "DRQUEUE_HEARTBEAT_MS": "1000",
                "DRQUEUE_HEARTBEAT_MISSES": "5",
                "DRQUEUE_ENGINE_REGISTER_TIMEOUT": "20",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env.pop("DRQUEUE_TOKEN", None)
        self.env.pop("DRQUEUE_MASTER", None)
        for key, value in settings.items():
            self.env[f"DRQUEUE_{key.upper()}"] = str(value)
        self.master_proc: subprocess.Popen | None = None
        self.slaves: dict[str, subprocess.Popen] = {}
        self._client: Client | None = None

    @property
    def config(self):
        saved = {k: os.environ.get(k) for k in self.env if k.startswith("DRQUEUE_")}
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("DRQUEUE_")})
        try:
            return load_config()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _spawn(
        self,
        args: list[str],
        log_name: str,
        env: dict[str, str] | None = None,
        address_space_mb: int | None = None,
    ) -> subprocess.Popen:
        self.root.mkdir(parents=True, exist_ok=True)
        out = open(self.root / log_name, "ab")
        limit = None
        if address_space_mb:
            size = address_space_mb * 2**20

            def limit() -> None:  # in the child: the slave, its engines and their renders
                resource.setrlimit(resource.RLIMIT_AS, (size, size))

        proc = subprocess.Popen(
            [sys.executable, "-m", "drqueue.cli.main", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env or self.env,
            preexec_fn=limit,
        )
        out.close()
        return proc

    @property
    def client(self) -> Client:
        if self._client is None:
            config = self.config
            self._client = Client(config=config, token=config.api_token())
        return self._client

    def cli(
        self, *args: str, check: bool = False, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """Run `drqueue ARGS` against this farm, as a user would."""
        result = subprocess.run(
            [sys.executable, "-m", "drqueue.cli.main", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"drqueue {' '.join(args)} failed: {result.stderr}")
        return result

    def start_master(self) -> None:
        self.master_proc = self._spawn(["master"], "master.out")
        self._client = None

        def up() -> bool:
            if self.master_proc.poll() is not None:
                raise AssertionError(
                    f"master exited: {(self.root / 'master.out').read_text()[-2000:]}"
                )
            if not self.client.token:
                self._client = None  # the master writes its token file as it starts
            try:
                self.client.farm()
                return True
            except MasterUnreachable:
                return False

        wait_for(up, 90, what="the master's API")

    def kill_master(self) -> None:
        """SIGKILL the master; its controller dies with it (PR_SET_PDEATHSIG)."""
        assert self.master_proc is not None
        self.master_proc.send_signal(signal.SIGKILL)
        self.master_proc.wait(10)
        wait_for(
            lambda: not self.controller_pids(), 20, what="the controller to die with the master"
        )

    def controller_pids(self) -> list[int]:
        marker = f"--profile-dir={self.root / 'ipython'}"
        return [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if "drqueue.master.ipcontroller" in (p.info.get("cmdline") or [])
            and marker in p.info["cmdline"]
        ]

    def add_slave(
        self,
        name: str,
        slots: int = 1,
        pools: list[str] | None = None,
        gpus: int = 0,
        env: dict[str, str] | None = None,
        ram_mb: int | None = None,
        address_space_mb: int | None = None,
    ) -> subprocess.Popen:
        """Start a slave; *ram_mb* is its ``--ram-mb``, *address_space_mb* an RLIMIT_AS on
        it (and so on its engines and their renders: an allocation past it fails)."""
        args = ["slave", "--name", name, "--slots", str(slots), "--gpus", str(gpus)]
        for pool in pools or []:
            args += ["--pool", pool]
        if ram_mb:
            args += ["--ram-mb", str(ram_mb)]
        proc = self._spawn(
            args,
            f"slave-{name}.out",
            env={**self.env, **(env or {})},
            address_space_mb=address_space_mb,
        )
        self.slaves[name] = proc
        return proc

    def stop_slave(self, name: str) -> None:
        proc = self.slaves.pop(name)
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            stop_process_tree(proc.pid)

    def wait_engines(self, count: int, timeout: float = 90) -> None:
        wait_for(lambda: self.client.farm()["engines"] >= count, timeout, 0.2, f"{count} engines")

    def engine_pids(self, slave: str) -> list[int]:
        """PIDs of the ipengine processes (not nannies) of one slave."""
        pids = []
        for proc in psutil.process_iter(["cmdline", "environ"]):
            cmdline = proc.info.get("cmdline") or []
            if "ipyparallel.engine" in cmdline:
                try:
                    if proc.environ().get("DRQUEUE_SLAVE_NAME") == slave and proc.environ().get(
                        "DRQUEUE_ROOT"
                    ) == str(self.root):
                        pids.append(proc.pid)
                except psutil.Error:
                    pass
        return pids

    def wait_job(
        self, job_id: int, timeout: float = 120, states=("finished", "error", "cancelled")
    ) -> dict:
        return wait_for(
            lambda: (job := self.client.job(job_id))["status"] in states and job,
            timeout,
            0.2,
            f"job {job_id} to end",
        )

    def stop(self) -> None:
        for name in list(self.slaves):
            self.stop_slave(name)
        if self.master_proc is not None and self.master_proc.poll() is None:
            self.master_proc.terminate()
            try:
                self.master_proc.wait(20)
            except subprocess.TimeoutExpired:
                stop_process_tree(self.master_proc.pid)
        if self._client is not None:
            self._client.close()
        # A log call with bad arguments prints "--- Logging error ---" and a traceback instead
        # of failing: a leftover debug line wrote one per dispatch once.  Catch that here.
        for out in self.root.glob("*.out"):
            text = out.read_text(errors="replace")
            assert "--- Logging error ---" not in text, f"{out.name} has a logging error"


def two_slave_farm(root: Path, **settings: Any) -> Farm:
    """A started master with two one-slot slaves, alpha and beta, both registered."""
    farm = Farm(root, **settings)
    try:
        farm.start_master()
        farm.add_slave("alpha")
        farm.add_slave("beta")
        farm.wait_engines(2)
    except BaseException:
        farm.stop()
        raise
    return farm


def start_master_refused(
    root: Path, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess:
    """Run ``drqueue master`` on *root* (its API on port 1, never reached) with *env* added,
    expecting it to refuse its settings before it starts: what it exited with and printed.
    (The bound is a failure's only: the master's imports took 60 s under load.)"""
    return subprocess.run(
        [sys.executable, "-m", "drqueue.cli.main", "master"],
        capture_output=True,
        text=True,
        env={**os.environ, "DRQUEUE_ROOT": str(root), "DRQUEUE_API_PORT": "1", **env},
        timeout=timeout,
    )


def require_programs(*names: str) -> None:
    """Fail (or, with DRQUEUE_ALLOW_SKIP=1, skip) the calling test when one of the programs
    *names* is not on PATH: in CI the end-to-end renders must run, not skip."""
    import pytest

    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    why = f"{', '.join(missing)} not on PATH"
    if os.environ.get("DRQUEUE_ALLOW_SKIP") == "1":
        pytest.skip(why)
    pytest.fail(f"{why}: the end-to-end renders need them (DRQUEUE_ALLOW_SKIP=1 skips them)")
