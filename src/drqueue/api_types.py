"""What the HTTP API answers, as typed models: the one definition for both of its sides.

The master's routes name these models as their ``response_model``, so ``/openapi.json``
documents every answer; :class:`drqueue.Client` builds them from the JSON it receives, so a
program reads ``job.counts.finished`` rather than ``job["counts"]["finished"]``.  They are the
*API's* objects: the store's own ``Job``, ``Task`` and ``Computer`` (dataclasses in
:mod:`drqueue.models`) are what the master keeps, and :mod:`drqueue.master.api.shapes` turns
those into this JSON.

Each model

- keeps the JSON it was built from as ``.raw``, and reads it by key as before
  (``job["status"]``, ``job.get("waiting_reason")``, ``job["counts"]["finished"]``): scripts
  and the CLI written against the old dict answers keep working;
- allows keys it does not know (``extra="allow"``), so an older client reads a newer master;
- is lenient (not strict), as a reader should be: the master's input models
  (:class:`drqueue.models.JobIn`) are the strict ones.

States and statuses are plain strings, not enums, for the same reason: a state a newer master
adds must not make an older client fail.  Their values are in :mod:`drqueue.models`
(``TaskState``, ``job_status``).
"""

from __future__ import annotations

import functools
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    model_validator,
)

#: The validation context of :meth:`APIObject.from_json`: keep each object's JSON as its raw.
_FROM_JSON: dict[str, bool] = {"from_json": True}


class APIObject(BaseModel):
    """An object of the API's JSON: attribute access, and the JSON itself as ``.raw``."""

    model_config = ConfigDict(extra="allow")
    # A slot, not a pydantic PrivateAttr: private attributes cost each object a deep copy of
    # their defaults, which made reading 10,000 jobs twice as slow.
    __slots__ = ("_raw_json",)

    @classmethod
    def from_json(cls, data: Any) -> Self:
        """The object read from the API's JSON *data*, which it keeps as ``.raw``."""
        return cls.model_validate(data, context=_FROM_JSON)

    @classmethod
    def list_from_json(cls, data: Any) -> list[Self]:
        """A JSON list of these, validated as one list (a loop of from_json costs more on
        10,000 jobs)."""
        return _list_of(cls).validate_python(data, context=_FROM_JSON)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: Any, info: ValidationInfo) -> Any:
        made = handler(data)
        if info.context is _FROM_JSON and isinstance(data, dict):
            object.__setattr__(made, "_raw_json", data)  # nested ones too: the context reaches them
        return made

    @property
    def raw(self) -> dict[str, Any]:
        """The JSON object this was read from (or, for one made in Python, its dump)."""
        try:
            return self._raw_json
        except AttributeError:
            object.__setattr__(self, "_raw_json", self.model_dump(mode="json"))
            return self._raw_json

    # Read access by key, on the JSON: the answers were plain dicts before they were typed.
    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def keys(self) -> Any:
        return self.raw.keys()

    def items(self) -> Any:
        return self.raw.items()

    def __eq__(self, other: object) -> bool:
        """Equal when the JSON is: a model equals another of its kind, or the dict it reads."""
        if isinstance(other, APIObject):
            return type(self) is type(other) and self.raw == other.raw
        if isinstance(other, dict):
            return self.raw == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


@functools.cache
def _list_of(model: type[APIObject]) -> TypeAdapter[Any]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


# -- jobs -------------------------------------------------------------------------------------------


class Counts(APIObject):
    """How many of a job's tasks are in each state (``running`` counts dispatched ones too)."""

    total: int = 0
    queued: int = 0
    running: int = 0
    finished: int = 0
    error: int = 0
    cancelled: int = 0


class Requirements(APIObject):
    """What a host must offer to run the job's tasks."""

    os: str | None = None
    min_ram_gb: float = 0.0
    min_cores: int = 0
    pools: list[str] = Field(default_factory=list)
    gpus: int = 0
    hosts: list[str] = Field(default_factory=list)
    exclude_hosts: list[str] = Field(default_factory=list)


