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
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, overload

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from drqueue.errors import InvalidJob

#: The most frames split_frames will ever split (a hard ceiling under the farm's own
#: ``max_frames_per_job``, which the master checks at submit).
MAX_FRAMES = 10_000_000

#: Frame numbers are bounded so that no arithmetic on them can overflow the store.
FRAME_LIMIT = 1_000_000_000

#: The largest id or count SQLite's INTEGER holds: every id a request names is at most this.
MAX_ID = 2**63 - 1

#: A job's priority: higher runs first.  The one definition of its bounds.
PRIORITY_MIN = -1_000_000
PRIORITY_MAX = 1_000_000

#: Job names: anything printable, but not absurdly long.
MAX_NAME_LENGTH = 200

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Names that go into URL paths (pools, computers): letters, digits, ``.``, ``_`` and ``-``,
#: starting with a letter or digit.  No ``/ ? # %``, space or control character can need quoting.
PATH_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"

#: C0 and C1 control characters and DEL: meaningless in a path, and ANSI escapes start with one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class TaskState(enum.StrEnum):
    """Where a task is in its life; see ARCHITECTURE.md, "A task's life"."""

    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    FINISHED = "finished"
    ERROR = "error"
    CANCELLED = "cancelled"


#: States in which a task occupies an engine.
ACTIVE_STATES = frozenset({TaskState.DISPATCHED, TaskState.RUNNING})
#: States a task never leaves unless a user asks (rerun, requeue).
TERMINAL_STATES = frozenset({TaskState.FINISHED, TaskState.ERROR, TaskState.CANCELLED})

#: Every legal transition.  A user's rerun or requeue sends an ended task back to QUEUED,
#: so every ended state lists it.  The store checks each change against this table
#: (``drqueue.store.policy.move``).
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.DISPATCHED, TaskState.CANCELLED, TaskState.ERROR}),
    TaskState.DISPATCHED: frozenset(
        {
            TaskState.RUNNING,
            TaskState.FINISHED,
            TaskState.QUEUED,
            TaskState.ERROR,
            TaskState.CANCELLED,
        }
    ),
    TaskState.RUNNING: frozenset(
        {
            TaskState.FINISHED,
            TaskState.QUEUED,
            TaskState.ERROR,
            TaskState.CANCELLED,
        }
    ),
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


def count_frames(start: int, end: int, step: int = 1, frames_per_task: int = 1) -> int:
    """How many frames start..end by step holds; an InvalidJob if the range cannot be split."""
    if end < start:
        raise InvalidJob(f"end frame {end} is before start frame {start}")
    if step < 1:
        raise InvalidJob(f"step must be at least 1, not {step}")
    if frames_per_task < 1:
        raise InvalidJob(f"block size must be at least 1, not {frames_per_task}")
    return (end - start) // step + 1


def split_frames(start: int, end: int, step: int = 1, frames_per_task: int = 1) -> FrameBlocks:
    """Split the frames start..end (inclusive, by step) into blocks of frames_per_task frames.

    >>> split_frames(1, 5, 1, 2)
    [FrameBlock(start=1, end=2, step=1), FrameBlock(start=3, end=4, step=1), FrameBlock(start=5, end=5, step=1)]
    >>> split_frames(-3, 3, 3, 1)
    [FrameBlock(start=-3, end=-3, step=3), FrameBlock(start=0, end=0, step=3), FrameBlock(start=3, end=3, step=3)]
    """
    count = count_frames(start, end, step, frames_per_task)
    if count > MAX_FRAMES:
        raise InvalidJob(f"{count} frames is more than the {MAX_FRAMES} one job may hold")
    return FrameBlocks(start, step, frames_per_task, count)


