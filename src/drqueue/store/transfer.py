"""Moving a farm between stores: the export file, the same for every backend.

``drqueue store export FILE`` writes a store's whole state, with the token entries of
``etc/tokens.json`` (their SHA-256, never a token), to one file of JSON lines, and
``drqueue store import FILE`` writes such a file into an empty store, all or nothing.  The
file does not depend on the backend, so it moves a farm from SQLite to MongoDB and back.

The file is:

- line 1, the header: ``{"format": "drqueue-store-export", "schema_version": 2,
  "exported_at": <unix time>}``;
- one line per object, ``{"kind": KIND, "record": {...}}``, the kinds in the order of
  :data:`KINDS`, so that a record names only objects of lines before it;
- last, the end line ``{"end": true, "counts": {KIND: n, ...}}``.  A file without it, or
  with other counts than it holds, was cut short or damaged, and is refused.

Each kind's record is defined once, by its model below (:data:`RECORDS`).  Backends build
records with the ``*_record`` functions and turn them back into objects with the
``*_from_record`` ones.  A job's task counts are not in the file: the importing store
recounts them from the tasks (``policy.count``).

:func:`check` reads a file whole and refuses it before anything is written, with one line
that names the line and what is wrong.  :func:`read` then streams its records into
:meth:`~drqueue.store.base.Store.import_records`, reading the file a second time rather
than holding its 100,000 tasks in memory.  :func:`write` checks each record by the same
rules as it writes it, so an export that succeeds can be imported.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import itertools
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from drqueue.errors import InvalidExportFile, StoreError
from drqueue.master.tokens import ROLES
from drqueue.models import (
    ACTIVE_STATES,
    MAX_ID,
    FrameBlock,
    JobControl,
    JobSpec,
    Priority,
    Requirements,
    Task,
    TaskState,
    validation_message,
)
from drqueue.store.base import SCHEMA_VERSION, Event, Store

#: What the header's "format" says: the file is a DrQueue store export.
FORMAT = "drqueue-store-export"

#: The kinds of record, in the order the file holds them.
KINDS = ("pool", "computer", "member", "job", "task", "host", "event", "token")

#: The kinds a store exports and imports: tokens live in etc/tokens.json, not in the store.
STORE_KINDS = KINDS[:-1]

#: What import_records says when the store holds anything already.
NOT_EMPTY = (
    "the store is not empty: a farm is imported only into a new store "
    "(a new DRQUEUE_ROOT, or an empty database)"
)

#: The kinds a summary names, in its order ("3 jobs, 120 tasks, ...").
_SUMMARY_KINDS = ("job", "task", "computer", "pool", "event", "token")

# -- the records -----------------------------------------------------------------------------------

Int64 = Annotated[StrictInt, Field(ge=-(2**63), le=MAX_ID)]
#: The largest id an imported record may have: new ids continue after the largest imported, so
#: one near MAX_ID would leave the store no room for new jobs, tasks or events (and JavaScript,
#: the web UI's, counts exactly only to 2**53).
IMPORTED_ID_MAX = 2**53

Id = Annotated[StrictInt, Field(ge=1, le=IMPORTED_ID_MAX)]
Count = Annotated[StrictInt, Field(ge=0, le=MAX_ID)]
Step = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]


class _Record(BaseModel):
    # Strict: "1" is no number and true no int; a float field takes an int; no NaN or infinity.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class PoolRecord(_Record):
    name: StrictStr
    description: StrictStr


class ComputerRecord(_Record):
    name: StrictStr
    #: What the slave reported, without its name and pools (the record's and the members').
    info: dict[StrictStr, Any]
    enabled: StrictBool
    max_tasks: Count | None
    last_seen: float | None
    info_at: float | None


class MemberRecord(_Record):
    pool: StrictStr
    computer: StrictStr


class RequirementsRecord(_Record):
    """Requirements.to_dict()."""

    os: StrictStr | None
    min_ram_gb: float = Field(ge=0)
    min_cores: Count
    pools: list[StrictStr]
    gpus: Count
    hosts: list[StrictStr]
    exclude_hosts: list[StrictStr]


class SpecRecord(_Record):
    """Every field of a JobSpec: JobSpec.to_body()."""

    renderer: StrictStr
    start: Int64
    end: Int64
    name: StrictStr
    owner: StrictStr
    scene: StrictStr | None
    step: Step
    block_size: Step
    priority: Priority
    retries: Count
    timeout: float | None
    env: dict[StrictStr, StrictStr]
    params: dict[StrictStr, Any]
    requirements: RequirementsRecord
    after: list[Id]
    max_parallel: Count | None
    notify: dict[StrictStr, Any]
    # Since schema 3 (issue 15); an older export has none of them.
    after_frames: list[Id] = Field(default_factory=list)
    order: Literal["sequential", "reverse", "preview"] = "sequential"
    first_frame_check: StrictBool = False
    on_failure: dict[StrictStr, StrictStr] = {}

    @model_validator(mode="after")
    def _frames_in_order(self) -> SpecRecord:
        if self.end < self.start:
            raise PydanticCustomError(
                "invalid", f"end frame {self.end} is before start frame {self.start}"
            )
        return self


class JobRecord(_Record):
    id: Id
    spec: SpecRecord
    control: Annotated[JobControl, Field(strict=False)]  # its value, "active" or "stopped"
    submitted_at: float
    finished_at: float | None
    task_seconds: float
    timed_tasks: Count
    waiting_reason: StrictStr | None
    idempotency_key: StrictStr | None


class TaskRecord(_Record):
    """A Task, its frame block as start, end and step."""

    id: Id
    job_id: Id
    index: Count
    start: Int64
    end: Int64
    step: Step
    state: Annotated[TaskState, Field(strict=False)]
    attempts: Count
    failures: Count
    lost: Count
    computer: StrictStr | None
    engine_id: Int64 | None
    attempt_id: StrictStr | None
    started_at: float | None
    ended_at: float | None
    exit_code: Int64 | None
    peak_rss_kb: Int64 | None
    cpu_seconds: float | None
    progress: float
    log_path: StrictStr | None
    tail: StrictStr
    reason: StrictStr | None
    outputs: list[StrictStr]
    # Absent from files of schema 2.
    failure_class: StrictStr | None = None
    failure_detail: StrictStr | None = None
    min_ram_mb: Count | None = None


class HostRecord(_Record):
    """A computer's failures of one job's tasks, and whether it is blocked for the job."""

    job_id: Id
    computer: StrictStr
    failures: Count
    blocked: StrictBool


class EventRecord(_Record):
    """An Event.  Its job_id may name a job deleted since (the event of its deletion)."""

    id: Id
    at: float
    kind: StrictStr
    message: StrictStr
    job_id: Int64 | None
    task_index: Int64 | None
    computer: StrictStr | None
    actor: StrictStr | None


class TokenRecord(_Record):
    """An entry of etc/tokens.json as it is kept there (drqueue.master.tokens)."""

    sha256: Annotated[StrictStr, Field(pattern="^[0-9a-f]{64}$")]
    role: Literal[ROLES]  # type: ignore[valid-type]
    owner: StrictStr
    created: float | None = None


#: Each kind's record.
RECORDS: dict[str, type[_Record]] = {
    "pool": PoolRecord,
    "computer": ComputerRecord,
    "member": MemberRecord,
    "job": JobRecord,
    "task": TaskRecord,
    "host": HostRecord,
    "event": EventRecord,
    "token": TokenRecord,
}


#: Fields added since schema 2, with the value a record from an older file gets.
_ADDED_TASK_FIELDS = {"failure_class": None, "failure_detail": None, "min_ram_mb": None}


def _fill_added_fields(kind: str, record: dict[str, Any]) -> None:
    """Give a record of an older file the fields added since (the backends write every field)."""
    if kind == "task":
        for name, value in _ADDED_TASK_FIELDS.items():
            record.setdefault(name, value)
    elif kind == "job":
        record["spec"].setdefault("on_failure", {})


class _Header(_Record):
    format: Literal[FORMAT]  # type: ignore[valid-type]
    schema_version: Annotated[StrictInt, Field(ge=1)]
    exported_at: float


class _End(_Record):
    end: Literal[True]
    counts: dict[Literal[KINDS], Count]  # type: ignore[valid-type]


# -- objects to records and back: the only code that knows the records' fields ---------------------


def pool_record(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "description": description}


def computer_record(
    name: str,
    info: dict[str, Any],
    *,
    enabled: bool,
    max_tasks: int | None,
    last_seen: float | None,
    info_at: float | None,
) -> dict[str, Any]:
    return {
        "name": name,
        "info": info,
        "enabled": bool(enabled),
        "max_tasks": max_tasks,
        "last_seen": last_seen,
        "info_at": info_at,
    }


def member_record(pool: str, computer: str) -> dict[str, Any]:
    return {"pool": pool, "computer": computer}


def job_record(
    job_id: int,
    spec: JobSpec,
    *,
    control: str,
    submitted_at: float,
    finished_at: float | None,
    task_seconds: float,
    timed_tasks: int,
    waiting_reason: str | None,
    idempotency_key: str | None,
) -> dict[str, Any]:
    return {
        "id": job_id,
        "spec": spec.to_body(),
        "control": str(control),
        "submitted_at": submitted_at,
        "finished_at": finished_at,
        "task_seconds": task_seconds,
        "timed_tasks": timed_tasks,
        "waiting_reason": waiting_reason,
        "idempotency_key": idempotency_key,
    }


def spec_from_record(record: dict[str, Any]) -> JobSpec:
    """The JobSpec of a job record's "spec"; it shares nothing with the record."""
    fields = copy.deepcopy(record)
    fields["requirements"] = Requirements.from_dict(fields["requirements"])
    fields.setdefault("on_failure", {})
    return JobSpec(**fields)


