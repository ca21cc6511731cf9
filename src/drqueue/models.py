"""Jobs, tasks, computers and pools: the data DrQueue keeps, and the rules on it.

This module is the one place that says how a job is split into tasks
(:func:`split_frames`), which task states exist and which transitions between
them are legal (:data:`TRANSITIONS`), and how a job's state is derived from its
tasks (:func:`job_status`).  It depends on nothing else of DrQueue's, so the
store, the dispatcher, the API and the CLI all share one definition.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from drqueue.errors import InvalidJob

#: The largest number of frames one job may hold (a guard against typos like -e 1e9).
MAX_FRAMES = 10_000_000

#: Job names: anything printable, but not absurdly long.
MAX_NAME_LENGTH = 200

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TaskState(enum.StrEnum):
    """Where a task is in its life; see ARCHITECTURE.md, "A task's life"."""

    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"  # transient: a failed attempt that will be retried
    ERROR = "error"
    CANCELLED = "cancelled"


#: States in which a task occupies an engine.
ACTIVE_STATES = frozenset({TaskState.DISPATCHED, TaskState.RUNNING})
#: States a task never leaves unless a user asks (rerun, requeue).
TERMINAL_STATES = frozenset({TaskState.FINISHED, TaskState.ERROR, TaskState.CANCELLED})

#: Every legal transition.  Users may also send any task back to QUEUED
#: (rerun, requeue), which :func:`check_transition` allows explicitly.
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.DISPATCHED, TaskState.CANCELLED, TaskState.ERROR}),
    TaskState.DISPATCHED: frozenset(
        {
            TaskState.RUNNING,
            TaskState.FINISHED,
            TaskState.FAILED,
            TaskState.QUEUED,
            TaskState.ERROR,
            TaskState.CANCELLED,
        }
    ),
    TaskState.RUNNING: frozenset(
        {
            TaskState.FINISHED,
            TaskState.FAILED,
            TaskState.QUEUED,
            TaskState.ERROR,
            TaskState.CANCELLED,
        }
    ),
    TaskState.FAILED: frozenset({TaskState.QUEUED, TaskState.ERROR, TaskState.CANCELLED}),
    TaskState.FINISHED: frozenset({TaskState.QUEUED}),
    TaskState.ERROR: frozenset({TaskState.QUEUED, TaskState.CANCELLED}),
    TaskState.CANCELLED: frozenset({TaskState.QUEUED}),
}


def check_transition(old: TaskState, new: TaskState) -> None:
    """Raise ValueError unless a task may go from *old* to *new*."""
    if new not in TRANSITIONS[old]:
        raise ValueError(f"illegal task transition {old} -> {new}")


class JobControl(enum.StrEnum):
    """What the user asked of a job; the job's status is derived from this and its tasks."""

    ACTIVE = "active"
    STOPPED = "stopped"  # no new tasks; running ones finish


@dataclass(frozen=True, slots=True)
class FrameBlock:
    """The frames one task renders: start to end inclusive, by step."""

    start: int
    end: int
    step: int = 1

    @property
    def frames(self) -> list[int]:
        return list(range(self.start, self.end + 1, self.step))

    def __len__(self) -> int:
        return (self.end - self.start) // self.step + 1


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a large list of new objects is built at once.

    Every 700 new objects start a collection that re-scans the young ones (and, every few
    rounds, the whole heap): with it on, a million FrameBlocks took 1.7 times as long, and
    GET /jobs of 10,000 jobs 1.6 times (docs/performance.md).  Only for objects that make no
    reference cycles.  The GC is switched back on at the end only if it was on: another
    thread may be inside one too.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def split_frames(start: int, end: int, step: int = 1, frames_per_task: int = 1) -> list[FrameBlock]:
    """Split the frames start..end (inclusive, by step) into blocks of frames_per_task frames.

    >>> split_frames(1, 5, 1, 2)
    [FrameBlock(start=1, end=2, step=1), FrameBlock(start=3, end=4, step=1), FrameBlock(start=5, end=5, step=1)]
    >>> split_frames(-3, 3, 3, 1)
    [FrameBlock(start=-3, end=-3, step=3), FrameBlock(start=0, end=0, step=3), FrameBlock(start=3, end=3, step=3)]
    """
    if end < start:
        raise InvalidJob(f"end frame {end} is before start frame {start}")
    if step < 1:
        raise InvalidJob(f"step must be at least 1, not {step}")
    if frames_per_task < 1:
        raise InvalidJob(f"block size must be at least 1, not {frames_per_task}")
    count = (end - start) // step + 1
    if count > MAX_FRAMES:
        raise InvalidJob(f"{count} frames is more than the {MAX_FRAMES} one job may hold")
    stride = step * frames_per_task
    whole = count // frames_per_task  # blocks of exactly frames_per_task frames
    with gc_paused():  # a million FrameBlocks hold only ints: no cycle to miss
        blocks = [
            FrameBlock(first, first + stride - step, step)
            for first in range(start, start + whole * stride, stride)
        ]
        if count % frames_per_task:
            blocks.append(FrameBlock(start + whole * stride, start + (count - 1) * step, step))
    return blocks