class Job(APIObject):
    """A job as ``GET /jobs/ID`` shows it.  In a list (``GET /jobs``, the stream) ``env`` and
    ``params`` (and ``notify``) are None: they may be large, and ``GET /jobs/ID`` has them."""

    id: int
    name: str = ""
    owner: str = ""
    renderer: str
    scene: str | None = None
    start: int
    end: int
    step: int = 1
    block_size: int = 1
    priority: int = 50
    retries: int = 3
    timeout: float | None = None
    env: dict[str, str] | None = Field(
        None, description="another artist's job shows each value as '(hidden)'"
    )
    params: dict[str, Any] | None = None
    requirements: Requirements = Field(default_factory=Requirements)
    after: list[int] = Field(default_factory=list)
    after_frames: list[int] = Field(
        default_factory=list, description="jobs waited for frame by frame (--after ID:frames)"
    )
    order: str = Field("sequential", description="sequential, reverse or preview")
    first_frame_check: bool = False
    max_parallel: int | None = None
    on_failure: dict[str, str] = Field(
        default_factory=dict, description="the job's actions by failure class, over the farm's"
    )
    notify: dict[str, Any] | None = Field(
        None,
        description='who is mailed and when: {"on": [...], "email": [...]}; GET /jobs/ID only, '
        "another artist's recipients shown as (hidden)",
    )
    status: str = Field(
        description="queued, waiting, running, stopping, stopped, finished, error or cancelled"
    )
    control: str = Field("active", description="active or stopped: what the user asked")
    counts: Counts = Field(default_factory=Counts)
    submitted_at: float = 0.0
    finished_at: float | None = None
    eta_seconds: float | None = None
    waiting_for: list[int] = Field(default_factory=list)
    waiting_reason: str | None = None
    blocked_hosts: list[str] = Field(default_factory=list)


class Submitted(APIObject):
    """The answer to a submit: the new job's id and how many tasks it was split into."""

    id: int
    tasks: int


class Preview(APIObject):
    """What a submit would make (``POST /jobs/preview``): tasks, frames, the first blocks."""

    tasks: int
    frames: int
    blocks: list[list[int]] = Field(description="[start, end, step] of the first 100 tasks")


class FrameGrid(APIObject):
    """A job's frames at a glance: one letter per task by index (q queued, d dispatched,
    r running, f finished, e error, c cancelled)."""

    start: int
    end: int
    step: int
    block_size: int
    states: str


class Deleted(APIObject):
    """What a delete removed: a job's id or a pool's name."""

    deleted: int | str


# -- tasks ------------------------------------------------------------------------------------------


class Task(APIObject):
    """One task: a block of its job's frames, and everything known of its runs."""

    index: int
    id: int
    job_id: int
    start: int
    end: int
    step: int = 1
    frames: int = 1
    state: str = Field(description="queued, dispatched, running, finished, error or cancelled")
    attempts: int = 0
    failures: int = 0
    lost: int = 0
    computer: str | None = None
    engine_id: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    peak_rss_kb: int | None = None
    cpu_seconds: float | None = None
    progress: float = 0.0
    log_path: str | None = None
    tail: str = ""
    reason: str | None = None
    outputs: list[str] = Field(default_factory=list)
    failure_class: str | None = Field(
        None,
        description="why the last attempt failed: oom, licence, missing-asset, crash, timeout, "
        "output-missing or unknown (None while it runs and once it finished)",
    )
    failure_detail: str | None = Field(
        None, description="the missing file, or the log line the class was read from"
    )
    min_ram_mb: int | None = Field(
        None, description="memory it needs after running out of it: only a bigger slave gets it"
    )


# -- the farm ---------------------------------------------------------------------------------------


class RunningTask(APIObject):
    """A task on a computer; ``job`` and ``task`` repeat ``job_id`` and ``task_index``."""

    job_id: int
    task_id: int
    task_index: int
    job: int
    task: int
    progress: float = 0.0


