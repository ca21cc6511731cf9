"""The task runner: what an engine executes for one task.

The master calls :func:`run_task` on one engine with a plain-dict task spec
(see :func:`drqueue.master.dispatcher.task_spec`).  The runner builds the
renderer's commands, runs each as an argument list in its own process group
with the ``DRQUEUE_*`` environment, writes the full output to the task's log
file, publishes progress and a short log tail while it runs
(``ipyparallel.datapub``), and returns a plain-dict result.

Failure rules: a non-zero exit, a time-out, an error line the renderer calls fatal
(``LineInfo.fatal``, even on exit code 0), or an expected output file that is missing or empty
makes the task *failed*; its reason carries the renderer's own last error line.  A SIGINT from
the master (a kill) stops the whole process group (SIGTERM, then SIGKILL) and the task returns
*killed*; no render process outlives its task, however it ends (:func:`_stop_leftovers`).  A task
whose log cannot be created or written
fails with ``infrastructure`` set in its result: the logs folder is at fault, not the host (see
:func:`open_task_log` for how the log is made safe from other renders).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import platform
import queue
import select
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from drqueue.failures import (
    BUILT_IN_RULES,
    LINES_MATCHED,
    Classification,
    FailureRule,
    FailureRuleError,
    classify,
    parse_rules,
)
from drqueue.models import (
    MAX_OUTPUT_PATH_CHARS,
    MAX_OUTPUTS,
    FrameBlock,
    bounded_outputs,
    pad_frame,
)
from drqueue.procs import (
    become_subreaper,
    child_pids,
    gpu_environment,
    make_undumpable,
    new_process_group,
    stop_process_tree,
)
from drqueue.renderers import RenderContext, Renderer, get_renderer

#: Seconds between SIGTERM and SIGKILL when a render is stopped.
KILL_GRACE_SECONDS = 5.0
#: Seconds between progress publications to the master.
PUBLISH_INTERVAL = 0.5
#: Lines of output kept for the tail sent back to the master.
TAIL_LINES = 30
#: Set to 1 to run renders through the portable path on Linux too (CI tests both paths); on
#: every other OS it is the only path.
PORTABLE_RUNNER_VARIABLE = "DRQUEUE_PORTABLE_RUNNER"
#: Seconds the portable path waits for a render's last output once it has exited (a child it
#: left behind may hold the pipe open: its output is not waited for).
LAST_OUTPUT_SECONDS = 1.0
#: Longest line of output parsed, in bytes: the rest of a longer line is logged but not parsed.
MAX_LINE_BYTES = 64 * 1024
#: Appended to a line cut at MAX_LINE_BYTES.
LINE_CUT_MARK = " [drqueue: line cut at 64 KiB]"


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
        env.update(gpu_environment([gpu]))  # one GPU slot, one device
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


def _publish_progress(attempt_id: str, progress: _Progress) -> None:
    _publish(
        {
            "attempt_id": attempt_id,
            "progress": progress.fraction(),
            "tail": progress.tail_text()[-2000:],
        }
    )


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

    On Linux it reads the pipe without blocking whenever the wait loop's poll says there is
    output, so a task needs no thread of its own; the portable path's reader thread hands it the
    chunks instead (:meth:`take`), and the wait loop's thread alone feeds it.
    """

    def __init__(self, fd: int | None, log, renderer: Renderer, progress: _Progress):
        self.fd = fd  # None on the portable path: a reader thread hands over the chunks (take)
        self.log = log
        self.renderer = renderer
        self.progress = progress
        #: The line not yet ended (at most MAX_LINE_BYTES), and whether it was cut there.
        self.pending = bytearray()
        self.cut = False
        self.write_error: str | None = None
        if fd is not None:
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
            self.take(chunk)

    def take(self, chunk: bytes) -> None:
        """Log a chunk of output and parse the lines it completes.

        Only the line not yet ended is kept (at most MAX_LINE_BYTES of it), so a render that
        prints without a newline costs time in proportion to what it prints, and no memory.
        """
        if self.write_error is None:
            try:
                self.log.write(chunk)
            except OSError as exc:
                self.write_error = f"cannot write the task log: {exc.strerror or exc}"
        *ended, rest = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        for part in ended:
            self._extend(part)
            self._end_line()
        self._extend(rest)

    def _extend(self, part: bytes) -> None:
        if self.cut:
            return  # the line is already at its longest: the rest is only logged
        room = MAX_LINE_BYTES - len(self.pending)
        if len(part) > room:
            part, self.cut = part[:room], True
        self.pending += part

    def _end_line(self) -> None:
        line = self.pending.decode("utf-8", "replace") + (LINE_CUT_MARK if self.cut else "")
        self.pending.clear()
        self.cut = False
        self.progress.feed(line, self.renderer)

    def finish(self) -> None:
        if self.pending or self.cut:
            self._end_line()


