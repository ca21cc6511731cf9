"""``drqueue slave``: starts a slave's engines and keeps them registered.

Each slot is one ``ipengine`` process started with the master's engine
connection file and an environment that names the slave, the slot, its pools
and (for a GPU slot) its device.  The launcher restarts an engine that exits,
and one that runs but the master no longer counts as registered: an engine
that froze and came back is never given work again by ipyparallel ("ignoring
new heart"), and engines of a restarted controller must register anew.  It
learns which of its engines are registered from the master's API
(``/slaves/NAME/heartbeat``), which also carries the master's instance id: a
new id means a new controller, and every engine is restarted at once.

It checks its own engine processes every second (:data:`CHECK_SECONDS`, local and cheap) but
calls the master only as often as the answer's ``next_seconds`` says (the master spreads a
budget of heartbeats over its slaves), give or take :data:`HEARTBEAT_JITTER` so that thousands
of slaves do not call together, and every second while something is wrong: the last call
failed (a restarted master is seen within a second of its return), or one of its engines is
not running or not registered (it was just started or restarted, or the master lost it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import psutil

from drqueue.api_types import HEARTBEAT_MAX_SECONDS
from drqueue.config import Config
from drqueue.errors import AuthError, ConfigError, DrQueueError, Forbidden
from drqueue.procs import die_with_parent, make_undumpable, stop_process_tree

log = logging.getLogger("drqueue.slave")

#: Seconds between two checks of the engine processes, and between two heartbeats to the
#: master while something is wrong (or while a master older than ``next_seconds`` answers).
CHECK_SECONDS = 1.0
#: A heartbeat's wait is the master's ``next_seconds`` times a random factor within this much
#: of 1: slaves that saw a restarted master in the same second drift apart within a few periods.
HEARTBEAT_JITTER = 0.2


def heartbeat_wait(next_seconds: float, rng: random.Random) -> float:
    """Seconds until the next heartbeat after an answer of *next_seconds*, with everything well:
    *next_seconds* (bounded to 1-HEARTBEAT_MAX_SECONDS whatever the master says) give or take
    HEARTBEAT_JITTER, never under CHECK_SECONDS."""
    if not math.isfinite(next_seconds):
        next_seconds = CHECK_SECONDS
    period = min(HEARTBEAT_MAX_SECONDS, max(CHECK_SECONDS, next_seconds))
    if period <= CHECK_SECONDS:
        return CHECK_SECONDS
    return max(CHECK_SECONDS, period * rng.uniform(1 - HEARTBEAT_JITTER, 1 + HEARTBEAT_JITTER))


@dataclass
class EngineProcess:
    slot: int
    gpu_device: str | None
    proc: subprocess.Popen | None = None
    uuid: str = ""
    started: float = 0.0
    restarts: int = 0


def detect_gpus() -> int:
    """How many NVIDIA GPUs nvidia-smi lists; 0 without one."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