class FrameBlocks(Sequence[FrameBlock]):
    """A job's blocks (:func:`split_frames`), each made when it is asked for: a job of a
    million frames holds no million objects (building them took a second of CPU in the
    submit's thread, while other requests waited for the GIL).  Reads as a list of
    FrameBlocks: ``len``, an index, a slice (a list), iteration, ``==`` a list."""

    __slots__ = ("_count", "_per", "_start", "_step")

    def __init__(self, start: int, step: int, frames_per_task: int, count: int) -> None:
        self._start, self._step, self._per, self._count = start, step, frames_per_task, count

    def __len__(self) -> int:
        return -(-self._count // self._per)

    def _block(self, index: int) -> FrameBlock:
        first = index * self._per  # the block's first and last frame, counted from 0
        last = min(first + self._per, self._count) - 1
        return FrameBlock(
            self._start + first * self._step, self._start + last * self._step, self._step
        )

    @overload
    def __getitem__(self, index: int) -> FrameBlock: ...
    @overload
    def __getitem__(self, index: slice) -> list[FrameBlock]: ...
    def __getitem__(self, index: int | slice) -> FrameBlock | list[FrameBlock]:
        if isinstance(index, slice):
            return [self._block(i) for i in range(*index.indices(len(self)))]
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("block index out of range")
        return self._block(index)

    def __iter__(self) -> Iterator[FrameBlock]:
        return map(self._block, range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrameBlocks | list):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self))


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


# -- what a submitted job may hold: the one rule for the API, the client, the CLI and JobSpec --


def _invalid(message: str) -> PydanticCustomError:
    """A validation error whose message is *message* as is (no "Value error, " before it)."""
    return PydanticCustomError("invalid", message)


def _printable(value: str) -> str:
    """Names people read in a terminal: no control character, so no ANSI escape code either."""
    if not value.isprintable():
        raise _invalid("must hold printable characters only (no control characters or escapes)")
    return value


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise _invalid("must not hold control characters (NUL, newline, escape ...)")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise _invalid("must not hold a NUL byte (no program can be given one)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(
            "must be valid Unicode (it holds a lone surrogate such as \\ud800)"
        ) from None
    return value


def _no_nul_inside(value: Any) -> Any:
    """A renderer parameter: no NUL in any string inside it (it ends up on a command line)."""
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul_inside(key)
            _no_nul_inside(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _no_nul_inside(item)
    return value


def _path_name(value: str) -> str:
    if not re.match(PATH_NAME_PATTERN, value):
        raise _invalid(
            "must be 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise _invalid("environment variable names are letters, digits and '_', not digit-first")
    return value


#: A name people read (job, owner): printable, at most MAX_NAME_LENGTH characters.
DisplayName = Annotated[StrictStr, Field(max_length=MAX_NAME_LENGTH), AfterValidator(_printable)]
#: A name that goes into URL paths (pool, computer): see PATH_NAME_PATTERN.
PathName = Annotated[StrictStr, AfterValidator(_path_name)]
#: A host glob of --hosts / --exclude-hosts (``render*``): a computer name's characters and the
#: glob's ``* ? [ ] !``, at most 100 of them.  (Unique long globs by the thousand once kept the
#: dispatcher busy compiling them: fnmatch caches 32,768.)
HostGlob = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9._\-*?\[\]!]{1,100}$")]
#: The most host globs one list of a job holds.
MAX_HOST_GLOBS = 20
#: A job's priority.
Priority = Annotated[StrictInt, Field(ge=PRIORITY_MIN, le=PRIORITY_MAX)]
#: A frame number.
Frame = Annotated[StrictInt, Field(ge=-FRAME_LIMIT, le=FRAME_LIMIT)]
#: A job id another job names (``after``).
JobRef = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]

#: The orders in which a job's tasks may be dispatched (``order``): by frame (the default),
#: last frame first, or preview (first, last and middle frames, then bisecting the gaps).
TASK_ORDERS = ("sequential", "reverse", "preview")
TaskOrder = Literal["sequential", "reverse", "preview"]


class RequirementsIn(BaseModel):
    """What a host must offer, as submitted."""

    model_config = ConfigDict(extra="forbid", strict=True)
    os: Literal["linux", "windows", "darwin"] | None = None
    min_ram_gb: StrictFloat | StrictInt = Field(0, ge=0, le=1_000_000)
    min_cores: StrictInt = Field(0, ge=0, le=100_000)
    pools: list[PathName] = Field(default_factory=list, max_length=100)
    gpus: StrictInt = Field(0, ge=0, le=1024)
    hosts: list[HostGlob] = Field(default_factory=list, max_length=MAX_HOST_GLOBS)
    exclude_hosts: list[HostGlob] = Field(default_factory=list, max_length=MAX_HOST_GLOBS)