class _Progress:
    """Progress of one task over its frames, from the renderer's parsed lines (one thread: the
    runner's wait loop both feeds and reads it)."""

    def __init__(self, frames: list[int]):
        self.frames = frames
        self.done: set[int] = set()
        self.current_fraction = 0.0
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.errors: list[str] = []
        #: Error lines that fail the task even on exit code 0 (LineInfo.fatal).
        self.fatal: list[str] = []
        #: The last MAX_OUTPUTS files the renderer said it saved (none longer than
        #: MAX_OUTPUT_PATH_CHARS).
        self.saved: collections.deque[str] = collections.deque(maxlen=MAX_OUTPUTS)

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
        if info.saved and len(info.saved) <= MAX_OUTPUT_PATH_CHARS:
            self.saved.append(info.saved)
        if info.error:
            self.errors.append(info.error[:500])
            if info.fatal:
                self.fatal.append(info.error[:500])

    def fraction(self) -> float:
        total = max(1, len(self.frames))
        done = len(self.done & set(self.frames)) or len(self.done)
        return min(1.0, (min(done, total) + self.current_fraction) / total)

    def tail_text(self) -> str:
        return "\n".join(self.tail)

    def explained(self, reason: str, renderer: Renderer) -> str:
        """*reason*, with the renderer's own last error line when it printed one."""
        if not self.errors or self.errors[-1] in reason:
            return reason
        return f"{reason}; {renderer.name} reported: {self.errors[-1]}"


def _stop_leftovers(children_before: set[int], leader: int | None = None) -> None:
    """Stop whatever a render left behind once its main process has ended (a normal exit too).

    That is the rest of its process group and session (*leader*'s, passed while the leader is
    exited but not yet reaped, so its id cannot have been reused meanwhile), and this engine's
    children that were not there before the render (on Linux the engine is a subreaper, so the
    render's orphans, ``setsid`` and double-forked ones included, become its children).

    On a subreaper engine a render that left nothing behind is told at once: every member of
    its session is its descendant (a session is joined only by being born into it), and each
    descendant still alive has an ancestor among this engine's new children (the render's
    orphans are reparented here when it exits).  No new child but the leader: nothing is
    left, and no process on the machine needs to be looked at (that look cost each task
    ~5 ms on a shared machine).
    """
    leftovers = [pid for pid in child_pids() if pid not in children_before and pid != leader]
    if not leftovers and leader is not None and _SUBREAPER:
        return
    groups = (leader,) if leader is not None and hasattr(os, "getpgid") else ()
    stop_process_tree(*leftovers, groups=groups, timeout=KILL_GRACE_SECONDS)


_HARDENED = False
#: Whether this engine is its renders' subreaper (Linux), so :func:`_stop_leftovers` may trust
#: its own children to tell what a render left behind.
_SUBREAPER = False


