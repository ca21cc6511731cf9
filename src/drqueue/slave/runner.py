"""The task runner: what an engine executes for one task.

The master calls :func:`run_task` on one engine with a plain-dict task spec
(see :func:`drqueue.master.dispatcher.task_spec`).  The runner builds the
renderer's commands, runs each as an argument list in its own process group
with the ``DRQUEUE_*`` environment, writes the full output to the task's log
file, publishes progress and a short log tail while it runs
(``ipyparallel.datapub``), and returns a plain-dict result.

Failure rules: a non-zero exit, a time-out, or an expected output file that is
missing or empty makes the task *failed*.  A SIGINT from the master (a kill)
stops the whole process group (SIGTERM, then SIGKILL) and the task returns
*killed*; no render process outlives its task.
"""

from __future__ import annotations

import collections
import contextlib
import os
import platform
import select
import signal
import socket
import subprocess
import time
from typing import Any

from drqueue.models import FrameBlock, pad_frame
from drqueue.renderers import RenderContext, Renderer, get_renderer

#: Seconds between SIGTERM and SIGKILL when a render is stopped.
KILL_GRACE_SECONDS = 5.0
#: Seconds between progress publications to the master.
PUBLISH_INTERVAL = 0.5
#: Lines of output kept for the tail sent back to the master.
TAIL_LINES = 30


def host_os() -> str:
    """This machine's OS as DrQueue names it: linux, windows or darwin."""
    system = platform.system().lower()
    return {"linux": "linux", "windows": "windows", "darwin": "darwin"}.get(system, system)


def slave_name() -> str:
    """The slave's name (``drqueue slave --name``), else this machine's host name."""
    return os.environ.get("DRQUEUE_SLAVE_NAME") or socket.gethostname()


#: Prefixes of the slave's own variables that no render inherits: DrQueue's settings and
#: credentials (DRQUEUE_TOKEN, DRQUEUE_MASTER with any user:password in its URL), ipyparallel's
#: (IPP_SESSION_KEY signs every message to the engines, IPP_CURVE_* are its keys) and Jupyter's
#: (JPY_*).  A render runs the artist's code, so it must not see the slave's secrets.
PRIVATE_PREFIXES = ("DRQUEUE_", "IPP_", "JPY_")
#: The slave's own DRQUEUE_* variables a render does inherit: the engine's id, by which an engine
#: restart finds the renders a dead engine left behind (Slave._stop_leftovers).
INHERITED_DRQUEUE_VARIABLES = ("DRQUEUE_ENGINE_UUID",)