class Computer(APIObject):
    """A slave as the master knows it, whether it is online, and what it runs."""

    name: str
    hostname: str = ""
    os: str = ""
    arch: str = ""
    cores: int = 0
    ram_mb: int = 0
    free_ram_mb: int = 0
    load: float = 0.0
    gpus: int = 0
    pools: list[str] = Field(default_factory=list)
    renderers: list[str] = Field(default_factory=list)
    enabled: bool = True
    max_tasks: int | None = None
    slots: int = 0
    online: bool = False
    last_seen: float | None = None
    info_at: float | None = None
    running: list[RunningTask] = Field(default_factory=list)


class Pool(APIObject):
    """A named group of computers a job may require."""

    name: str
    description: str = ""
    members: list[str] = Field(default_factory=list)


class PoolCreated(APIObject):
    name: str


class PoolMember(APIObject):
    """A computer added to (or, with ``removed``, taken out of) a pool."""

    pool: str
    computer: str
    removed: bool = False


class Event(APIObject):
    """One entry of the audit trail; ids increase, so the last one seen is a bookmark."""

    id: int
    at: float
    kind: str = Field(description="job.submitted, task.failed, computer.lost, ...")
    message: str
    job_id: int | None = None
    task_index: int | None = None
    computer: str | None = None
    actor: str | None = None


class FarmCounters(APIObject):
    """The dispatcher's counters since the master started, and the engines online."""

    instance: str
    engines: int
    dispatched: int = 0
    prefetched: int = 0
    finished: int = 0
    failed: int = 0
    stale: int = 0
    lost: int = 0
    aborts_confirmed: int = 0
    store_writes_owed: int = 0
    #: Live streams open, and the fan-out's reads of the store (one per tick, whatever the
    #: number of streams).
    stream_clients: int = 0
    stream_reads: int = 0
    #: Slave heartbeats answered since the master started, and the period a heartbeat's
    #: answer sets now (``next_seconds``).
    heartbeats: int = 0
    heartbeat_seconds: float = 1.0


class Health(APIObject):
    status: str
    version: str


class RendererParam(APIObject):
    """One typed parameter of a renderer (``--param NAME=VALUE``, ``params`` of a job)."""

    name: str
    type: str
    default: Any = None
    help: str = ""
    required: bool = False
    choices: list[Any] = Field(default_factory=list)


class RendererInfo(APIObject):
    """A renderer the master knows, and its parameters."""

    name: str
    description: str = ""
    executable: str | None = None
    needs_scene: bool = False
    params: list[RendererParam] = Field(default_factory=list)


#: The longest a master tells a slave to wait before its next heartbeat (``next_seconds``), and
#: the most a slave takes from any answer (it waits up to a fifth more: its jitter).  A farm of
#: 6,000 slaves at the default 100 heartbeats a second is at it; an engine that runs but that
#: the master lost is noticed within 72 s.
HEARTBEAT_MAX_SECONDS = 60.0
#: The shortest a master tells a slave to wait while all is well: a slave calls every second
#: anyway while something is wrong (its last call failed, an engine is not registered), so
#: a small farm need not call every second to be seen in time.  At 1 s, the 16 slaves of a
#: 128-engine farm cost an idle master 1.6 % of a core in heartbeats (bench/scale.py).
HEARTBEAT_MIN_SECONDS = 2.0


class HeartbeatAnswer(APIObject):
    """The master's instance id, which of the slave's engines are registered, and when to call
    again (``next_seconds``; a master before it answered every second)."""

    instance: str
    registered: list[str] = Field(default_factory=list)
    next_seconds: float = 1.0


# -- sessions and errors ----------------------------------------------------------------------------


class SessionInfo(APIObject):
    name: str
    role: str
    csrf: str


class LoginLink(APIObject):
    url: str
    expires_in: int


class ErrorBody(BaseModel):
    """Every error answer: one line of text, and the name of the drqueue.errors class."""

    detail: str = Field(description="what went wrong and, where it can, what to do")
    error: str = Field(description="the class in drqueue.errors: JobNotFound, Forbidden, ...")