#: The fields of a Task that a task record holds by the same name, after its id, job id, index
#: and its block's start, end and step.
_TASK_FIELDS = tuple(
    f.name for f in dataclasses.fields(Task) if f.name not in ("id", "job_id", "index", "block")
)


def task_record(task: Task) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": task.id,
        "job_id": task.job_id,
        "index": task.index,
        "start": task.block.start,
        "end": task.block.end,
        "step": task.block.step,
    }
    for name in _TASK_FIELDS:
        record[name] = getattr(task, name)
    record["state"] = str(task.state)
    record["outputs"] = list(task.outputs)
    return record


def task_from_record(record: dict[str, Any]) -> Task:
    fields = {name: record.get(name) for name in _TASK_FIELDS}
    fields["state"] = TaskState(record["state"])
    fields["outputs"] = list(record["outputs"])
    return Task(
        id=record["id"],
        job_id=record["job_id"],
        index=record["index"],
        block=FrameBlock(record["start"], record["end"], record["step"]),
        **fields,
    )


def host_record(job_id: int, computer: str, failures: int, blocked: bool) -> dict[str, Any]:
    return {"job_id": job_id, "computer": computer, "failures": failures, "blocked": bool(blocked)}


def event_record(event: Event) -> dict[str, Any]:
    return dataclasses.asdict(event)