def _inherited_environment() -> dict[str, str]:
    """The slave's environment without anything private to DrQueue, ipyparallel or Jupyter."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(PRIVATE_PREFIXES)
    }
    if env.get("MPLBACKEND", "").startswith("module://matplotlib_inline"):
        del env["MPLBACKEND"]  # the engine's kernel set it for itself; a render has no kernel
    return env


def render_environment(spec: dict[str, Any], frame: int, scene: str | None) -> dict[str, str]:
    """The environment of a render process (the rule docs/renderers.md states).

    The slave's environment without its private variables (:data:`PRIVATE_PREFIXES`), then the
    GPU slot's device, then the job's own ``env``, then the task's DRQUEUE_* variables and
    :data:`INHERITED_DRQUEUE_VARIABLES`, which a job's ``env`` cannot override.
    """
    padding = int(spec.get("padding", 4))
    env = _inherited_environment()
    gpu = os.environ.get("DRQUEUE_GPU_DEVICE")
    if gpu is not None:
        # One GPU slot, one device: every vendor's variable names the same device.
        for name in (
            "CUDA_VISIBLE_DEVICES",
            "HIP_VISIBLE_DEVICES",
            "ROCR_VISIBLE_DEVICES",
            "GPU_DEVICE_ORDINAL",
            "ONEAPI_DEVICE_SELECTOR",
        ):
            env[name] = gpu if name != "ONEAPI_DEVICE_SELECTOR" else f"*:{gpu}"
    # The job's env comes after the slot's device: a task holding several GPU slots names all
    # their devices there (drqueue.master.dispatcher.task_spec).
    env.update({str(k): str(v) for k, v in (spec.get("env") or {}).items()})
    env.update(
        {
            "DRQUEUE_FRAME": str(frame),
            "DRQUEUE_STARTFRAME": str(spec["start"]),
            "DRQUEUE_ENDFRAME": str(spec["end"]),
            "DRQUEUE_STEPFRAME": str(spec["step"]),
            "DRQUEUE_BLOCKSIZE": str(spec["block_size"]),
            "DRQUEUE_PADFRAME": pad_frame(frame, padding),
            "DRQUEUE_PADFRAMES": str(padding),
            "DRQUEUE_JOBID": str(spec["job_id"]),
            "DRQUEUE_JOBNAME": str(spec["job_name"]),
            "DRQUEUE_OWNER": str(spec.get("owner", "")),
            "DRQUEUE_SCENEFILE": scene or "",
            "DRQUEUE_RENDERDIR": os.path.dirname(scene) if scene else "",
            "DRQUEUE_LOGFILE": spec["log_path"],
            "DRQUEUE_OS": host_os(),
            "DRQUEUE_COMPID": slave_name(),
        }
    )
    for name in INHERITED_DRQUEUE_VARIABLES:
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _publish(data: dict[str, Any]) -> None:
    """Send progress to the master through ipyparallel; a no-op outside an engine."""
    try:
        from ipykernel.zmqshell import ZMQInteractiveShell
        from ipyparallel.datapub import publish_data

        if not ZMQInteractiveShell.initialized():
            return  # not in an engine: publish_data would build a whole IPython shell here
        publish_data(data)
    except Exception:  # not running inside an engine (unit tests, `drqueue run-task`)
        pass


class _Output:
    """Copies a render's output to the log file, splits lines on \\n and \\r, parses progress.

    It reads the pipe without blocking whenever the wait loop's poll says there is output, so a
    task needs no thread of its own.
    """

    def __init__(self, fd: int, log, renderer: Renderer, progress: _Progress):
        self.fd = fd
        self.log = log
        self.renderer = renderer
        self.progress = progress
        self.pending = b""
        self.write_error: str | None = None
        os.set_blocking(fd, False)

    def read(self) -> bool:
        """Take what the pipe holds now; False once the render closed its end."""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                chunk = b""
            if not chunk:
                self.finish()
                return False
            self._take(chunk)

    def _take(self, chunk: bytes) -> None:
        if self.write_error is None:
            try:
                self.log.write(chunk)
            except OSError as exc:
                self.write_error = f"cannot write the task log: {exc.strerror or exc}"
        pending = self.pending + chunk
        *lines, self.pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        for raw in lines:
            self.progress.feed(raw.decode("utf-8", "replace"), self.renderer)

    def finish(self) -> None:
        if self.pending:
            self.progress.feed(self.pending.decode("utf-8", "replace"), self.renderer)
            self.pending = b""


class _Progress:
    """Progress of one task over its frames, from the renderer's parsed lines (one thread: the
    runner's wait loop both feeds and reads it)."""

    def __init__(self, frames: list[int]):
        self.frames = frames
        self.done: set[int] = set()
        self.current_fraction = 0.0
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.errors: list[str] = []
        self.saved: list[str] = []

    def feed(self, line: str, renderer: Renderer) -> None:
        if not line.strip():
            return
        self.tail.append(line[:500])
        try:
            info = renderer.parse_line(line)
        except Exception:  # a parser must never kill a render
            info = None
        if info is None:
            return
        if info.frame_fraction is not None:
            self.current_fraction = info.frame_fraction
        if info.frame_done is not None:
            self.done.add(info.frame_done)
            self.current_fraction = 0.0
        if info.saved:
            self.saved.append(info.saved)
        if info.error:
            self.errors.append(info.error[:500])

    def fraction(self) -> float:
        total = max(1, len(self.frames))
        done = len(self.done & set(self.frames)) or len(self.done)
        return min(1.0, (min(done, total) + self.current_fraction) / total)

    def tail_text(self) -> str:
        return "\n".join(self.tail)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the render's process group, then SIGKILL whatever is left after the grace time."""
    try:
        import psutil

        descendants = psutil.Process(proc.pid).children(recursive=True)
    except Exception:
        descendants = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        for child in descendants:  # children that left the group (setsid) still go
            with contextlib.suppress(Exception):
                child.send_signal(sig)
        deadline = time.monotonic() + (KILL_GRACE_SECONDS if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline:
            if proc.poll() is not None and not any(_alive(c) for c in descendants):
                return
            time.sleep(0.05)


def _alive(process) -> bool:
    try:
        return process.is_running() and process.status() != "zombie"
    except Exception:
        return False


_DEVNULL: int | None = None


def _devnull() -> int:
    """/dev/null, opened once per engine for every render's stdin (an open per task is not free)."""
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    return _DEVNULL


def _missing_outputs(expected: list[str]) -> str | None:
    for path in expected:
        try:
            if os.path.getsize(path) > 0:
                continue
            return f"output {path} is empty"
        except OSError:
            return f"output {path} was not written"
    return None


def run_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one task; always returns a result dict (never raises for a render's failure)."""
    started = time.time()
    result: dict[str, Any] = {
        "attempt_id": spec["attempt_id"],
        "task_id": spec["task_id"],
        "status": "failed",
        "exit_code": None,
        "started_at": started,
        "ended_at": None,
        "peak_rss_kb": 0,
        "cpu_seconds": 0.0,
        "tail": "",
        "reason": None,
        "outputs": [],
        "log_path": spec["log_path"],
        "computer": slave_name(),
    }
    try:
        return _run(spec, result)
    finally:
        result["ended_at"] = time.time()


def _prepare(spec: dict[str, Any]) -> tuple[Renderer, RenderContext]:
    renderer_cls = get_renderer(spec["renderer"])
    scene = spec.get("scene")
    params = dict(spec.get("params") or {})
    rules = spec.get("path_map") or []
    if rules:
        from drqueue.pathmap import map_params

        scene, params = map_params(renderer_cls, params, scene, rules, host_os())
    block = FrameBlock(spec["task_start"], spec["task_end"], spec["step"])
    ctx = RenderContext(
        block=block,
        scene=scene,
        params=params,
        padding=int(spec.get("padding", 4)),
        job_frames=FrameBlock(spec["start"], spec["end"], spec["step"]),
        job={"id": spec["job_id"], "name": spec["job_name"]},
    )
    return renderer_cls(), ctx


def _run(spec: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    try:
        renderer, ctx = _prepare(spec)
        commands = renderer.commands(ctx)
        expected = renderer.outputs(ctx)
    except Exception as exc:
        result["reason"] = f"cannot build the command: {exc}"
        return result
    log_path = spec["log_path"]
    for folder in {os.path.dirname(path) for path in expected if os.path.dirname(path)}:
        try:
            os.makedirs(folder, exist_ok=True)  # POV-Ray and ffmpeg do not create them
        except OSError as exc:
            result["reason"] = f"cannot create the output folder {folder}: {exc.strerror or exc}"
            return result
    try:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        # Unbuffered: a full disk fails a write, never close().
        log = open(log_path, "ab", buffering=0)
    except OSError as exc:
        result["reason"] = f"cannot write the task log {log_path}: {exc.strerror or exc}"
        return result
    progress = _Progress(ctx.block.frames)
    deadline = time.monotonic() + spec["timeout"] if spec.get("timeout") else None
    cwd = (
        os.path.dirname(ctx.scene)
        if ctx.scene and os.path.isdir(os.path.dirname(ctx.scene))
        else None
    )
    with log:
        header = f"# drqueue: job {spec['job_id']} task {spec['task_index']} on {result['computer']} at {time.ctime()}\n"
        try:
            log.write(header.encode())
        except OSError as exc:
            result["reason"] = f"cannot write the task log {log_path}: {exc.strerror or exc}"
            return result
        for index, argv in enumerate(commands):
            frame = renderer.frame_of_command(ctx, index) if len(commands) > 1 else ctx.block.start
            env = render_environment(spec, frame, ctx.scene)
            try:
                log.write(f"# command: {argv!r}\n".encode())
            except OSError as exc:
                result["reason"] = f"cannot write the task log {log_path}: {exc.strerror or exc}"
                return result
            try:
                proc = subprocess.Popen(
                    argv,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=_devnull(),
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                result["reason"] = (
                    f"cannot start {argv[0]!r} on {result['computer']}: {exc.strerror or exc}"
                )
                return result
            output = _Output(proc.stdout.fileno(), log, renderer, progress)
            try:
                status = _wait(proc, output, deadline, result)
            finally:
                proc.stdout.close()
            result["tail"] = progress.tail_text()
            if status == "killed":
                result["status"] = "killed"
                result["reason"] = "killed"
                return result
            if status == "timeout":
                result["reason"] = f"timed out after {spec['timeout']:g} s"
                return result
            if output.write_error:
                result["reason"] = output.write_error
                return result
            result["exit_code"] = proc.returncode
            if proc.returncode != 0:
                why = (
                    progress.errors[-1]
                    if progress.errors
                    else progress.tail_text().splitlines()[-1:] or [""]
                )
                why = why if isinstance(why, str) else why[0]
                result["reason"] = f"exit code {proc.returncode}" + (f": {why}" if why else "")
                return result
        missing = _missing_outputs(expected)
        if missing:
            result["reason"] = missing
            return result
        if progress.errors and not expected:
            pass  # renderers print recoverable errors; the exit code and outputs decide
        result["status"] = "finished"
        result["outputs"] = expected or progress.saved
        return result


def _wait(
    proc: subprocess.Popen, output: _Output, deadline: float | None, result: dict[str, Any]
) -> str:
    """Wait for the render, logging its output and publishing progress.

    Returns "exited", "timeout" or "killed".  On Linux it polls a pidfd beside the output pipe,
    so the render's end is seen at once; elsewhere it polls the pipe in short steps that grow
    with the task's age.  Output still arriving after the render exited (from a child it left
    behind) is taken as far as the pipe holds it, without waiting for that child.
    """
    progress = output.progress
    started = last_publish = time.monotonic()  # short tasks finish before their first publish
    poller = select.poll()
    poller.register(output.fd, select.POLLIN)
    reading = True
    try:
        pidfd = os.pidfd_open(proc.pid)
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pidfd = None
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                result["peak_rss_kb"] = max(result["peak_rss_kb"], usage.ru_maxrss)
                result["cpu_seconds"] += usage.ru_utime + usage.ru_stime
                if reading:
                    output.read()
                output.finish()
                return "exited"
            now = time.monotonic()
            if deadline is not None and now > deadline:
                _kill_group(proc)
                return "timeout"
            if now - last_publish >= PUBLISH_INTERVAL:
                last_publish = now
                _publish(
                    {
                        "attempt_id": result["attempt_id"],
                        "progress": progress.fraction(),
                        "tail": progress.tail_text()[-2000:],
                    }
                )
            timeout = last_publish + PUBLISH_INTERVAL - now
            if deadline is not None:
                timeout = min(timeout, deadline - now)
            if pidfd is None:
                age = now - started  # nothing tells the exit: look for it often at first
                timeout = min(timeout, 0.002 if age < 0.1 else 0.01 if age < 1.0 else 0.05)
            for fd, _event in poller.poll(max(1, int(max(0.001, timeout) * 1000))):
                if fd == output.fd and reading and not output.read():
                    reading = False
                    poller.unregister(output.fd)
    except KeyboardInterrupt:
        # The master's kill: Client.send_signal(SIGINT) to this engine.
        _kill_group(proc)
        return "killed"
    finally:
        if pidfd is not None:
            os.close(pidfd)