def parse_env(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Turn ["K=V", ...] into a dict; a malformed pair is an InvalidJob."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise InvalidJob(
                f"--env wants NAME=VALUE with NAME a valid variable name, not {pair!r}"
            )
        env[name] = value
    return env


@dataclass(slots=True)
class Requirements:
    """What a host must offer to run a job's tasks."""

    os: str | None = None
    min_ram_gb: float = 0.0
    min_cores: int = 0
    pools: list[str] = field(default_factory=list)
    gpus: int = 0
    hosts: list[str] = field(default_factory=list)
    exclude_hosts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "os": self.os,
            "min_ram_gb": self.min_ram_gb,
            "min_cores": self.min_cores,
            "pools": list(self.pools),
            "gpus": self.gpus,
            "hosts": list(self.hosts),
            "exclude_hosts": list(self.exclude_hosts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Requirements:
        data = data or {}
        return cls(
            os=data.get("os"),
            min_ram_gb=float(data.get("min_ram_gb") or 0),
            min_cores=int(data.get("min_cores") or 0),
            pools=list(data.get("pools") or []),
            gpus=int(data.get("gpus") or 0),
            hosts=list(data.get("hosts") or []),
            exclude_hosts=list(data.get("exclude_hosts") or []),
        )


@dataclass(slots=True)
class JobSpec:
    """A job as submitted, before it has an id.  Validated by :meth:`validate`."""

    renderer: str
    start: int
    end: int
    name: str = ""
    owner: str = ""
    scene: str | None = None
    step: int = 1
    block_size: int = 1
    priority: int = 50
    retries: int = 3
    timeout: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    requirements: Requirements = field(default_factory=Requirements)
    after: list[int] = field(default_factory=list)
    max_parallel: int | None = None
    notify: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise InvalidJob with a one-line reason if the spec is not runnable."""
        if len(self.name) > MAX_NAME_LENGTH:
            raise InvalidJob(f"job name is longer than {MAX_NAME_LENGTH} characters")
        split_frames(self.start, self.end, self.step, self.block_size)
        if not 0 <= self.retries <= 100:
            raise InvalidJob(f"retries must be between 0 and 100, not {self.retries}")
        if not -1_000_000 <= self.priority <= 1_000_000:
            raise InvalidJob(f"priority must be between -1000000 and 1000000, not {self.priority}")
        if self.timeout is not None and not 0 < self.timeout <= 30 * 86400:
            raise InvalidJob(
                f"timeout must be between 0 and 30 days in seconds, not {self.timeout}"
            )
        if self.max_parallel is not None and self.max_parallel < 1:
            raise InvalidJob(f"max-parallel must be at least 1, not {self.max_parallel}")
        for name in self.env:
            if not _ENV_NAME.match(name):
                raise InvalidJob(f"environment variable name {name!r} is not valid")
        req = self.requirements
        if req.os is not None and req.os not in ("linux", "windows", "darwin"):
            raise InvalidJob(f"--os must be linux, windows or darwin, not {req.os!r}")
        if req.min_ram_gb < 0:
            raise InvalidJob(f"--min-ram must not be negative, not {req.min_ram_gb}")
        if req.min_cores < 0:
            raise InvalidJob(f"--min-cores must not be negative, not {req.min_cores}")
        if req.gpus < 0:
            raise InvalidJob(f"--gpus must not be negative, not {req.gpus}")


@dataclass(slots=True)
class Counts:
    """How many of a job's tasks are in each state."""

    total: int = 0
    queued: int = 0
    running: int = 0  # dispatched or running
    finished: int = 0
    error: int = 0
    cancelled: int = 0


def job_status(
    control: JobControl | str, counts: Counts, waiting_for: list[int] | None = None
) -> str:
    """A job's status, derived from its tasks and what the user asked.

    finished   every task finished
    error      every task ended, at least one in error
    cancelled  every task ended, some cancelled and none in error
    running    at least one task on an engine
    stopping   stopped by the user, tasks still running
    stopped    stopped by the user, nothing running
    waiting    waits for the jobs it depends on
    queued     otherwise
    """
    ended = counts.finished + counts.error + counts.cancelled
    if counts.total and ended == counts.total:
        if counts.error:
            return "error"
        if counts.cancelled:
            return "cancelled"
        return "finished"
    if control == JobControl.STOPPED:
        return "stopping" if counts.running else "stopped"
    if counts.running:
        return "running"
    if waiting_for:
        return "waiting"
    return "queued"


def dependency_dead_end(status: str | None) -> str | None:
    """Why a dependency in *status* (None: deleted) cannot finish without a user's action.

    None while it may still finish.  A job waiting for such a dependency is *stalled*: it keeps
    waiting (a requeue or continue of the dependency lets it go on), its waiting reason says
    why, and ``drqueue submit --wait`` reports it and exits 1.  A dependency that is itself
    stalled is a dead end too; its callers follow that chain.
    """
    if status is None:
        return "deleted: it will never finish"
    if status in ("error", "cancelled"):
        return f"ended in {status}: requeue its tasks to go on"
    if status == "stopped":
        return "stopped: continue it to go on"
    return None


def pad_frame(frame: int, padding: int) -> str:
    """Frame number zero-padded to *padding* digits; negative frames keep their sign first."""
    if frame < 0:
        return "-" + str(-frame).zfill(padding)
    return str(frame).zfill(padding)


@dataclass(slots=True)
class Job:
    """A stored job: its spec, id, what the user asked of it, and its task counts."""

    id: int
    spec: JobSpec
    control: JobControl
    counts: Counts
    submitted_at: float
    finished_at: float | None = None
    #: Sum of the run times of its finished tasks, and their number (for the ETA).
    task_seconds: float = 0.0
    timed_tasks: int = 0
    waiting_for: list[int] = field(default_factory=list)
    #: Why its queued tasks are not running, when the dispatcher knows ("no slave in pool 'gpu'").
    waiting_reason: str | None = None
    blocked_hosts: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return job_status(self.control, self.counts, self.waiting_for)

    def eta_seconds(self, slots: int) -> float | None:
        """Seconds until the job ends, from its mean task time and the slots it can use."""
        remaining = self.counts.queued + self.counts.running
        if not remaining:
            return 0.0
        if not self.timed_tasks or slots < 1:
            return None
        mean = self.task_seconds / self.timed_tasks
        parallel = max(1, min(slots, self.spec.max_parallel or slots))
        return mean * -(-remaining // parallel)


@dataclass(slots=True)
class Task:
    """One block of a job's frames and everything known of its runs."""

    id: int
    job_id: int
    index: int
    block: FrameBlock
    state: TaskState
    attempts: int = 0
    failures: int = 0
    lost: int = 0
    computer: str | None = None
    engine_id: int | None = None
    attempt_id: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    peak_rss_kb: int | None = None
    cpu_seconds: float | None = None
    progress: float = 0.0
    log_path: str | None = None
    tail: str = ""
    reason: str | None = None
    outputs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Computer:
    """A slave as the master knows it; *name* is the slave's name (hostname by default)."""

    name: str
    hostname: str = ""
    os: str = ""
    arch: str = ""
    cores: int = 0
    ram_mb: int = 0
    free_ram_mb: int = 0
    load: float = 0.0
    gpus: int = 0
    pools: list[str] = field(default_factory=list)
    renderers: list[str] = field(default_factory=list)
    enabled: bool = True
    max_tasks: int | None = None
    slots: int = 0
    last_seen: float | None = None
    info_at: float | None = None