#: The moments a job's ``notify.on`` may name: its end (every task finished, or ended with one
#: in error) and its first finished frame, so an artist can look at it before the shot renders.
NOTIFY_EVENTS = ("finished", "error", "first-frame")
#: ``notify.on`` when it is not given but the job has recipients (its own or its owner's).
NOTIFY_DEFAULT_EVENTS = ("finished", "error")
#: The most recipients one job's ``notify.email`` holds.
MAX_RECIPIENTS = 20
#: A mail address as DrQueue accepts it: a plain local part, ``@``, and a dotted domain
#: (no display name, comment, quoting or space: the address goes into an SMTP envelope as is;
#: a one-label domain, as in drqueue@localhost, is an internal host).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_MAIL_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")


def is_mail_address(value: str) -> bool:
    """Whether *value* is a mail address DrQueue sends to (``ann@example.com``)."""
    return len(value) <= 254 and _MAIL_ADDRESS.fullmatch(value) is not None


def _mail_address(value: str) -> str:
    if not is_mail_address(value):
        raise _invalid(f"{value[:60]!r} is not a mail address like ann@example.com")
    return value


#: A recipient of a job's mail.
MailAddress = Annotated[StrictStr, AfterValidator(_mail_address)]


class NotifyIn(BaseModel):
    """Who hears of a job, and when: ``{"on": ["finished", ...], "email": ["ann@...", ...]}``.

    Both keys are optional.  Without ``on``, a job with recipients (its own, or its owner's
    address from the master's ``mail_addresses``) is mailed when it finishes or ends in error
    (:data:`NOTIFY_DEFAULT_EVENTS`); without recipients no mail is sent."""

    model_config = ConfigDict(extra="forbid", strict=True)
    on: list[Literal["finished", "error", "first-frame"]] | None = Field(None, max_length=10)
    email: list[MailAddress] = Field(default_factory=list, max_length=MAX_RECIPIENTS)

    def stored(self) -> dict[str, Any]:
        """The job's ``notify`` as stored: only the keys given, each name once."""
        stored: dict[str, Any] = {}
        if self.on is not None:
            stored["on"] = list(dict.fromkeys(self.on))
        if self.email:
            stored["email"] = list(dict.fromkeys(self.email))
        return stored


def notify_events(notify: Mapping[str, Any], has_recipients: bool) -> frozenset[str]:
    """The moments a job with *notify* is mailed at (a subset of :data:`NOTIFY_EVENTS`):
    its ``on``, else :data:`NOTIFY_DEFAULT_EVENTS` when it has recipients, else none."""
    on = notify.get("on")
    if isinstance(on, list):
        return frozenset(str(event) for event in on) & frozenset(NOTIFY_EVENTS)
    return frozenset(NOTIFY_DEFAULT_EVENTS) if has_recipients else frozenset()


def notify_recipients(notify: Mapping[str, Any]) -> list[str]:
    """The job's own recipients (``notify.email``); a job stored before the rule may hold one
    address as a string, and whatever is not an address is left out."""
    email = notify.get("email")
    listed = [email] if isinstance(email, str) else email if isinstance(email, list) else []
    return [address for address in listed if isinstance(address, str) and is_mail_address(address)]