def event_from_record(record: dict[str, Any]) -> Event:
    return Event(**record)


# -- the rules across records ----------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A value as a message names it: ints plainly, anything else as repr, cut at 40 characters."""
    text = str(value) if type(value) is int else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _described(kind: str, record: Any) -> str:
    """The object a record is, in words: "task 7", "pool 'gpu'", "host 'r01' of job 3"."""
    get = record.get if isinstance(record, dict) else lambda _key: None
    if kind == "member":
        return f"member {_shown(get('computer'))} of pool {_shown(get('pool'))}"
    if kind == "host":
        return f"host {_shown(get('computer'))} of job {_shown(get('job_id'))}"
    if kind == "token":  # named by its id (drqueue token list); anything else may be a secret
        sha256 = get("sha256")
        named = isinstance(sha256, str) and re.fullmatch("[0-9a-f]{64}", sha256)
        return f"token {sha256[:12]}" if named else "a token"
    return f"{kind} {_shown(get('name' if kind in ('pool', 'computer') else 'id'))}"


def _plural(count: int, kind: str) -> str:
    return f"{count} {kind}{'' if count == 1 else 's'}"


class _Fault(Exception):
    """What is wrong with a record, said after the record's name ("is in the file twice")."""


class _Checker:
    """Checks records one by one, as a file holds them: each record against its model, the
    order of the kinds, every id and name once, and references only to objects before it;
    at the end (finish), that each job's tasks are numbered 0 to n-1, as a store keeps them.
    A fault is a ValueError whose message names the record and what is wrong with it."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(KINDS, 0)
        self._kind_at = 0
        self._pools: set[str] = set()
        self._computers: set[str] = set()
        self._members: set[tuple[str, str]] = set()
        #: The task indexes of each job.
        self._tasks_of: dict[int, set[int]] = {}
        self._keys: set[tuple[str, str]] = set()
        self._task_ids: set[int] = set()
        #: The task running each attempt on an engine.
        self._attempts: dict[str, int] = {}
        self._hosts: set[tuple[int, str]] = set()
        self._events: set[int] = set()
        self._tokens: set[str] = set()

    def add(self, kind: Any, record: Any) -> None:
        if not isinstance(kind, str) or kind not in RECORDS:
            raise ValueError(f"unknown kind {_shown(kind)}: a kind is one of {', '.join(KINDS)}")
        at = KINDS.index(kind)
        if at < self._kind_at:
            raise ValueError(
                f"a {kind} record after {KINDS[self._kind_at]} records: the records go in the "
                f"order {', '.join(KINDS)}"
            )
        self._kind_at = at
        if not isinstance(record, dict):
            raise ValueError(f"the record of a {kind} is not a JSON object")
        try:
            RECORDS[kind].model_validate(record)
        except ValidationError as exc:
            what = _described(kind, record)
            raise ValueError(f"{what}: {validation_message(exc.errors())}") from None
        _fill_added_fields(kind, record)
        try:
            getattr(self, f"_{kind}")(record)
        except _Fault as fault:
            raise ValueError(f"{_described(kind, record)} {fault}") from None
        self.counts[kind] += 1

    def finish(self) -> None:
        for job_id, indexes in self._tasks_of.items():
            if indexes and len(indexes) != max(indexes) + 1:
                missing = next(i for i in range(len(indexes) + 1) if i not in indexes)
                raise ValueError(
                    f"job {job_id} has a task {max(indexes)} but no task {missing}: "
                    "a job's tasks are numbered from 0 without a gap"
                )

    @staticmethod
    def _once(seen: set[Any], key: Any) -> None:
        if key in seen:
            raise _Fault("is in the file twice")
        seen.add(key)

    def _pool(self, record: dict[str, Any]) -> None:
        self._once(self._pools, record["name"])

    def _computer(self, record: dict[str, Any]) -> None:
        self._once(self._computers, record["name"])

    def _member(self, record: dict[str, Any]) -> None:
        if record["pool"] not in self._pools:
            raise _Fault(f"names pool {_shown(record['pool'])}, which is not in the file")
        if record["computer"] not in self._computers:
            raise _Fault(f"names computer {_shown(record['computer'])}, which is not in the file")
        self._once(self._members, (record["pool"], record["computer"]))

    def _job(self, record: dict[str, Any]) -> None:
        if record["id"] in self._tasks_of:
            raise _Fault("is in the file twice")
        self._tasks_of[record["id"]] = set()
        key = record["idempotency_key"]
        if key is not None:
            owner = record["spec"]["owner"]
            if (owner, key) in self._keys:
                raise _Fault(f"has the Idempotency-Key of an earlier job of {_shown(owner)}")
            self._keys.add((owner, key))

    def _task(self, record: dict[str, Any]) -> None:
        indexes = self._tasks_of.get(record["job_id"])
        if indexes is None:
            raise _Fault(f"names job {record['job_id']}, which is not in the file")
        self._once(self._task_ids, record["id"])
        if record["index"] in indexes:
            raise _Fault(
                f"is task {record['index']} of job {record['job_id']}, as an earlier one is"
            )
        indexes.add(record["index"])
        attempt = record["attempt_id"]
        if attempt is not None and record["state"] in ACTIVE_STATES:
            other = self._attempts.setdefault(attempt, record["id"])
            if other != record["id"]:
                raise _Fault(f"runs attempt {_shown(attempt)}, as task {other} does")

    def _host(self, record: dict[str, Any]) -> None:
        if record["job_id"] not in self._tasks_of:
            raise _Fault(f"names job {record['job_id']}, which is not in the file")
        self._once(self._hosts, (record["job_id"], record["computer"]))

    def _event(self, record: dict[str, Any]) -> None:
        self._once(self._events, record["id"])

    def _token(self, record: dict[str, Any]) -> None:
        self._once(self._tokens, record["sha256"])


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Export:
    """An export file that :func:`check` found whole and importable."""

    path: Path
    schema_version: int
    exported_at: float
    #: How many records of each kind it holds, tokens included.
    counts: dict[str, int]
    #: Its token entries, as etc/tokens.json keeps them.
    tokens: list[dict[str, Any]]
    #: The file as it was checked: read() refuses it if it changed since.
    size: int
    sha256: str


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


#: JSON as the file holds it: NaN and Infinity are refused on read and on write (a file
#: must not hold what check() refuses), and text is UTF-8 rather than \u escapes.
_DECODER = json.JSONDecoder(parse_constant=_not_a_number)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _parse(line: bytes) -> Any:
    """One line's JSON value; ValueError saying what is wrong with it."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    if not text.strip():
        raise ValueError("an empty line")
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg}, at column {exc.colno})") from None
    # A string no store can keep (a lone surrogate) can only come from a \u escape.
    if "\\u" in text:
        try:
            _ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a \\u escape that is no character (a lone surrogate)") from None
    return value