def _harden_engine() -> None:
    """Once per engine: no render (a child of the same user) may read the engine's memory or
    environment, and the render's orphans become the engine's children (Linux; see
    drqueue.procs)."""
    global _HARDENED, _SUBREAPER
    if not _HARDENED:
        _HARDENED = True
        make_undumpable()
        _SUBREAPER = become_subreaper()


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the render's main process has exited, without reaping it where POSIX allows
    (waitid WNOWAIT): its id, its group's and its session's stay its own until it is reaped."""
    if hasattr(os, "waitid") and hasattr(os, "WNOWAIT"):
        try:
            flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
            return os.waitid(os.P_PID, proc.pid, flags) is not None
        except ChildProcessError:
            return proc.poll() is not None  # already reaped: the Popen knows how it ended
    return proc.poll() is not None


def _stop_render(proc: subprocess.Popen) -> None:
    """Stop the render's whole tree: SIGTERM, then SIGKILL whatever is left after the grace."""
    stop_process_tree(proc.pid, timeout=KILL_GRACE_SECONDS)
    proc.poll()  # reaped by the above: let the Popen know


def portable_runner() -> bool:
    """Whether renders run through the portable path (subprocess, a reader thread, psutil)
    rather than Linux's (pidfd, poll, wait4): everywhere but Linux, or when
    DRQUEUE_PORTABLE_RUNNER=1."""
    if os.environ.get(PORTABLE_RUNNER_VARIABLE, "").strip().lower() in ("1", "true", "yes"):
        return True
    return not (
        sys.platform.startswith("linux") and hasattr(os, "wait4") and hasattr(select, "poll")
    )


def _maxrss_kb(ru_maxrss: int) -> int:
    """getrusage's peak memory in KiB: macOS counts bytes, Linux and the BSDs KiB."""
    return ru_maxrss // 1024 if sys.platform == "darwin" else ru_maxrss


def _render_maxrss_kb(child_maxrss: int) -> int:
    """A reaped render's peak memory from its getrusage *child_maxrss*, in KiB, or 0 when that
    figure cannot be the render's own.

    Linux records, when a process calls exec, the peak of the memory it had before: for a
    render forked (or vforked) from this engine, the engine's own.  So a render that never grew
    past the engine's size reports the engine's peak (every task once showed 80 MiB, an
    ``exit 3`` included).  Only a peak above this process's own is the render's; below it, the
    tree's samples (:class:`_TreeUsage`) are what is known."""
    try:
        import resource
    except ImportError:
        return _maxrss_kb(child_maxrss)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _maxrss_kb(child_maxrss) if child_maxrss > own else 0


_DEVNULL: int | None = None


def _devnull() -> int:
    """/dev/null, opened once per engine for every render's stdin (an open per task is not free)."""
    global _DEVNULL
    if _DEVNULL is None:
        _DEVNULL = os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    return _DEVNULL


class LogUnavailable(Exception):
    """The task's log cannot be created safely or written: the logs folder's fault, not the
    host's (the result says ``infrastructure``)."""