class JobIn(BaseModel):
    """A job submission (the body of POST /jobs): every field rule of a job, in one place.

    Numbers are strict: ``"1"`` or ``true`` is not a frame.  Use :func:`parse_job` to check a
    body and get a one-line :class:`InvalidJob`; the frame cap is the master's
    (``max_frames_per_job``), checked by :meth:`JobSpec.validate`.
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    renderer: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    start: Frame
    end: Frame
    step: StrictInt = Field(1, ge=1, le=FRAME_LIMIT)
    block_size: StrictInt = Field(1, ge=1, le=FRAME_LIMIT)
    scene: Annotated[StrictStr, Field(max_length=4096), AfterValidator(_no_control)] | None = None
    name: DisplayName = ""
    owner: Annotated[StrictStr, Field(max_length=100), AfterValidator(_printable)] = ""
    priority: Priority = 50
    retries: StrictInt = Field(3, ge=0, le=100)
    timeout: StrictFloat | StrictInt | None = Field(None, gt=0, le=30 * 86400)
    env: dict[
        Annotated[StrictStr, Field(max_length=200), AfterValidator(_env_name)],
        Annotated[StrictStr, Field(max_length=32768), AfterValidator(_no_nul)],
    ] = Field(default_factory=dict, max_length=1000)
    params: Annotated[
        dict[
            Annotated[StrictStr, Field(max_length=100), AfterValidator(_no_control)],
            Any,
        ],
        AfterValidator(_no_nul_inside),
    ] = Field(default_factory=dict)
    requirements: RequirementsIn = Field(default_factory=RequirementsIn)
    after: list[JobRef] = Field(default_factory=list, max_length=1000)
    #: Jobs whose tasks gate ours frame by frame: a task waits only for the tasks of these jobs
    #: that render one of its frames (docs/job-options.md, "Dependencies").
    after_frames: list[JobRef] = Field(default_factory=list, max_length=100)
    order: TaskOrder = "sequential"
    #: Run the first task of ``order`` alone; if it ends in error, stop the job.
    first_frame_check: StrictBool = False
    max_parallel: StrictInt | None = Field(None, ge=1, le=100_000)
    notify: NotifyIn = Field(default_factory=NotifyIn)
    #: What the farm does with a failed task of each class, where the job wants other than the
    #: farm's ``failure_actions`` (drqueue.failures): {"oom": "retry", "licence": "fail"}.
    on_failure: Annotated[
        dict[
            Literal[
                "oom", "licence", "missing-asset", "crash", "timeout", "output-missing", "unknown"
            ],
            Literal["retry", "retry-bigger", "backoff", "fail"],
        ],
        Field(max_length=7),
    ] = Field(default_factory=dict)
    #: Check that the scene file exists on the master's view of the shared storage.
    check_scene: StrictBool = True

    @model_validator(mode="after")
    def _frames_in_order(self) -> JobIn:
        if self.end < self.start:
            raise _invalid(f"end frame {self.end} is before start frame {self.start}")
        return self

    def to_spec(self) -> JobSpec:
        """The JobSpec this submission asks for (params as given: the renderer converts them)."""
        req = self.requirements
        return JobSpec(
            renderer=self.renderer,
            start=self.start,
            end=self.end,
            name=self.name,
            owner=self.owner,
            scene=self.scene or None,
            step=self.step,
            block_size=self.block_size,
            priority=self.priority,
            retries=self.retries,
            timeout=None if self.timeout is None else float(self.timeout),
            env=dict(self.env),
            params=dict(self.params),
            requirements=Requirements(
                os=req.os,
                min_ram_gb=float(req.min_ram_gb),
                min_cores=req.min_cores,
                pools=list(req.pools),
                gpus=req.gpus,
                hosts=list(req.hosts),
                exclude_hosts=list(req.exclude_hosts),
            ),
            after=sorted(set(self.after)),
            after_frames=sorted(set(self.after_frames)),
            order=self.order,
            first_frame_check=self.first_frame_check,
            on_failure=dict(self.on_failure),
            max_parallel=self.max_parallel,
            notify=self.notify.stored(),
        )


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """The first of pydantic's *errors* (``exc.errors()``) on one line: ``field.sub: what``."""
    first = errors[0] if errors else {}
    where = ".".join(
        part if isinstance(part, str) and part.isprintable() else repr(part)
        for part in first.get("loc", ())
        if part != "body"
    )
    message = str(first.get("msg", "invalid"))
    line = f"{where}: {message}" if where else message
    return " ".join(line.split("\n"))