class Slave:
    """One slave: N CPU slots and G GPU slots, each an ipengine process."""

    def __init__(
        self,
        config: Config,
        name: str | None = None,
        slots: int = 1,
        pools: list[str] | None = None,
        gpus: int = 0,
        ram_mb: int | None = None,
    ):
        if slots < 0 or gpus < 0 or slots + gpus < 1:
            raise ConfigError("a slave needs at least one slot (--slots N or --gpus N)")
        self.config = config
        #: The memory this slave offers renders, in MB (``--ram-mb``), when less than its RAM.
        self.ram_mb = ram_mb
        self.name = name or socket.gethostname()
        if not self.name or "/" in self.name or len(self.name) > 200:
            raise ConfigError(f"slave name {self.name!r} is not valid")
        self.pools = [p for p in (pools or []) if p]
        self.gpus = gpus
        self.engines = [EngineProcess(slot, None) for slot in range(slots)]
        self.engines += [EngineProcess(slots + i, str(i)) for i in range(gpus)]
        self.instance: str | None = None
        self._stop = threading.Event()
        self.client = None
        #: Why the last registration check failed, logged once; None while it works.
        self._problem: str | None = None
        self._connection: str | None = None
        #: The engine UUIDs the master's last answer counted as registered.
        self._registered: set[str] = set()
        #: When the next heartbeat is due (monotonic); 0: at the next check.
        self._heartbeat_due = 0.0
        self._random = random.Random()

    # -- engine files -----------------------------------------------------------------------

    def connection_info(self) -> str:
        """The engine connection info (JSON): the local master's file, or fetched from the
        master's API with the slave token and kept in memory only.

        Whoever holds it can register an engine, and the master unpickles what engines send,
        so it must never be where a render can read it: renders run as this slave's user.
        Engines get it in $IPP_CONNECTION_INFO, and engines are made non-dumpable before any
        render starts (procs.make_undumpable), so /proc/<engine>/environ is closed to renders.
        """
        if self._connection is None:
            path = self.config.engine_file
            if path.exists():
                self._connection = path.read_text()
            elif self.config.master:
                self._connection = json.dumps(self._client().engine_connection())
            else:
                raise ConfigError(
                    f"no engine connection file at {path}: start the master first, or give "
                    "--master URL and DRQUEUE_TOKEN (a slave token)"
                )
        return self._connection

    def _client(self):
        if self.client is None:
            from drqueue.client import Client

            self.client = Client(config=self.config, timeout=5)
        return self.client

    # -- engines -----------------------------------------------------------------------------------

    def _start(self, engine: EngineProcess) -> None:
        engine.uuid = uuid.uuid4().hex
        env = dict(os.environ)
        env.update(
            {
                "DRQUEUE_SLAVE_NAME": self.name,
                "DRQUEUE_SLOT": str(engine.slot),
                "DRQUEUE_SLOTS": str(len(self.engines)),
                "DRQUEUE_POOL": ",".join(self.pools),
                "DRQUEUE_GPUS": str(self.gpus),
                "DRQUEUE_ENGINE_UUID": engine.uuid,
            }
        )
        env.pop("DRQUEUE_GPU_DEVICE", None)
        env.pop("DRQUEUE_RAM_MB", None)
        if self.ram_mb:
            env["DRQUEUE_RAM_MB"] = str(self.ram_mb)
        # The token is the launcher's alone: engines never call the API, and what an engine
        # holds, its renders can read.
        env.pop("DRQUEUE_TOKEN", None)
        if engine.gpu_device is not None:
            env["DRQUEUE_GPU_DEVICE"] = engine.gpu_device
        env["IPP_CONNECTION_INFO"] = self.connection_info()  # never a file on a slave's disk
        argv = [
            sys.executable,
            "-m",
            "ipyparallel.engine",
            f"--profile-dir={self.config.profile_dir}",
            "--log-level=WARN",
        ]
        self.config.logs_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.config.logs_dir / f"slave-{self.name}-{engine.slot}.log", "ab")
        engine.proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        out.close()
        engine.started = time.monotonic()

    def _restart(self, engine: EngineProcess, why: str) -> None:
        log.warning("slave %s: restarting engine of slot %d (%s)", self.name, engine.slot, why)
        if engine.proc is not None:
            stop_process_tree(engine.proc.pid, timeout=3)
            engine.proc.wait(timeout=5)
        self._stop_leftovers(engine.uuid)
        engine.restarts += 1
        self._start(engine)

    @staticmethod
    def _stop_leftovers(engine_uuid: str) -> None:
        """Stop the renders an engine that died left behind.  They run in their own sessions, so
        a SIGKILLed engine's render is reparented and would run on; its environment still
        carries the engine's DRQUEUE_ENGINE_UUID."""
        if not engine_uuid:
            return
        for proc in psutil.process_iter():
            try:
                if proc.environ().get("DRQUEUE_ENGINE_UUID") == engine_uuid:
                    log.warning("stopping process %d left behind by a dead engine", proc.pid)
                    stop_process_tree(proc.pid, timeout=3)
            except psutil.Error:
                pass

    def _check(self) -> None:
        """One tick: the engine processes, then a heartbeat if one is due or something is
        wrong."""
        self._check_engines()
        # Ticks are CHECK_SECONDS apart: call at the tick nearest the due time (the first one
        # after it would make a 1 s period 2 s).
        if time.monotonic() + CHECK_SECONDS / 2 >= self._heartbeat_due or not self._all_well():
            self._heartbeat()

    def _check_engines(self) -> None:
        """Start the engines not started, and restart those that exited (local: no call)."""
        for engine in self.engines:
            if engine.proc is None:
                self._start(engine)
            elif engine.proc.poll() is not None and (
                # Back off a little so a broken engine does not spin.
                time.monotonic() - engine.started > min(30, 1 + engine.restarts)
            ):
                self._restart(engine, f"it exited with {engine.proc.returncode}")

    def _all_well(self) -> bool:
        """Every engine runs and the master's last answer counted it registered (False after a
        failed call: its answer counted nothing)."""
        return all(
            engine.proc is not None and engine.proc.poll() is None for engine in self.engines
        ) and all(engine.uuid in self._registered for engine in self.engines)

    def _heartbeat(self) -> None:
        """Ask the master which engines are registered; restart those it lost; set when to ask
        again."""
        self._registered = set()
        started = time.monotonic()
        self._heartbeat_due = started + CHECK_SECONDS  # unless all is well, below
        try:
            answer = self._client().heartbeat(self.name, [e.uuid for e in self.engines])
        except (AuthError, Forbidden) as exc:
            self._heartbeat_problem(
                logging.ERROR,
                f"slave {self.name}: the master at {self.config.master_url} refused its "
                f"registration check (401/403: check DRQUEUE_TOKEN; it needs a slave or admin "
                f"token): {exc}",
            )
            return
        except DrQueueError as exc:
            self._heartbeat_problem(logging.WARNING, f"slave {self.name}: {exc}")
            return
        if self._problem is not None:
            log.info("slave %s: the master at %s answers again", self.name, self.config.master_url)
            self._problem = None
        registered = set(answer.registered)
        instance = answer.instance or None
        new_master = (
            self.instance is not None and instance is not None and instance != self.instance
        )
        self.instance = instance or self.instance
        for engine in self.engines:
            if engine.uuid in registered or engine.proc is None or engine.proc.poll() is not None:
                continue
            if new_master and time.monotonic() - engine.started > 2:
                self._restart(engine, "the master restarted")
            elif time.monotonic() - engine.started > self.config.engine_register_timeout:
                self._restart(engine, "it runs but the master does not count it as registered")
        self._registered = registered
        if self._all_well():
            self._heartbeat_due = started + heartbeat_wait(answer.next_seconds, self._random)

    def _heartbeat_problem(self, level: int, message: str) -> None:
        """Log why the registration check failed: once, and again only when the reason changes
        (it is retried every CHECK_SECONDS)."""
        if message != self._problem:
            log.log(level, "%s", message)
            self._problem = message

    # -- life -----------------------------------------------------------------------------------

    def run(self) -> None:
        # httpx logs every request at INFO: one line a second per heartbeat would bury the
        # launcher's own messages (a refused token among them).
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # The launcher holds the slave token and the connection info: renders run as this
        # user, so close /proc/<this pid>/environ and memory to them (Linux).
        make_undumpable()
        self.connection_info()  # fail early and clearly
        self.config.ensure_dirs()  # the engines' profile folder, the logs
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stop.set())
        log.info("slave %s: %d slots, pools %s", self.name, len(self.engines), self.pools or "none")
        try:
            while not self._stop.is_set():
                tick = time.monotonic()
                self._check()
                # a tick a second, however long the check took (a call to a loaded master)
                self._stop.wait(max(0.0, tick + CHECK_SECONDS - time.monotonic()))
        finally:
            self.stop()

    def stop(self) -> None:
        running = [e.proc.pid for e in self.engines if e.proc is not None and e.proc.poll() is None]
        stop_process_tree(*running, timeout=3)  # all at once: an 8-slot slave stops in ~2 s, not 17
        for engine in self.engines:
            engine.proc = None
        if self.client is not None:
            self.client.close()