_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def _describe(path: str) -> str:
    """What sits at *path*, in words, for a reason a wrangler reads."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "missing"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a file" if stat.S_ISREG(mode) else "a special file"


#: Times a job's log folder is replaced when something else keeps appearing in its place.
LOG_FOLDER_TRIES = 5


def open_task_log(log_path: str) -> Any:
    """Create this attempt's log, a new file in the job's log folder, never through a link.

    Renders share the slave's user, and job ids are sequential, so a render could put a link,
    a file or a FIFO where a later job's log folder goes, or a file where its log goes.  So the
    job's folder is opened without following a link (O_DIRECTORY|O_NOFOLLOW, relative to the
    logs folder); anything there that is not a folder is removed (the name, never what it
    names) and the folder made afresh.  The log is a new file (O_CREAT|O_EXCL|O_NOFOLLOW), never
    appended to: the dispatcher names it per attempt (``<task>.<attempt>.log``, the attempt id
    random), so no render can have planted it.  Returns the open file; raises
    :class:`LogUnavailable` with the reason.
    """
    folder, name = os.path.split(log_path)
    logs, job = os.path.split(folder)
    logs = logs or "."

    def unavailable(why: str) -> LogUnavailable:
        return LogUnavailable(f"cannot write the task log {log_path}: {why}")

    use_dir_fd = {os.open, os.mkdir, os.unlink} <= os.supports_dir_fd and bool(
        _O_NOFOLLOW and _O_DIRECTORY
    )
    logs_fd = None
    if use_dir_fd:
        # The logs folder exists but for a farm's first task: open it first; on any error the
        # way below makes it, or says what is wrong with it.
        with contextlib.suppress(OSError):
            logs_fd = os.open(logs, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    if logs_fd is None:
        try:
            os.makedirs(logs, exist_ok=True)
        except OSError as exc:
            if os.path.lexists(logs) and not os.path.isdir(logs):
                raise unavailable(f"the logs folder {logs} is {_describe(logs)}") from None
            raise unavailable(exc.strerror or str(exc)) from None
    try:
        if use_dir_fd and logs_fd is None:
            logs_fd = os.open(logs, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        dir_fd = _job_log_folder(logs, job, logs_fd, unavailable)
    except OSError as exc:
        raise unavailable(exc.strerror or str(exc)) from None
    finally:
        if logs_fd is not None:
            os.close(logs_fd)
    create = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
    try:
        if dir_fd is not None:
            fd = os.open(name, create, 0o666, dir_fd=dir_fd)
        else:  # Windows: no dir_fd; O_EXCL alone keeps the name from being a planted file
            fd = os.open(log_path, create, 0o666)
    except FileExistsError:
        raise unavailable(
            f"it exists already, as {_describe(log_path)} (did a render put it there?)"
        ) from None
    except OSError as exc:
        raise unavailable(exc.strerror or str(exc)) from None
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    # Unbuffered: a full disk fails a write, never close().
    return os.fdopen(fd, "ab", buffering=0)


def _job_log_folder(logs: str, job: str, logs_fd: int | None, unavailable) -> int | None:
    """The job's log folder *job* in *logs*, a real folder of this user's, open (None where
    there is no dir_fd: Windows); see open_task_log.  Raises OSError or LogUnavailable."""
    at = {"dir_fd": logs_fd} if logs_fd is not None else {}
    where = job if logs_fd is not None else os.path.join(logs, job)
    folder = os.path.join(logs, job)
    nonblock = getattr(os, "O_NONBLOCK", 0)
    for _ in range(LOG_FOLDER_TRIES):
        with contextlib.suppress(FileExistsError):
            os.mkdir(where, **at)
        try:
            if logs_fd is not None:
                fd = os.open(
                    where, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC | nonblock, **at
                )
                info = os.fstat(fd)
            else:
                fd, info = None, os.lstat(where)
        except FileNotFoundError:
            continue  # removed meanwhile: make it again
        except OSError as exc:  # a link (ELOOP), a file or a FIFO (ENOTDIR)... or a folder
            fd, info = None, None
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISDIR(os.stat(where, follow_symlinks=False, **at).st_mode):
                    raise unavailable(exc.strerror or str(exc)) from None
        if info is not None and stat.S_ISDIR(info.st_mode):
            if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
                if fd is not None:
                    os.close(fd)
                raise unavailable(
                    f"its folder {folder} belongs to another user (uid {info.st_uid})"
                )
            return fd
        # Not a folder: a render put it there.  The name goes, never what it names.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(where, **at)
    raise unavailable(
        f"its folder {folder} is {_describe(folder)}, not a folder, and something put it back each"
        f" of the {LOG_FOLDER_TRIES} times it was removed"
    )


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
    _harden_engine()
    started = time.time()
    clock = time.monotonic()
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
        #: True when the task failed for want of its log (the logs folder's fault, not the
        #: host's or the job's): the dispatcher must not count it against the host.
        "infrastructure": False,
        #: How long the task ran, by the slave's monotonic clock: never negative, whatever its
        #: wall clock does (started_at and ended_at are wall times, for display).
        "seconds": 0.0,
    }
    facts = _FailureFacts()
    try:
        return _run(spec, result, facts)
    finally:
        result["ended_at"] = time.time()
        result["seconds"] = time.monotonic() - clock
        if result["status"] == "failed" and not result["infrastructure"]:
            found = _classify(spec, result, facts)
            result["failure_class"] = found.failure_class.value
            result["failure_detail"] = found.detail


class _FailureFacts:
    """What the runner learnt of a failure beyond its result, for :func:`_classify`."""

    def __init__(self) -> None:
        self.renderer_rules: tuple[FailureRule, ...] = ()
        self.timed_out = False
        self.output_missing: str | None = None
        self.oom_kills_before = 0
        self.oom_killed = False


#: The farm's failure_rules as last parsed, by their tables' repr (one parse per engine).
_FARM_RULES: tuple[str, tuple[FailureRule, ...]] = ("", ())


def _farm_rules(tables: Any) -> tuple[FailureRule, ...]:
    """The farm's rules sent with the task (``failure_rules``: the master checked them at its
    start; a rule that does not compile here is left out, never fails the task)."""
    global _FARM_RULES
    key = repr(tables)
    if key != _FARM_RULES[0]:
        try:
            rules = parse_rules(tables or [])
        except FailureRuleError:
            rules = ()
        _FARM_RULES = (key, rules)
    return _FARM_RULES[1]


def _classify(spec: dict[str, Any], result: dict[str, Any], facts: _FailureFacts) -> Classification:
    """The failed attempt's class (drqueue.failures.classify): from the tail of its log (at
    most TAIL_LINES lines, each cut at 500 characters: a render that writes gigabytes or one
    enormous line costs no more), how it ended, and its peak memory against its limit."""
    lines = [line for line in str(result.get("tail") or "").splitlines() if line.strip()]
    if result.get("reason"):  # matched last: a line of the render's own is the better detail
        lines = [str(result["reason"])[:1000], *lines[-(LINES_MATCHED - 1) :]]
    rules = (*_farm_rules(spec.get("failure_rules")), *facts.renderer_rules, *BUILT_IN_RULES)
    return classify(
        lines=lines,
        rules=rules,
        exit_code=result.get("exit_code"),
        timed_out=facts.timed_out,
        output_missing=facts.output_missing,
        peak_rss_kb=int(result.get("peak_rss_kb") or 0),
        memory_limit_kb=_memory_limit_kb(),
        oom_killed=facts.oom_killed,
    )


def _memory_limit_kb() -> int | None:
    """The most memory a render may use here, in KiB: the smallest of the address-space limit
    (RLIMIT_AS, inherited from the engine), the memory cgroup's ``memory.max`` and the host's
    RAM."""
    limits = []
    with contextlib.suppress(Exception):
        limits.append(psutil.virtual_memory().total // 1024)
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(soft // 1024)
    cgroup = _cgroup_dir()
    if cgroup:
        with contextlib.suppress(OSError, ValueError), open(f"{cgroup}/memory.max") as src:
            value = src.read().strip()
            if value != "max":
                limits.append(int(value) // 1024)
    return min(limits) if limits else None


def _cgroup_dir() -> str | None:
    """This process's cgroup (v2) folder, or None where there is none to read."""
    try:
        with open("/proc/self/cgroup") as src:
            for line in src:
                if line.startswith("0::"):
                    return "/sys/fs/cgroup" + line[3:].strip()
    except OSError:
        pass
    return None