def parse_job(body: dict[str, Any]) -> JobIn:
    """Check a job submission's fields; an InvalidJob with a one-line reason if one is wrong.

    The CLI and the API share this rule.  The renderer's own checks (its params, its frames)
    and the farm's frame cap are the master's, at submit."""
    try:
        return JobIn.model_validate(body)
    except ValidationError as exc:
        raise InvalidJob(validation_message(exc.errors())) from None


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
    #: Jobs whose tasks gate ours frame by frame (:func:`upstream_indexes`).
    after_frames: list[int] = field(default_factory=list)
    #: The order its tasks are dispatched in (:data:`TASK_ORDERS`, :func:`task_ranks`).
    order: str = "sequential"
    #: Only the first task of *order* runs until it has finished; its error stops the job.
    first_frame_check: bool = False
    #: Failure class -> action, over the farm's (``--on-failure``; drqueue.failures).
    on_failure: dict[str, str] = field(default_factory=dict)

    def validate(self, *, max_frames: int = MAX_FRAMES) -> None:
        """Raise InvalidJob with a one-line reason if the spec is not runnable.

        The rules are :class:`JobIn`'s (one definition for API, client and CLI), plus the
        frame cap *max_frames* (the master's ``max_frames_per_job``)."""
        count = count_frames(self.start, self.end, self.step, self.block_size)
        if count > min(max_frames, MAX_FRAMES):
            raise InvalidJob(
                f"{count} frames is more than the {min(max_frames, MAX_FRAMES)} one job may hold "
                "(the master's max_frames_per_job)"
            )
        parse_job(self.to_body())

    def to_body(self) -> dict[str, Any]:
        """The spec as the body of POST /jobs."""
        return {
            "renderer": self.renderer,
            "start": self.start,
            "end": self.end,
            "name": self.name,
            "owner": self.owner,
            "scene": self.scene,
            "step": self.step,
            "block_size": self.block_size,
            "priority": self.priority,
            "retries": self.retries,
            "timeout": self.timeout,
            "env": dict(self.env),
            "params": dict(self.params),
            "requirements": self.requirements.to_dict(),
            "after": list(self.after),
            "after_frames": list(self.after_frames),
            "order": self.order,
            "first_frame_check": self.first_frame_check,
            "max_parallel": self.max_parallel,
            "notify": dict(self.notify),
            "on_failure": dict(self.on_failure),
        }


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


# -- the order of a job's tasks, and frame-by-frame dependencies ----------------------------------


def preview_order(count: int) -> list[int]:
    """The task indexes 0..count-1 in preview order: the first, the last and the middle, then
    the middles of the gaps between those (quarter points), then of the gaps between those
    (eighths) ..., each round from the start of the shot to its end, so that an artist sees
    every part of it early.

    >>> preview_order(9)
    [0, 8, 4, 2, 6, 1, 3, 5, 7]
    >>> preview_order(2)
    [0, 1]
    """
    if count <= 0:
        return []
    if count == 1:
        return [0]
    order = [0, count - 1]
    gaps = [(0, count - 1)]  # neighbours already ordered, with frames between them
    while gaps:
        next_gaps = []
        for low, high in gaps:
            if high - low < 2:
                continue
            middle = (low + high) // 2
            order.append(middle)
            next_gaps += [(low, middle), (middle, high)]
        gaps = next_gaps
    return order


def task_ranks(count: int, order: str) -> list[int]:
    """The rank of each of a job's *count* tasks, by index, for its *order*: the dispatcher
    runs a job's queued tasks lowest rank first (the store keeps each task's rank)."""
    if order == "reverse":
        return list(range(count - 1, -1, -1))
    if order == "preview":
        ranks = [0] * count
        for rank, index in enumerate(preview_order(count)):
            ranks[index] = rank
        return ranks
    return list(range(count))


def first_task_index(count: int, order: str) -> int:
    """The index of the task that *order* runs first (the one ``first_frame_check`` runs)."""
    return count - 1 if order == "reverse" and count else 0


#: Frames of a task beyond which its upstream tasks are found by its span (first to last
#: frame) rather than frame by frame: a 10,000-frame block is rare, and waits a little more.
EXACT_FRAMES_UP_TO = 10_000