def _header(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise ValueError(
            f'no DrQueue store export: its first line is not {{"format": "{FORMAT}", ...}}'
        )
    version = value.get("schema_version")
    if type(version) is int and version > SCHEMA_VERSION:
        raise ValueError(
            f"written by a newer DrQueue (schema version {version}; this one reads up to "
            f"{SCHEMA_VERSION}): import it with that version of DrQueue, or a newer one"
        )
    try:
        _Header.model_validate(value)
    except ValidationError as exc:
        raise ValueError(f"the header: {validation_message(exc.errors())}") from None
    return value


def _end_counts(value: dict[str, Any]) -> dict[str, int]:
    try:
        _End.model_validate(value)
    except ValidationError as exc:
        raise ValueError(f"the end line: {validation_message(exc.errors())}") from None
    return value["counts"]


def _kind_and_record(value: Any) -> tuple[Any, Any]:
    if not isinstance(value, dict) or set(value) != {"kind", "record"}:
        raise ValueError(
            'not a record: each line between the header and the end line is {"kind": ..., '
            '"record": {...}}'
        )
    return value["kind"], value["record"]


def _open(path: Path) -> Any:
    try:
        return open(path, "rb")  # noqa: SIM115 (closed by the caller's with)
    except FileNotFoundError:
        raise InvalidExportFile(f"there is no file {path}") from None
    except OSError as exc:
        raise InvalidExportFile(f"cannot read {path}: {exc.strerror or exc}") from None


def check(path: str | Path) -> Export:
    """Read the export file *path* whole and check every line of it, writing nothing.

    InvalidExportFile, one line naming the line and the fault ("line 42: task 7 names job
    3, which is not in the file"), unless the file is complete and every record in it is
    one a store can import: of a known kind, in the order of KINDS, of the right fields and
    types, each id once, and naming only objects before it."""
    path = Path(path)
    checker = _Checker()
    digest = hashlib.sha256()
    header: dict[str, Any] | None = None
    end: tuple[int, dict[str, int]] | None = None
    tokens: list[dict[str, Any]] = []
    number = size = 0
    with _open(path) as handle:
        try:
            for number, line in enumerate(handle, start=1):
                digest.update(line)
                size += len(line)
                try:
                    value = _parse(line)
                    if number == 1:
                        header = _header(value)
                    elif end is not None:
                        raise ValueError("a line after the end line")
                    elif isinstance(value, dict) and "end" in value:
                        end = number, _end_counts(value)
                    else:
                        kind, record = _kind_and_record(value)
                        checker.add(kind, record)
                        if kind == "token":
                            tokens.append(record)
                except ValueError as exc:
                    raise InvalidExportFile(f"line {number}: {exc}") from None
        except OSError as exc:
            raise InvalidExportFile(f"cannot read {path}: {exc.strerror or exc}") from None
    if header is None:
        raise InvalidExportFile(f"{path} is empty: it is no DrQueue store export")
    if end is None:
        raise InvalidExportFile(
            f"{path} ends at line {number} without its end line: it was cut short "
            "(an export that did not finish, or a partial copy)"
        )
    end_line, end_counts = end
    for kind in KINDS:
        said, held = end_counts.get(kind, 0), checker.counts[kind]
        if said != held:
            raise InvalidExportFile(
                f"line {end_line}: the end line counts {_plural(said, kind)}, but the file "
                f"holds {held}: it is damaged"
            )
    try:
        checker.finish()
    except ValueError as exc:
        raise InvalidExportFile(f"{path}: {exc}") from None
    return Export(
        path=path,
        schema_version=header["schema_version"],
        exported_at=header["exported_at"],
        counts=dict(checker.counts),
        tokens=tokens,
        size=size,
        sha256=digest.hexdigest(),
    )


def read(source: str | Path | Export) -> Iterator[tuple[str, dict[str, Any]]]:
    """The store's records in an export file, as (kind, record) in the file's order, for
    Store.import_records.  Its tokens are not the store's: they are in check()'s Export.

    The file is checked whole first (by check(), unless *source* is its answer), so a bad
    file is refused before the first record.  A file changed since it was checked is
    refused too, at the latest after its last record: an import, which is one
    transaction, then keeps nothing of it."""
    export = source if isinstance(source, Export) else check(source)

    def changed() -> InvalidExportFile:
        return InvalidExportFile(f"{export.path} changed while it was imported: import it again")

    digest = hashlib.sha256()
    with _open(export.path) as handle:
        if os.fstat(handle.fileno()).st_size != export.size:
            raise changed()
        for number, line in enumerate(handle, start=1):
            digest.update(line)
            if number == 1:
                continue
            try:
                value = json.loads(line)
                if "end" in value:
                    continue
                kind, record = value["kind"], value["record"]
            except (ValueError, KeyError, TypeError):
                raise changed() from None
            if kind != "token":
                yield kind, record
    if digest.hexdigest() != export.sha256:
        raise changed()


# -- writing ---------------------------------------------------------------------------------------


def _line(value: dict[str, Any]) -> bytes:
    return _ENCODER.encode(value).encode("utf-8") + b"\n"


def write(store: Store, path: str | Path, tokens: Iterable[dict[str, Any]] = ()) -> dict[str, int]:
    """Export *store*'s whole state, and the entries *tokens* of etc/tokens.json, to the file
    *path*; return how many records of each kind it holds.

    The file is written mode 0600 (it holds every job's env) beside *path*, and renamed onto
    it once complete, so a failed export leaves nothing under *path*.  Each record is checked
    as check() will check it: a store holding what the file cannot carry (a NaN in a job's
    params, a broken string) is StoreError naming the object, and no file."""
    path = Path(path)
    checker = _Checker()
    header = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "exported_at": time.time()}
    records = itertools.chain(store.export_records(), (("token", entry) for entry in tokens))
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            out.write(_line(header))
            for kind, record in records:
                try:
                    checker.add(kind, record)
                    out.write(_line({"kind": kind, "record": record}))
                except UnicodeEncodeError:
                    raise StoreError(
                        f"cannot export {_described(kind, record)}: it holds a string that is "
                        "not valid Unicode (a lone surrogate)"
                    ) from None
                except ValueError as exc:
                    raise StoreError(f"cannot export {_described(kind, record)}: {exc}") from None
            try:
                checker.finish()
            except ValueError as exc:
                raise StoreError(f"cannot export the store: {exc}") from None
            out.write(_line({"end": True, "counts": checker.counts}))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):  # the rename lasts a crash only once its folder is synced
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return dict(checker.counts)


def summary(counts: dict[str, int]) -> str:
    """What a file or an import holds, in words: "3 jobs, 120 tasks, 2 computers, 1 pool,
    40 events, 2 tokens" (pool members and a job's host records go with them unsaid)."""
    return ", ".join(_plural(counts.get(kind, 0), kind) for kind in _SUMMARY_KINDS)