def _cgroup_oom_kills() -> int:
    """The kernel's count of OOM kills in this engine's memory cgroup (0 where unknown): a
    render SIGKILLed while it grew is the kernel's OOM kill."""
    cgroup = _cgroup_dir()
    if not cgroup:
        return 0
    with contextlib.suppress(OSError, ValueError), open(f"{cgroup}/memory.events") as src:
        for line in src:
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    return 0


def run_task_json(spec: str) -> str:
    """:func:`run_task` for the dispatcher: the spec and the result as JSON text.

    ipyparallel cans a dict argument or result item by item, nested ones too, before it
    pickles it (0.4 ms for a task's spec on this machine, the biggest part of the master's
    cost of a send); a text it takes whole, and the json module reads and writes one in
    ~20 us.  Both are plain JSON: nothing in them is code.
    """
    return json.dumps(run_task(json.loads(spec)))


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


def _run(spec: dict[str, Any], result: dict[str, Any], facts: _FailureFacts) -> dict[str, Any]:
    try:
        renderer, ctx = _prepare(spec)
        facts.renderer_rules = type(renderer).failure_patterns
        commands = renderer.commands(ctx)
        expected = renderer.outputs(ctx)
    except Exception as exc:
        result["reason"] = f"cannot build the command: {exc}"
        return result
    for folder in {os.path.dirname(path) for path in expected if os.path.dirname(path)}:
        try:
            os.makedirs(folder, exist_ok=True)  # POV-Ray and ffmpeg do not create them
        except OSError as exc:
            result["reason"] = f"cannot create the output folder {folder}: {exc.strerror or exc}"
            return result
    log_path = spec["log_path"]
    try:
        log = open_task_log(log_path)
    except LogUnavailable as exc:
        result["reason"] = str(exc)
        result["infrastructure"] = True
        return result
    progress = _Progress(ctx.block.frames)
    deadline = time.monotonic() + spec["timeout"] if spec.get("timeout") else None
    cwd = (
        os.path.dirname(ctx.scene)
        if ctx.scene and os.path.isdir(os.path.dirname(ctx.scene))
        else None
    )
    with log:
        # The header goes out with the first command's line: one write, not two.
        header = f"# drqueue: job {spec['job_id']} task {spec['task_index']} on {result['computer']} at {time.ctime()}\n"
        for index, argv in enumerate(commands):
            frame = renderer.frame_of_command(ctx, index) if len(commands) > 1 else ctx.block.start
            env = render_environment(spec, frame, ctx.scene)
            try:
                log.write(f"{header}# command: {argv!r}\n".encode())
                header = ""
            except OSError as exc:
                result["reason"] = f"cannot write the task log {log_path}: {exc.strerror or exc}"
                result["infrastructure"] = True
                return result
            children_before = child_pids()
            facts.oom_kills_before = _cgroup_oom_kills()
            try:
                proc = subprocess.Popen(
                    argv,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=_devnull(),
                    env=env,
                    cwd=cwd,
                    **new_process_group(),
                )
            except OSError as exc:
                result["reason"] = (
                    f"cannot start {argv[0]!r} on {result['computer']}: {exc.strerror or exc}"
                )
                return result
            portable = portable_runner()
            output = _Output(None if portable else proc.stdout.fileno(), log, renderer, progress)

            def exited(proc: subprocess.Popen = proc, before: set[int] = children_before) -> None:
                _stop_leftovers(before, leader=proc.pid)

            try:
                try:
                    if portable:
                        status = _wait_portable(proc, output, deadline, result, exited)
                    else:
                        status = _wait(proc, output, deadline, result, exited)
                except KeyboardInterrupt:
                    # The master's kill: Client.send_signal(SIGINT) to this engine.  Caught here,
                    # around the whole wait, so no point of it lets the kill past the render's stop.
                    _stop_render(proc)
                    status = "killed"
                finally:
                    if not portable:
                        proc.stdout.close()  # the portable path's reader thread closes its own
                if status != "exited":  # stopped whole: the orphans it had are the engine's now
                    _stop_leftovers(children_before)
            except KeyboardInterrupt:  # the master's kill while the leftovers were stopped
                _stop_leftovers(children_before)
                status = "killed"
            result["tail"] = progress.tail_text()
            if status == "killed":
                result["status"] = "killed"
                result["reason"] = "killed"
                return result
            if status == "timeout":
                facts.timed_out = True
                result["reason"] = progress.explained(
                    f"timed out after {spec['timeout']:g} s", renderer
                )
                return result
            if output.write_error:
                result["reason"] = output.write_error
                result["infrastructure"] = True
                return result
            result["exit_code"] = proc.returncode
            if proc.returncode != 0:
                facts.oom_killed = _cgroup_oom_kills() > facts.oom_kills_before
                why = (
                    progress.errors[-1]
                    if progress.errors
                    else progress.tail_text().splitlines()[-1:] or [""]
                )
                why = why if isinstance(why, str) else why[0]
                result["reason"] = f"exit code {proc.returncode}" + (f": {why}" if why else "")
                return result
            if progress.fatal:
                # The program exited 0 but said it did not render what was asked.
                result["reason"] = f"exit code 0, but {renderer.name} reported: {progress.fatal[0]}"
                return result
        missing = _missing_outputs(expected)
        if missing:
            facts.output_missing = missing
            result["reason"] = progress.explained(missing, renderer)
            return result
        result["status"] = "finished"
        result["outputs"] = bounded_outputs(expected or list(progress.saved))
        return result