@dataclass(frozen=True, slots=True)
class FrameGrid:
    """How a job's frames are split into tasks (its spec's start, end, step and block size):
    which task renders a frame, by arithmetic, never by reading the tasks."""

    start: int
    end: int
    step: int
    block_size: int

    @classmethod
    def of(cls, spec: JobSpec) -> FrameGrid:
        return cls(spec.start, spec.end, spec.step, spec.block_size)

    @property
    def last(self) -> int:
        """The last frame it renders (``end`` may not be on the grid)."""
        return self.start + (self.end - self.start) // self.step * self.step

    def task_of(self, frame: int) -> int | None:
        """The index of the task that renders *frame*, or None if no task does."""
        if frame < self.start or frame > self.last or (frame - self.start) % self.step:
            return None
        return (frame - self.start) // (self.step * self.block_size)

    def overlaps(self, other: FrameGrid) -> bool:
        """Whether at least one frame number is rendered by both (by the Chinese remainder
        theorem on the two steps, so two steps of a million cost no loop)."""
        low, high = max(self.start, other.start), min(self.last, other.last)
        if low > high:
            return False
        a, b = self.step, other.step
        gap = other.start - self.start
        common = math.gcd(a, b)
        if gap % common:
            return False
        # self.start + i*a is on other's grid for i = i0 (mod b/common); frames repeat by lcm.
        i0 = (
            (gap // common) * pow(a // common, -1, b // common) % (b // common) if b > common else 0
        )
        first = self.start + i0 * a
        period = a // common * b
        frame = first + -(-(low - first) // period) * period
        return frame <= high


def upstream_indexes(block: FrameBlock, upstream: FrameGrid) -> range | list[int]:
    """The indexes of the *upstream* job's tasks that render a frame of *block*: a task
    ``--after JOB:frames`` waits for exactly these (whatever the two jobs' block sizes).
    Frames of *block* the upstream job does not render wait for nothing."""
    low, high = max(block.start, upstream.start), min(block.end, upstream.last)
    if low > high:
        return range(0)
    if block.step == upstream.step and (block.start - upstream.start) % block.step == 0:
        first, last = upstream.task_of(low), upstream.task_of(high)
        if first is None or last is None:  # low/high off the grid: cannot be, but be safe
            return range(0)
        return range(first, last + 1)
    if len(block) > EXACT_FRAMES_UP_TO:
        stride = upstream.step * upstream.block_size
        return range(
            max(0, (low - upstream.start) // stride), (high - upstream.start) // stride + 1
        )
    found: list[int] = []
    for frame in block.frames:
        index = upstream.task_of(frame)
        if index is not None and (not found or found[-1] != index):
            found.append(index)
    return found


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
        """Seconds until the job ends, from its mean task time and the slots it can use; None
        when unknown, and for a stopped job (it will not end in any time by itself)."""
        if self.control == JobControl.STOPPED:
            return None
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
    #: Why its last attempt failed (drqueue.failures.FailureClass), and the missing path or the
    #: log line that said so; None while it runs and once it finished.
    failure_class: str | None = None
    failure_detail: str | None = None
    #: The memory it needs, in MB, learnt from an out-of-memory failure (over its job's
    #: min_ram_gb): only a slave with more gets it.
    min_ram_mb: int | None = None
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


def task_seconds(result: dict[str, Any], elapsed: float) -> float:
    """How long an attempt ran, never negative: the runner's own monotonic measure (``seconds``)
    if it sent one; else its wall-clock ``ended_at - started_at``, which a slave's clock can skew
    by any amount, so clamped to *elapsed* (the master's own time since it dispatched the
    attempt); else *elapsed*."""
    elapsed = max(0.0, elapsed)
    try:
        seconds = float(result["seconds"])
    except (KeyError, TypeError, ValueError):
        try:
            seconds = min(float(result["ended_at"]) - float(result["started_at"]), elapsed)
        except (KeyError, TypeError, ValueError):
            return elapsed
    return max(0.0, seconds) if math.isfinite(seconds) else elapsed


#: Most output files a task reports and the store keeps (the last ones a renderer said it saved).
MAX_OUTPUTS = 1000
#: Longest output path kept, in characters: a longer one is dropped, not cut into a wrong path.
MAX_OUTPUT_PATH_CHARS = 4096


def bounded_outputs(outputs: Any) -> list[str]:
    """A task's outputs as reported and as stored: a list's strings no longer than
    MAX_OUTPUT_PATH_CHARS, the last MAX_OUTPUTS of them.  The runner applies it to what a
    renderer said it saved, and the store again to a result it does not trust."""
    if not isinstance(outputs, list | tuple):
        return []
    kept = [
        path for path in outputs if isinstance(path, str) and len(path) <= MAX_OUTPUT_PATH_CHARS
    ]
    return kept[-MAX_OUTPUTS:]
