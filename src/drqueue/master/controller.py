"""The ipyparallel controller's life: started, watched and stopped by the master.

The controller runs as a child process (``python -m drqueue.master.ipcontroller``:
ipyparallel's own controller with the Hub's memory of completed tasks bounded)
on fixed ports with ``--nodb`` and ``--reuse``: its connection files keep the
same ports and key across restarts, so slaves need them only once.  It dies
with the master (PR_SET_PDEATHSIG on Linux), and a controller left behind by a
master that was killed is stopped before a new one starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from drqueue.config import Config
from drqueue.errors import ConfigError
from drqueue.procs import die_with_parent, stop_process_tree

log = logging.getLogger(__name__)

#: The module the controller runs as (it also names the controller's processes).
CONTROLLER_MODULE = "drqueue.master.ipcontroller"


class Controller:
    """One ipcontroller child process."""

    def __init__(self, config: Config):
        self.config = config
        self.proc: subprocess.Popen | None = None
        self._children: list[psutil.Process] | None = (
            None  # its schedulers, seen at the first failure() check
        )
        self.pid_file = config.tmp_dir / "controller.pid"
        self.log_file = config.logs_dir / "controller.log"

    def argv(self) -> list[str]:
        cfg = self.config
        # With --reuse, ipyparallel takes the public ports from the connection files but draws its
        # internal ones (monitor, broadcast tree) from the start of --ports again: on every restart
        # the monitor socket took the engines' mux port and DirectView tasks never arrived.  So a
        # restart offers only the ports the connection files do not name.
        taken = self._connection_ports()
        ports = ",".join(str(port) for port in cfg.port_list() if port not in taken)
        argv = [
            sys.executable,
            "-m",
            CONTROLLER_MODULE,
            f"--profile-dir={cfg.profile_dir}",
            f"--ip={cfg.controller_ip}",
            "--nodb",
            "--reuse",
            "--hwm=1",
            f"--ports={ports}",
            f"--HeartMonitor.period={cfg.heartbeat_ms}",
            f"--HeartMonitor.max_heartmonitor_misses={cfg.heartbeat_misses}",
            "--log-level=WARN",
            f"--completed-kept={cfg.hub_completed_kept}",
        ]
        if cfg.curve:
            argv.append("--IPController.enable_curve=True")
        return argv

    def _connection_ports(self) -> set[int]:
        """The ports named in the connection files a previous controller wrote (reused on start)."""
        taken: set[int] = set()
        for path in (self.config.engine_file, self.config.client_file):
            try:
                info = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for value in info.values():
                values = value if isinstance(value, list) else [value]
                taken.update(v for v in values if isinstance(v, int) and not isinstance(v, bool))
        return taken

    def stop_stale(self) -> None:
        """Stop any controller process (or its forked schedulers) an earlier master left
        running on this profile: they would hold our ports and swallow the engines' traffic."""
        marker = f"--profile-dir={self.config.profile_dir}"
        stale = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            if CONTROLLER_MODULE in cmdline and marker in cmdline and proc.pid != os.getpid():
                stale.append(proc)
        for proc in stale:
            log.warning("stopping controller process %d left by an earlier master", proc.pid)
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(stale, timeout=5)
        self.pid_file.unlink(missing_ok=True)

    def start(self, timeout: float = 60.0) -> None:
        self.config.ensure_dirs()
        self.stop_stale()
        before = self._mtime(self.config.client_file)
        out = open(self.log_file, "ab")
        self._children = None
        self.proc = subprocess.Popen(
            self.argv(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
            start_new_session=True,
        )
        out.close()
        self.pid_file.write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace").splitlines()[-5:]
                raise ConfigError(
                    f"the ipyparallel controller exited with {self.proc.returncode}: "
                    f"{' | '.join(tail)} (see {self.log_file})"
                )
            now = self._mtime(self.config.client_file)
            if now and now != before and self._valid(self.config.client_file):
                break
            if now and before and self._valid(self.config.client_file) and self._listening():
                break
            time.sleep(0.1)
        else:
            self.stop()
            raise ConfigError(f"the ipyparallel controller did not start within {timeout:.0f} s")
        for path in (self.config.client_file, self.config.engine_file):
            if path.exists():
                os.chmod(path, 0o600)

    def _listening(self) -> bool:
        """Whether the controller listens on its registration port yet."""
        try:
            info = json.loads(self.config.client_file.read_text())
            port = int(info["registration"])
        except (OSError, ValueError, KeyError):
            return False
        try:
            conns = psutil.Process(self.proc.pid).net_connections(kind="tcp")
        except (psutil.Error, AttributeError):
            return False
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns)

    @staticmethod
    def _mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    @staticmethod
    def _valid(path: Path) -> bool:
        try:
            json.loads(path.read_text())
            return True
        except (OSError, ValueError):
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self) -> str | None:
        """Why the running controller is broken (its process or one of its forked scheduler
        processes died), or None while it is whole."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is not None:
            return f"the controller process {self.proc.pid} exited with {code}"
        if self._children is None:
            try:
                self._children = psutil.Process(self.proc.pid).children()
            except psutil.Error:
                self._children = []
        for child in self._children:
            try:
                dead = child.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                dead = True
            except psutil.Error:
                dead = False
            if dead:
                return f"its scheduler process {child.pid} died"
        return None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_tree(self.proc.pid)
            self.proc.wait(timeout=5)
            self.proc = None
        self.stop_stale()  # forked schedulers that outlived their parent
        self.pid_file.unlink(missing_ok=True)