def _wait(
    proc: subprocess.Popen,
    output: _Output,
    deadline: float | None,
    result: dict[str, Any],
    exited: Callable[[], None],
) -> str:
    """Wait for the render, logging its output and publishing progress.

    Returns "exited" or "timeout"; the master's kill (KeyboardInterrupt) is the caller's to
    handle.  On Linux it polls a pidfd beside the output pipe,
    so the render's end is seen at once; elsewhere it polls the pipe in short steps that grow
    with the task's age.  Output still arriving after the render exited (from a child it left
    behind) is taken as far as the pipe holds it, without waiting for that child.
    """
    progress = output.progress
    started = last_publish = time.monotonic()  # short tasks finish before their first publish
    tree = _TreeUsage(proc.pid)
    next_sample = started + FIRST_SAMPLE_SECONDS  # after exec: before it, the engine's memory
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
            if _exited(proc):
                exited()  # before the reap: the render's group id is still its own
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                peak = max(_render_maxrss_kb(usage.ru_maxrss), tree.peak_rss_kb)
                result["peak_rss_kb"] = max(result["peak_rss_kb"], peak)
                result["cpu_seconds"] += usage.ru_utime + usage.ru_stime
                if reading:
                    output.read()
                output.finish()
                return "exited"
            now = time.monotonic()
            if deadline is not None and now > deadline:
                _stop_render(proc)
                return "timeout"
            if now - last_publish >= PUBLISH_INTERVAL:
                last_publish = now
                _publish_progress(result["attempt_id"], progress)
            if now >= next_sample:
                tree.sample()
                next_sample = now + max(0.2, _sample_interval(now - started))
            timeout = min(last_publish + PUBLISH_INTERVAL, next_sample) - now
            if deadline is not None:
                timeout = min(timeout, deadline - now)
            if pidfd is None:
                age = now - started  # nothing tells the exit: look for it often at first
                timeout = min(timeout, 0.002 if age < 0.1 else 0.01 if age < 1.0 else 0.05)
            for fd, _event in poller.poll(max(1, int(max(0.001, timeout) * 1000))):
                if fd == output.fd and reading and not output.read():
                    reading = False
                    poller.unregister(output.fd)
    finally:
        if pidfd is not None:
            os.close(pidfd)


class _TreeUsage:
    """Peak memory and CPU time of a render's process tree, for the portable path.

    Memory: the tree's summed RSS, sampled with psutil (often at first, every second later on),
    raised to getrusage's peak of the reaped children where that grew during the render (POSIX,
    so a process shorter than a sample still counts).  CPU: getrusage's children time on POSIX,
    else the tree's last sampled times.
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_rss_kb = 0
        self._cpu: dict[int, float] = {}
        self._before = _children_usage()

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        rss = 0
        for proc in procs:
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    times = proc.cpu_times()
                    self._cpu[proc.pid] = times.user + times.system
            except psutil.Error:
                pass
        self.peak_rss_kb = max(self.peak_rss_kb, rss // 1024)

    def finish(self) -> tuple[int, float]:
        """(peak RSS in KiB, CPU seconds) of the render, once it has been reaped."""
        after = _children_usage()
        if self._before is None or after is None:
            return self.peak_rss_kb, sum(self._cpu.values())
        peak = self.peak_rss_kb
        if after.ru_maxrss > self._before.ru_maxrss:
            peak = max(peak, _render_maxrss_kb(after.ru_maxrss))
        cpu = after.ru_utime + after.ru_stime - self._before.ru_utime - self._before.ru_stime
        return peak, max(0.0, cpu)


def _children_usage():
    """getrusage(RUSAGE_CHILDREN) on POSIX (one render at a time per engine, so a difference
    is one render's), None elsewhere."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_CHILDREN)


#: Seconds after a render's start of the first sample of its memory (on Linux; the portable
#: path samples from the start).  A shorter render's peak is known only if it passed the
#: engine's own (see _render_maxrss_kb).
FIRST_SAMPLE_SECONDS = 0.1


def _sample_interval(age: float) -> float:
    """Seconds between two samples of a render's tree, by the render's age."""
    return 0.05 if age < 1.0 else 0.25 if age < 10.0 else 1.0


def _wait_portable(
    proc: subprocess.Popen,
    output: _Output,
    deadline: float | None,
    result: dict[str, Any],
    exited: Callable[[], None],
) -> str:
    """:func:`_wait` for every OS: a reader thread takes the output, the Popen tells the exit,
    psutil measures the tree.  Returns "exited" or "timeout", as :func:`_wait` does."""
    chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    listening = threading.Event()
    listening.set()
    stream = proc.stdout

    def read() -> None:
        # This thread alone reads and closes the pipe: closing it under a blocked read would let
        # the read go on with a reused descriptor.
        try:
            while chunk := stream.read1(65536):
                if listening.is_set():
                    chunks.put(chunk)
        except (OSError, ValueError):
            pass
        finally:
            chunks.put(None)
            stream.close()

    threading.Thread(target=read, name=f"drqueue-render-{proc.pid}-output", daemon=True).start()
    progress = output.progress
    usage = _TreeUsage(proc.pid)
    started = last_publish = last_sample = time.monotonic()
    usage.sample()
    reading = True
    try:
        while True:
            now = time.monotonic()
            if now - last_sample >= _sample_interval(now - started):
                last_sample = now
                usage.sample()
            if _exited(proc):
                exited()  # before the reap: the render's group id is still its own
                proc.wait()
                end = time.monotonic() + LAST_OUTPUT_SECONDS
                while reading and (left := end - time.monotonic()) > 0:
                    try:
                        chunk = chunks.get(timeout=min(left, 0.1))
                    except queue.Empty:
                        break  # a child it left behind holds the pipe: do not wait for it
                    if chunk is None:
                        reading = False
                    else:
                        output.take(chunk)
                output.finish()
                peak_rss_kb, cpu_seconds = usage.finish()
                result["peak_rss_kb"] = max(result["peak_rss_kb"], peak_rss_kb)
                result["cpu_seconds"] += cpu_seconds
                return "exited"
            if deadline is not None and now > deadline:
                _stop_render(proc)
                return "timeout"
            if now - last_publish >= PUBLISH_INTERVAL:
                last_publish = now
                _publish_progress(result["attempt_id"], progress)
            timeout = min(
                last_publish + PUBLISH_INTERVAL - now,
                last_sample + _sample_interval(now - started) - now,
            )
            if deadline is not None:
                timeout = min(timeout, deadline - now)
            timeout = max(0.001, timeout)
            if reading:
                try:
                    chunk = chunks.get(timeout=timeout)
                except queue.Empty:
                    continue
                if chunk is None:
                    reading = False
                    output.finish()
                else:
                    output.take(chunk)
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)
    finally:
        listening.clear()
