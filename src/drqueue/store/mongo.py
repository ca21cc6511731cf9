"""The MongoDB store: the seed design's database, for studios that run MongoDB already or
want a replicated database under the master (``drqueue master --store mongodb://…``).

Collections: ``jobs``, ``tasks``, ``hosts`` (per job and computer: failures, blocked),
``computers``, ``pools``, ``members`` (pool membership), ``events``, ``counters`` (the next
job, task and event ids: the API speaks integer ids), ``outbox`` (the mail and webhooks the
master owes, by key: :mod:`drqueue.master.notify`) and ``meta`` (the schema version, the
master's claim, the notifier's cursor).

Like the SQLite store, this module stores and decides nothing: what a change means comes from
:mod:`drqueue.store.policy`.  How it stays correct:

- **A task's state changes only by a conditional update** whose filter holds the state and
  attempt id the change was decided on (:meth:`MongoStore._move`).  A transition can never be
  applied twice, and a stale result can never win: its update matches nothing.
- **With transactions** (a replica set or a sharded cluster, which is what MongoDB recommends
  in production, and what the test server reports), each change with its job counters and
  events is one multi-document transaction, retried on a write conflict.  Every change that
  must refuse a later dispatch (a stop, a delete, a host block) writes the job document, so
  it conflicts with a dispatch's own write there instead of passing it by.
- **Without transactions** (a standalone ``mongod``), the writes of a change go in an order
  that the start-up integrity check repairs: the task first (the conditional update decides),
  then the job's counters, then its events; a master killed between them leaves counts that
  ``check_integrity`` recounts from the tasks.  A dispatch re-reads its job after its write
  and takes the task back if a stop or a block came first.

Connection faults (the server gone away, an election) raise
:class:`~drqueue.errors.StoreUnavailable`: the API answers 503 and the dispatcher pauses and
tries again.  Nothing here waits longer than the URL's timeouts (by default 5 s to find the
server and 30 s for an answer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from drqueue.errors import (
    ConfigError,
    Conflict,
    InvalidJob,
    NotFound,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from drqueue.models import (
    ACTIVE_STATES,
    PRIORITY_MAX,
    PRIORITY_MIN,
    Computer,
    Counts,
    FrameBlock,
    Job,
    JobControl,
    JobSpec,
    Requirements,
    Task,
    TaskState,
    task_ranks,
)
from drqueue.store import policy, transfer
from drqueue.store.base import (
    NOTICES_KEPT_SECONDS,
    SCHEMA_VERSION,
    Claim,
    Dispatch,
    Event,
    Notice,
    Store,
    computer_from_info,
)
from drqueue.store.jobquery import STATUSES, JobPage, JobQuery, page_of

try:
    import pymongo
    from pymongo import ReturnDocument
    from pymongo.errors import (
        ConfigurationError,
        ConnectionFailure,
        DuplicateKeyError,
        OperationFailure,
        PyMongoError,
    )
except ImportError:  # pragma: no cover - the message is the point
    pymongo = None  # type: ignore[assignment]

T = TypeVar("T")

log = logging.getLogger(__name__)

#: A job's control while create_job writes its tasks: invisible to every read (as in SQLite).
CREATING = "creating"

#: The database a URL without one names.
DEFAULT_DATABASE = "drqueue"

#: Task documents written per insert by create_job.
TASKS_PER_INSERT = 5000

#: Seconds a change is retried after write conflicts before the request is StoreBusy.
CONFLICT_RETRY_SECONDS = 10.0

#: Seconds a client is told to wait (Retry-After) while the database is unreachable.
RETRY_AFTER = 2

#: Timeouts put into a URL that names none (milliseconds): finding the server, connecting,
#: and an answer.  A database gone away must not hold an API request for pymongo's default 30 s.
DEFAULT_TIMEOUTS = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 5000}
DEFAULT_SOCKET_TIMEOUT_MS = 30000
#: The most a URL's serverSelectionTimeoutMS or connectTimeoutMS may ask for (seconds); more,
#: or 0, is cut to this.
MAX_TIMEOUT_S = 30.0

#: MongoDB's error codes for a refused login and a command that needs one.
_AUTH_FAILED, _UNAUTHORIZED = 18, 13

_ACTIVE = sorted(str(state) for state in ACTIVE_STATES)
_STORED_STATES = sorted(str(state) for state in policy.COUNTER)
_CONTROLS = {str(control): control for control in JobControl}

#: The job document's counter field of each counter of policy.COUNTER.
_FIELD = {name: f"n_{name}" for name in policy.COUNTERS}

#: The collections, in the order check_integrity and is_empty look at them.
COLLECTIONS = ("jobs", "tasks", "hosts", "computers", "pools", "members", "events")


def _where(url: str) -> str:
    """The server(s) of a URL, without its user or password (for messages)."""
    try:
        nodes = pymongo.uri_parser.parse_uri(url, connect_timeout=1)["nodelist"]
        return ",".join(f"{host}:{port}" for host, port in nodes)
    except Exception:
        return "the MongoDB URL"


def _first_words(exc: BaseException) -> str:
    """pymongo's message without its topology description: one short line."""
    text = str(exc).split("\n")[0]
    for cut in (", Timeout:", " Topology Description", ", Topology"):
        text = text.split(cut)[0]
    return text[:200]


def _unavailable(where: str, exc: BaseException) -> StoreUnavailable:
    first = _first_words(exc).split(",")[0]
    return StoreUnavailable(
        f"the store's MongoDB at {where} does not answer ({type(exc).__name__}: {first}): "
        "ask again in a moment",
        retry_after=RETRY_AFTER,
    )


def _guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Turn a connection fault under *method* into StoreUnavailable (a 503 for the API)."""

    @functools.wraps(method)
    def wrapper(self: MongoStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except ConnectionFailure as exc:
            raise _unavailable(self.where, exc) from None
        except OperationFailure as exc:
            if exc.code in (_AUTH_FAILED, _UNAUTHORIZED):
                raise StoreError(f"MongoDB at {self.where} refused: {exc.details}") from None
            raise

    return wrapper


def _spec_json(spec: JobSpec) -> str:
    return json.dumps(spec.to_body(), separators=(",", ":"))


def _spec_from(doc: dict[str, Any]) -> JobSpec:
    body = json.loads(doc["spec"])
    body["requirements"] = Requirements.from_dict(body.get("requirements"))
    body["priority"] = doc["priority"]
    return JobSpec(**body)


def _counts(doc: dict[str, Any]) -> Counts:
    return Counts(
        total=doc["n_total"],
        queued=doc["n_queued"],
        running=doc["n_running"],
        finished=doc["n_finished"],
        error=doc["n_error"],
        cancelled=doc["n_cancelled"],
    )


def _task(doc: dict[str, Any]) -> Task:
    get = doc.get
    return Task(
        id=doc["_id"],
        job_id=doc["job_id"],
        index=doc["idx"],
        block=FrameBlock(doc["start"], doc["end"], doc["step"]),
        state=TaskState(doc["state"]),
        attempts=get("attempts", 0),
        failures=get("failures", 0),
        lost=get("lost", 0),
        computer=get("computer"),
        engine_id=get("engine_id"),
        attempt_id=get("attempt_id"),
        started_at=get("started_at"),
        ended_at=get("ended_at"),
        exit_code=get("exit_code"),
        peak_rss_kb=get("peak_rss_kb"),
        cpu_seconds=get("cpu_seconds"),
        progress=get("progress", 0.0),
        log_path=get("log_path"),
        tail=get("tail", ""),
        reason=get("reason"),
        outputs=list(get("outputs") or ()),
        failure_class=get("failure_class"),
        failure_detail=get("failure_detail"),
        min_ram_mb=get("min_ram_mb"),
    )


def _dispatch(doc: dict[str, Any]) -> Dispatch:
    engine_id = doc.get("engine_id")
    return Dispatch(
        task_id=doc["_id"],
        job_id=doc["job_id"],
        attempt_id=doc.get("attempt_id") or "",
        engine_id=engine_id if engine_id is not None else -1,
        computer=doc.get("computer") or "",
        started_at=doc.get("started_at"),
    )


def _event_out(doc: dict[str, Any]) -> Event:
    return Event(
        id=doc["_id"],
        at=doc["at"],
        kind=doc["kind"],
        message=doc["message"],
        job_id=doc.get("job_id"),
        task_index=doc.get("task_index"),
        computer=doc.get("computer"),
        actor=doc.get("actor"),
    )


class MongoStore(Store):
    """The Store on one MongoDB database."""

    def __init__(self, url: str, *, transactions: bool | None = None):
        """Connect to *url* (``mongodb://[user:password@]host[:port][/database][?options]`` or
        ``mongodb+srv://…``) and check it: StoreError, with one line, when the server does not
        answer, refuses the credentials or holds a newer schema.  *transactions*: use
        multi-document transactions (default: when the server supports them)."""
        if pymongo is None:
            raise ConfigError("a mongodb:// store needs pymongo: pip install 'drqueue[mongo]'")
        self.url = url
        self.where = _where(url)
        try:
            parsed = pymongo.uri_parser.parse_uri(url, connect_timeout=5)
        except (ConfigurationError, ValueError) as exc:
            raise ConfigError(f"bad MongoDB URL: {exc}") from None
        if parsed.get("collection"):  # "/dr.queue" is database "dr", collection "queue"
            raise ConfigError(
                f"bad MongoDB URL: the database name {parsed['database']}.{parsed['collection']} "
                "holds a dot; MongoDB database names may not"
            )
        options = {k.lower(): v for k, v in parsed["options"].items()}
        settings: dict[str, Any] = {}
        for key, value in DEFAULT_TIMEOUTS.items():
            given = options.get(key.lower())
            if given is None:
                settings[key] = value
            elif not given or given > MAX_TIMEOUT_S:
                # 0 or hours: an API request, or the master's start, would hang that long on a
                # server gone silent.
                settings[key] = int(MAX_TIMEOUT_S * 1000)
        if "sockettimeoutms" not in options:
            settings["socketTimeoutMS"] = DEFAULT_SOCKET_TIMEOUT_MS
        self._client: Any = pymongo.MongoClient(url, **settings)
        self.database = parsed["database"] or DEFAULT_DATABASE
        self._db = self._client[self.database]
        #: Each job's spec, decoded once (it never changes but for its priority).
        self._specs: dict[int, JobSpec] = {}
        try:
            hello = self._client.admin.command("hello")
            self._db.list_collection_names()  # needs the login a --auth server asks for
        except ConnectionFailure as exc:
            self._client.close()
            raise StoreError(
                f"cannot reach the store's MongoDB at {self.where}: {_first_words(exc)}"
            ) from None
        except OperationFailure as exc:
            self._client.close()
            if exc.code == _AUTH_FAILED:
                raise StoreError(
                    f"MongoDB at {self.where} refused the store's credentials "
                    "(the user and password in the URL)"
                ) from None
            if exc.code == _UNAUTHORIZED:
                raise StoreError(
                    f"MongoDB at {self.where} needs a login: put user:password@ in the URL"
                ) from None
            raise StoreError(f"MongoDB at {self.where} refused: {exc.details}") from None
        if transactions is None:
            transactions = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
        #: Multi-document transactions are used (else the ordered writes of the docstring).
        self.transactions = transactions
        try:
            self._init_schema()
        except OperationFailure as exc:
            self._client.close()
            raise StoreError(
                f"MongoDB at {self.where} refused to set up database {self.database!r} "
                f"(the store's user needs the readWrite role): "
                f"{(exc.details or {}).get('errmsg', exc)}"
            ) from None
        except BaseException:
            self._client.close()
            raise

    # -- transactions ---------------------------------------------------------------------------

    def _write(self, change: Callable[[Any], T]) -> T:
        """Run *change(session)* as one transaction (retried on a write conflict), or, without
        transactions, as its writes in their order (*session* None)."""
        if not self.transactions:
            return change(None)
        deadline = time.monotonic() + CONFLICT_RETRY_SECONDS
        while True:
            with self._client.start_session() as session:
                session.start_transaction()
                try:
                    result = change(session)
                    self._commit(session)
                    return result
                except PyMongoError as exc:
                    with contextlib.suppress(PyMongoError):
                        if session.in_transaction:
                            session.abort_transaction()
                    if isinstance(exc, ConnectionFailure) or not exc.has_error_label(
                        "TransientTransactionError"
                    ):
                        raise
                    if time.monotonic() > deadline:
                        raise StoreBusy(
                            "the store stayed busy with conflicting writes: ask again in a moment",
                            retry_after=RETRY_AFTER,
                        ) from None
                except BaseException:
                    with contextlib.suppress(PyMongoError):
                        if session.in_transaction:
                            session.abort_transaction()
                    raise

    @staticmethod
    def _commit(session: Any) -> None:
        for attempt in range(3):
            try:
                session.commit_transaction()
                return
            except PyMongoError as exc:
                if attempt == 2 or not exc.has_error_label("UnknownTransactionCommitResult"):
                    raise

    def _next_ids(self, name: str, count: int = 1, session: Any = None) -> int:
        """Reserve *count* new ids of *name*; return the first."""
        try:
            doc = self._db.counters.find_one_and_update(
                {"_id": name},
                {"$inc": {"next": count}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
        except OperationFailure as exc:
            if "overflow" not in str(exc).lower() and "$inc" not in str(exc):
                raise
            raise StoreError(
                f"MongoDB database {self.database!r} has no {name} ids left (its counter is at "
                "the 64-bit limit): export the farm, fix the ids, import it into a new database"
            ) from None
        return doc["next"] - count + 1

    # -- life --------------------------------------------------------------------------------

    def _init_schema(self) -> None:
        meta = self._db.meta.find_one({"_id": "schema"})
        if meta is not None and meta["version"] > SCHEMA_VERSION:
            raise StoreError(
                f"MongoDB database {self.database!r} at {self.where} has schema version "
                f"{meta['version']}, newer than this DrQueue's {SCHEMA_VERSION}: upgrade DrQueue"
            )
        if meta is not None and meta.get("importing"):
            raise StoreError(
                f"an import into MongoDB database {self.database!r} at {self.where} was cut "
                "short: drop the database and import again"
            )
        asc = pymongo.ASCENDING
        db = self._db
        db.jobs.create_index(
            [("owner", asc), ("idempotency_key", asc)],
            unique=True,
            partialFilterExpression={"idempotency_key": {"$type": "string"}},
        )
        db.jobs.create_index([("control", asc), ("n_queued", asc)])
        db.jobs.create_index([("after", asc)])
        db.tasks.create_index([("job_id", asc), ("idx", asc)], unique=True)
        db.tasks.create_index([("job_id", asc), ("state", asc), ("idx", asc)])
        # Only the tasks of a job whose order is not sequential have a rank (issue 15): the
        # index is partial, so a sequential job's tasks (every job before issue 15) cost no
        # more to write than they did.
        db.tasks.create_index(
            [("job_id", asc), ("state", asc), ("rank", asc), ("idx", asc)],
            name="job_state_rank",
            partialFilterExpression={"rank": {"$exists": True}},
        )
        db.tasks.create_index([("attempt_id", asc)], sparse=True)
        db.tasks.create_index([("state", asc)], partialFilterExpression={"state": {"$in": _ACTIVE}})
        db.hosts.create_index([("job_id", asc), ("computer", asc)], unique=True)
        db.members.create_index([("pool", asc), ("computer", asc)], unique=True)
        db.members.create_index([("computer", asc)])  # one computer's pools, at each info probe
        db.events.create_index([("job_id", asc), ("_id", asc)])
        db.tasks.create_index(
            [("ended_at", asc)], partialFilterExpression={"state": str(TaskState.FINISHED)}
        )
        db.outbox.create_index([("channel", asc), ("due_at", asc)])
        for name in ("jobs", "tasks", "events"):  # transactions then only update them
            db.counters.update_one({"_id": name}, {"$setOnInsert": {"next": 0}}, upsert=True)
        if meta is None:
            db.meta.update_one(
                {"_id": "schema"}, {"$setOnInsert": {"version": SCHEMA_VERSION}}, upsert=True
            )
        elif meta["version"] < SCHEMA_VERSION:
            # Version 3 added a task's failure_class, failure_detail and min_ram_mb and a job
            # spec's on_failure: a document without them reads them as absent (None, {}), so
            # an older database needs its version raised and nothing rewritten.
            db.meta.update_one(
                {"_id": "schema", "version": {"$lt": SCHEMA_VERSION}},
                {"$set": {"version": SCHEMA_VERSION}},
            )

    def close(self) -> None:
        self._client.close()

    @_guarded
    def claim_master(self, holder: str) -> None:
        """The claim is a document (meta "master": holder, host, pid, until) that only its
        holder may renew, or anyone once it has run out: two masters on two roots never share
        one database.  "until" is the claiming master's clock: keep the masters' clocks in
        step (NTP), as a farm does anyway."""
        now = time.time()
        claim = {
            "holder": holder,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "until": now + self.MASTER_LEASE_SECONDS,
        }
        try:
            self._db.meta.update_one(
                {"_id": "master", "$or": [{"holder": holder}, {"until": {"$lt": now}}]},
                {"$set": claim},
                upsert=True,
            )
        except DuplicateKeyError:
            other = self._db.meta.find_one({"_id": "master"}) or {}
            left = max(0.0, float(other.get("until", now)) - now)
            raise StoreError(
                f"another master (on {other.get('host', '?')}, pid {other.get('pid', '?')}) "
                f"uses MongoDB database {self.database!r} at {self.where}: stop it first, or "
                f"wait {left:.0f} s if it died"
            ) from None

    @_guarded
    def release_master(self, holder: str) -> None:
        self._db.meta.delete_one({"_id": "master", "holder": holder})

    def backup(self, path: str) -> None:
        raise StoreError(
            "back up a MongoDB store with mongodump or a replica set's snapshots, or write a "
            "portable copy with `drqueue store export FILE` (see docs/storage.md)"
        )

    def compact(self) -> dict[str, int]:
        """Ask the server to compact each collection (mongod's ``compact``); a server without
        it (the test server) leaves the sizes as they were."""
        before = int(self._db.command("dbStats").get("storageSize", 0))
        for name in COLLECTIONS:
            with contextlib.suppress(OperationFailure):
                self._db.command("compact", name)
        return {"before": before, "after": int(self._db.command("dbStats").get("storageSize", 0))}

    def check_integrity(self) -> list[str]:
        found: list[str] = []
        db = self._db
        unfinished = [doc["_id"] for doc in db.jobs.find({"control": CREATING}, {"_id": 1})]
        if unfinished:
            db.tasks.delete_many({"job_id": {"$in": unfinished}})
            db.hosts.delete_many({"job_id": {"$in": unfinished}})
            db.jobs.delete_many({"_id": {"$in": unfinished}, "control": CREATING})
            found.append(f"removed {len(unfinished)} jobs whose creation was cut short")
        jobs = {doc["_id"]: doc for doc in db.jobs.find({}, {"spec": 0})}
        orphans = [job_id for job_id in db.tasks.distinct("job_id") if job_id not in jobs]
        if orphans:
            removed = db.tasks.delete_many({"job_id": {"$in": orphans}}).deleted_count
            found.append(f"removed {removed} tasks of deleted jobs")
        db.hosts.delete_many({"job_id": {"$nin": list(jobs)}})
        bad = db.tasks.update_many(
            {"state": {"$nin": _STORED_STATES}},
            {
                "$set": {
                    "state": str(policy.REPAIRED_STATE),
                    "attempt_id": None,
                    "reason": policy.REPAIRED_REASON,
                }
            },
        ).modified_count
        if bad:
            found.append(f"requeued {bad} tasks in impossible states")
        by_job: dict[int, dict[str, int]] = {}
        for row in db.tasks.aggregate(
            [{"$group": {"_id": {"job": "$job_id", "state": "$state"}, "n": {"$sum": 1}}}]
        ):
            by_job.setdefault(row["_id"]["job"], {})[row["_id"]["state"]] = row["n"]
        for job_id, doc in jobs.items():
            states = by_job.get(job_id, {})
            actual = policy.count(state for state, n in states.items() for _ in range(n))
            if actual != _counts(doc):
                self._set_counts(job_id, actual)
                found.append(f"recounted the tasks of job {job_id}")
        return found

    def _set_counts(self, job_id: int, counts: Counts) -> None:
        values = {"n_total": counts.total} | {
            _FIELD[name]: getattr(counts, name) for name in policy.COUNTERS
        }
        self._db.jobs.update_one({"_id": job_id}, {"$set": values})

    # -- the one place a task's state changes ---------------------------------------------------

    def _move(self, s: Any, task: dict[str, Any], new: TaskState, **fields: Any) -> bool:
        """Move one task from the state it was read in to *new*, setting *fields*, and keep its
        job's counts in step.  False, and nothing written, when the task changed since it was
        read (without transactions: another writer won)."""
        effect = policy.move(TaskState(task["state"]), new)
        fields["state"] = str(new)
        moved = self._db.tasks.update_one(
            {"_id": task["_id"], "state": task["state"], "attempt_id": task.get("attempt_id")},
            {"$set": fields},
            session=s,
        )
        if not moved.matched_count:
            return False
        inc: dict[str, int] = {}
        if effect.counters:
            down, up = effect.counters
            inc = {_FIELD[down]: -1, _FIELD[up]: 1}
        self._job_effect(s, task["job_id"], inc, effect, new, task["idx"])
        return True

    def _move_all(
        self, s: Any, job_id: int, old: TaskState, new: TaskState, fields: dict[str, Any]
    ) -> int:
        """Move every task of the job in state *old* to *new* in one update; return how many.
        Each task moves atomically, so the counters follow the count that matched."""
        effect = policy.move(old, new)
        moved = self._db.tasks.update_many(
            {"job_id": job_id, "state": str(old)},
            {"$set": {**fields, "state": str(new)}},
            session=s,
        ).matched_count
        if moved and effect.counters:
            down, up = effect.counters
            self._job_effect(s, job_id, {_FIELD[down]: -moved, _FIELD[up]: moved}, effect, new)
        return moved

    def _job_effect(
        self,
        s: Any,
        job_id: int,
        inc: dict[str, Any],
        effect: policy.JobEffect,
        new: TaskState,
        index: int | None = None,
    ) -> None:
        """Apply a change's counters to its job, then set or clear finished_at as policy says,
        and write the events of what it tells about the job (policy.job_news; *index*: the
        task that moved, if one did)."""
        may_end, reopens = effect.may_end, effect.reopens
        if not (inc or may_end or reopens):
            return
        jobs = self._db.jobs
        if inc:
            job = jobs.find_one_and_update(
                {"_id": job_id},
                {"$inc": inc},
                projection={"spec": 0},
                return_document=ReturnDocument.AFTER,
                session=s,
            )
        else:
            job = jobs.find_one({"_id": job_id}, {"spec": 0}, session=s)
        if job is None:
            return  # deleted meanwhile: its tasks go with it
        if may_end:
            counts = _counts(job)
            was_ended = job.get("finished_at") is not None
            if not was_ended and policy.job_ended(counts):
                # Conditional: of two writers that both saw the job end, one sets it (and says so).
                ended = jobs.update_one(
                    {"_id": job_id, "finished_at": None},
                    {"$set": {"finished_at": time.time()}},
                    session=s,
                )
                was_ended = not ended.modified_count
            for kind, message, about in policy.job_news(new, index, counts, was_ended=was_ended):
                self._event(s, kind, message, job_id=job_id, task_index=about)
        elif reopens and job.get("finished_at") is not None:
            jobs.update_one({"_id": job_id}, {"$set": {"finished_at": None}}, session=s)

    def _event(self, s: Any, kind: str, message: str, **about: Any) -> None:
        self._db.events.insert_one(
            {
                "_id": self._next_ids("events", session=s),
                "at": time.time(),
                "kind": kind,
                "message": message,
                "job_id": about.get("job_id"),
                "task_index": about.get("task_index"),
                "computer": about.get("computer"),
                "actor": about.get("actor"),
            },
            session=s,
        )

    def _touch_job(self, s: Any, job_id: int) -> None:
        """Write the job document: a change that must refuse later dispatches (a host block)
        then conflicts with a dispatch's transaction instead of passing it by."""
        self._db.jobs.update_one({"_id": job_id}, {"$inc": {"version": 1}}, session=s)

    # -- jobs ---------------------------------------------------------------------------------

    @_guarded
    def is_empty(self) -> bool:
        return not any(self._db[name].find_one({}, {"_id": 1}) for name in COLLECTIONS)

    @_guarded
    def create_job(
        self,
        spec: JobSpec,
        blocks: Sequence[FrameBlock],
        *,
        actor: str = "",
        idempotency_key: str | None = None,
    ) -> int:
        """Store a job and its tasks, as SQLite does: the job document first, hidden (control
        CREATING), then its tasks TASKS_PER_INSERT at a time, then the job is published (active,
        its tasks counted queued, its event written) in one last change.  A failure deletes
        what was written; a master killed mid-way leaves it to check_integrity."""
        for block in blocks:  # bson's own OverflowError names no frame
            for number in (block.start, block.end, block.step):
                if not -(2**63) <= number < 2**63:
                    raise OverflowError(f"frame {number} does not fit a 64-bit integer")
        db = self._db
        for dep in spec.after:
            if not db.jobs.find_one({"_id": dep, "control": {"$ne": CREATING}}, {"_id": 1}):
                raise policy.missing_dependency(dep)
        for dep in spec.after_frames:
            upstream = db.jobs.find_one({"_id": dep, "control": {"$ne": CREATING}})
            policy.check_frame_dependency(dep, _spec_from(upstream) if upstream else None, spec)
        for pool in spec.requirements.pools:
            if not db.pools.find_one({"_id": pool}, {"_id": 1}):
                raise policy.missing_pool(pool)
        if idempotency_key is not None:
            self._check_key_free(spec.owner, idempotency_key)
        job_id = self._next_ids("jobs")
        first_task = self._next_ids("tasks", max(len(blocks), 1))
        doc: dict[str, Any] = {
            "_id": job_id,
            "spec": _spec_json(spec),
            "owner": spec.owner,
            "priority": spec.priority,
            "after": list(spec.after),
            "after_frames": list(spec.after_frames),
            "control": CREATING,
            "submitted_at": time.time(),
            "finished_at": None,
            "n_total": len(blocks),
            **{field: 0 for field in _FIELD.values()},
            "task_seconds": 0.0,
            "timed_tasks": 0,
            "waiting_reason": None,
        }
        if idempotency_key is not None:
            doc["idempotency_key"] = idempotency_key
        try:
            db.jobs.insert_one(doc)
        except DuplicateKeyError:
            self._check_key_free(spec.owner, idempotency_key or "")
            raise
        try:
            queued = str(TaskState.QUEUED)
            ranked = spec.order != "sequential"
            ranks = task_ranks(len(blocks), spec.order) if ranked else []
            for first in range(0, len(blocks), TASKS_PER_INSERT):
                db.tasks.insert_many(
                    [
                        {
                            "_id": first_task + index,
                            "job_id": job_id,
                            "idx": index,
                            "start": block.start,
                            "end": block.end,
                            "step": block.step,
                            "state": queued,
                            **({"rank": ranks[index]} if ranked else {}),
                        }
                        for index, block in enumerate(
                            blocks[first : first + TASKS_PER_INSERT], start=first
                        )
                    ],
                    ordered=False,
                )

            def publish(s: Any) -> None:
                db.jobs.update_one(
                    {"_id": job_id},
                    {"$set": {"control": str(JobControl.ACTIVE), "n_queued": len(blocks)}},
                    session=s,
                )
                if not spec.name:
                    named = json.loads(doc["spec"]) | {"name": f"job-{job_id}"}
                    db.jobs.update_one(
                        {"_id": job_id}, {"$set": {"spec": json.dumps(named)}}, session=s
                    )
                self._event(
                    s,
                    *policy.submitted_event(len(blocks), spec.start, spec.end, spec.step),
                    job_id=job_id,
                    actor=actor or spec.owner,
                )

            self._write(publish)
        except BaseException:
            with contextlib.suppress(Exception):
                db.tasks.delete_many({"job_id": job_id})
                db.jobs.delete_one({"_id": job_id, "control": CREATING})
            raise
        return job_id

    def _check_key_free(self, owner: str, key: str) -> None:
        job_id = self._job_by_key(owner, key)
        if job_id is not None:
            raise Conflict(f"job {job_id} already has this Idempotency-Key")

    def _job_by_key(self, owner: str, key: str) -> int | None:
        doc = self._db.jobs.find_one({"owner": owner, "idempotency_key": key}, {"control": 1})
        if doc is None:
            return None
        if doc["control"] == CREATING:
            raise StoreBusy(
                f"job {doc['_id']} of this Idempotency-Key is still being created: ask again",
                retry_after=RETRY_AFTER,
            )
        return doc["_id"]

    @_guarded
    def job_by_key(self, owner: str, key: str) -> int | None:
        return self._job_by_key(owner, key)

    def _job_doc(self, job_id: int, s: Any = None) -> dict[str, Any]:
        doc = self._db.jobs.find_one(
            {"_id": job_id, "control": {"$ne": CREATING}}, {"spec": 0}, session=s
        )
        if doc is None:
            raise NotFound(f"no job {job_id}")
        return doc

    def _specs_of(self, docs: list[dict[str, Any]]) -> list[JobSpec | None]:
        """Each job's spec, decoded once and kept by id (as SQLiteStore._specs_of)."""
        specs = self._specs
        unknown = [doc["_id"] for doc in docs if doc["_id"] not in specs]
        for first in range(0, len(unknown), 1000):
            for row in self._db.jobs.find(
                {"_id": {"$in": unknown[first : first + 1000]}}, {"spec": 1, "priority": 1}
            ):
                specs[row["_id"]] = _spec_from(row)
        found: list[JobSpec | None] = []
        for doc in docs:
            spec = specs.get(doc["_id"])
            if spec is not None and spec.priority != doc["priority"]:
                spec = specs[doc["_id"]] = dataclasses.replace(spec, priority=doc["priority"])
            found.append(spec)
        return found

    def _jobs_out(self, docs: list[dict[str, Any]]) -> list[Job]:
        specs = self._specs_of(docs)
        deps = sorted({dep for spec in specs if spec for dep in spec.after})
        done = (
            {
                row["_id"]
                for row in self._db.jobs.find({"_id": {"$in": deps}}, {"spec": 0})
                if policy.dependency_done(_counts(row))
            }
            if deps
            else set()
        )
        ids = [doc["_id"] for doc in docs]
        blocked: dict[int, list[str]] = {}
        query: dict[str, Any] = {"blocked": True}
        if len(ids) <= 1000:
            query["job_id"] = {"$in": ids}
        for row in self._db.hosts.find(query, {"job_id": 1, "computer": 1}):
            blocked.setdefault(row["job_id"], []).append(row["computer"])
        jobs = []
        for doc, spec in zip(docs, specs, strict=True):
            if spec is None:
                continue
            jobs.append(
                Job(
                    id=doc["_id"],
                    spec=spec,
                    control=_CONTROLS[doc["control"]],
                    counts=_counts(doc),
                    submitted_at=doc["submitted_at"],
                    finished_at=doc.get("finished_at"),
                    task_seconds=doc.get("task_seconds", 0.0),
                    timed_tasks=doc.get("timed_tasks", 0),
                    waiting_for=policy.waiting_for(spec.after, done),
                    waiting_reason=doc.get("waiting_reason"),
                    blocked_hosts=sorted(blocked.get(doc["_id"], ())),
                )
            )
        return jobs

    @_guarded
    def get_job(self, job_id: int) -> Job:
        return self._jobs_out([self._job_doc(job_id)])[0]

    @_guarded
    def list_jobs(self, *, owner: str | None = None, limit: int | None = None) -> list[Job]:
        query: dict[str, Any] = {"control": {"$ne": CREATING}}
        if owner:
            query["owner"] = owner
        cursor = self._db.jobs.find(query, {"spec": 0, "after": 0})
        if limit:
            docs = list(cursor.sort("_id", -1).limit(limit))
            docs.reverse()
        else:
            docs = list(cursor.sort("_id", 1))
            if not owner:  # every job: forget the specs of deleted ones
                for gone in self._specs.keys() - {doc["_id"] for doc in docs}:
                    self._specs.pop(gone, None)
        return self._jobs_out(docs)

    @_guarded
    def page_jobs(self, query: JobQuery) -> JobPage:
        """Filtered by owner and ids in MongoDB, the rest by :func:`jobquery.page_of` over the
        jobs read (their specs are decoded once, as for list_jobs)."""
        find: dict[str, Any] = {"control": {"$ne": CREATING}}
        if query.owner is not None and not query.attention:  # attention reads dependencies
            find["owner"] = query.owner
        if query.ids is not None and not query.attention:
            find["_id"] = {"$in": sorted(query.ids)}
        return page_of(self._jobs_out(list(self._db.jobs.find(find, {"spec": 0}))), query)

    @_guarded
    def job_status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for job in self.list_jobs():
            counts[job.status] += 1
        return counts

    @_guarded
    def job_ids(self) -> set[int]:
        return {
            doc["_id"] for doc in self._db.jobs.find({"control": {"$ne": CREATING}}, {"_id": 1})
        }

    @_guarded
    def set_job_control(self, job_id: int, control: str, *, actor: str = "") -> None:
        control = JobControl(control)

        def change(s: Any) -> None:
            self._job_doc(job_id, s)
            self._db.jobs.update_one(
                {"_id": job_id},
                {"$set": {"control": str(control)}, "$inc": {"version": 1}},
                session=s,
            )
            self._event(s, *policy.control_event(control), job_id=job_id, actor=actor)

        self._write(change)

    @_guarded
    def set_job_priority(self, job_id: int, priority: int, *, actor: str = "") -> None:
        if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
            raise InvalidJob(
                f"priority must be between {PRIORITY_MIN} and {PRIORITY_MAX}, not {priority}"
            )

        def change(s: Any) -> None:
            self._job_doc(job_id, s)
            self._db.jobs.update_one({"_id": job_id}, {"$set": {"priority": priority}}, session=s)
            self._event(s, *policy.priority_event(priority), job_id=job_id, actor=actor)

        self._write(change)

    @_guarded
    def delete_job(self, job_id: int, *, force: bool = False, actor: str = "") -> list[Dispatch]:
        """Delete the job document with its event in one change; its tasks and host records
        follow (a master killed between leaves them to check_integrity, and no read sees
        them: every read of tasks goes through their job)."""
        db = self._db

        def change(s: Any) -> list[Dispatch]:
            job = self._job_doc(job_id, s)
            dependants = (
                []
                if force or job["n_running"]
                else [
                    row["_id"]
                    for row in db.jobs.find(
                        {
                            "$or": [{"after": job_id}, {"after_frames": job_id}],
                            "_id": {"$ne": job_id},
                        },
                        {"_id": 1},
                        session=s,
                    )
                ]
            )
            policy.check_delete(
                job_id, running=job["n_running"], dependants=dependants, force=force
            )
            active = [
                _dispatch(doc)
                for doc in db.tasks.find({"job_id": job_id, "state": {"$in": _ACTIVE}}, session=s)
            ]
            db.jobs.delete_one({"_id": job_id}, session=s)
            self._event(s, *policy.deleted_event(job_id), job_id=job_id, actor=actor)
            return active

        active = self._write(change)
        self._specs.pop(job_id, None)
        try:
            # In slices of the task index, so that no one delete of a giant job holds the
            # server (or outlasts the socket time-out); what is left goes at the next start.
            last = db.tasks.find_one({"job_id": job_id}, {"idx": 1}, sort=[("idx", -1)])
            for first in range(0, (last["idx"] + 1) if last else 0, TASKS_PER_INSERT):
                db.tasks.delete_many(
                    {"job_id": job_id, "idx": {"$gte": first, "$lt": first + TASKS_PER_INSERT}}
                )
            db.hosts.delete_many({"job_id": job_id})
        except ConnectionFailure as exc:
            log.warning("job %d deleted; its tasks go at the next start: %s", job_id, exc)
        return active

    @_guarded
    def requeue_tasks(
        self, job_id: int, *, which: str, index: int | None = None, actor: str = ""
    ) -> list[Dispatch]:
        db = self._db
        if which not in policy.REQUEUE_TAKES and which != "one":
            raise ValueError(which)

        def change(s: Any) -> list[Dispatch]:
            self._job_doc(job_id, s)
            queued = TaskState.QUEUED
            if which == "one":
                task = db.tasks.find_one({"job_id": job_id, "idx": index}, session=s)
                if task is None:
                    raise NotFound(f"job {job_id} has no task {index}")
                was_active = [_dispatch(task)] if task["state"] in _ACTIVE else []
                if task["state"] != queued:
                    self._move(s, task, queued, **policy.requeue_fields())
                taken = 1
            else:
                takes = sorted(policy.REQUEUE_TAKES[which])
                was_active = [
                    _dispatch(doc)
                    for doc in db.tasks.find(
                        {
                            "job_id": job_id,
                            "state": {"$in": [str(t) for t in takes if t in ACTIVE_STATES]},
                        },
                        session=s,
                    )
                ]
                taken = sum(
                    self._move_all(s, job_id, old, queued, policy.requeue_fields())
                    for old in takes
                    if old != queued
                )
                db.hosts.delete_many({"job_id": job_id}, session=s)
            self._event(s, *policy.requeue_event(which, index, taken), job_id=job_id, actor=actor)
            return was_active

        return self._write(change)

    @_guarded
    def kill_tasks(
        self, job_id: int, *, index: int | None = None, actor: str = ""
    ) -> list[Dispatch]:
        db = self._db

        def change(s: Any) -> list[Dispatch]:
            self._job_doc(job_id, s)
            query: dict[str, Any] = {"job_id": job_id}
            if index is not None:
                if not db.tasks.find_one({"job_id": job_id, "idx": index}, {"_id": 1}, session=s):
                    raise NotFound(f"job {job_id} has no task {index}")
                query["idx"] = index
            killed = []
            for task in db.tasks.find({**query, "state": {"$in": _ACTIVE}}, session=s):
                fields = policy.kill_fields(actor, time.time())
                if self._move(s, task, TaskState.QUEUED, **fields):
                    killed.append(_dispatch(task))
            self._event(s, *policy.kill_event(len(killed)), job_id=job_id, actor=actor)
            return killed

        return self._write(change)

    @_guarded
    def set_job_waiting_reason(self, reasons: dict[int, str | None]) -> None:
        if reasons:
            self._db.jobs.bulk_write(
                [
                    pymongo.UpdateOne({"_id": job_id}, {"$set": {"waiting_reason": reason}})
                    for job_id, reason in reasons.items()
                ],
                ordered=False,
            )

    @_guarded
    def block_host(self, job_id: int, computer: str) -> None:
        def change(s: Any) -> None:
            self._db.hosts.update_one(
                {"job_id": job_id, "computer": computer},
                {"$set": {"blocked": True}, "$setOnInsert": {"failures": 0}},
                upsert=True,
                session=s,
            )
            self._touch_job(s, job_id)

        self._write(change)

    @_guarded
    def unblock_host(self, job_id: int, computer: str, *, actor: str = "") -> None:
        def change(s: Any) -> None:
            self._job_doc(job_id, s)
            changed = self._db.hosts.update_one(
                {"job_id": job_id, "computer": computer, "blocked": True},
                {"$set": {"blocked": False, "failures": 0}},
                session=s,
            ).matched_count
            if not changed:
                raise NotFound(f"host {computer!r} is not blocked for job {job_id}")
            self._event(s, *policy.unblock_event(computer), job_id=job_id, actor=actor)

        self._write(change)

    @_guarded
    def blocked_hosts(self) -> dict[int, set[str]]:
        result: dict[int, set[str]] = {}
        for row in self._db.hosts.find({"blocked": True}, {"job_id": 1, "computer": 1}):
            result.setdefault(row["job_id"], set()).add(row["computer"])
        return result

    @_guarded
    def host_failures(self, job_id: int) -> dict[str, int]:
        return {
            row["computer"]: row["failures"]
            for row in self._db.hosts.find({"job_id": job_id}, {"computer": 1, "failures": 1})
        }

    # -- tasks ----------------------------------------------------------------------------------

    @_guarded
    def list_tasks(
        self, job_id: int, *, state: str | None = None, offset: int = 0, limit: int | None = None
    ) -> list[Task]:
        self._job_doc(job_id)
        query: dict[str, Any] = {"job_id": job_id}
        if state is not None:
            query["state"] = state
            cursor = self._db.tasks.find(query).sort("idx", 1).skip(offset)
        else:  # a job's task indexes are 0 … n-1: a page starts by index, not by skipping
            query["idx"] = {"$gte": offset}
            cursor = self._db.tasks.find(query).sort("idx", 1)
        if limit is not None:
            if limit <= 0:
                return []
            cursor = cursor.limit(limit)
        return [_task(doc) for doc in cursor]

    @_guarded
    def get_task(self, job_id: int, index: int) -> Task:
        self._job_doc(job_id)
        doc = self._db.tasks.find_one({"job_id": job_id, "idx": index})
        if doc is None:
            raise NotFound(f"job {job_id} has no task {index}")
        return _task(doc)

    @_guarded
    def task_for_frame(self, job_id: int, frame: int) -> Task:
        spec = self._specs_of([self._job_doc(job_id)])[0]
        assert spec is not None
        if not spec.start <= frame <= spec.end or (frame - spec.start) % spec.step:
            raise NotFound(f"job {job_id} does not render frame {frame}")
        return self.get_task(job_id, (frame - spec.start) // (spec.step * spec.block_size))

    @_guarded
    def task_states(self, job_id: int) -> list[TaskState]:
        self._job_doc(job_id)
        states = {str(state): state for state in TaskState}
        cursor = self._db.tasks.find({"job_id": job_id}, {"state": 1, "_id": 0}).sort("idx", 1)
        return [states[doc["state"]] for doc in cursor]

    @_guarded
    def last_finished_task(self, job_id: int) -> Task | None:
        self._job_doc(job_id)
        cursor = self._db.tasks.find({"job_id": job_id, "state": str(TaskState.FINISHED)})
        docs = list(cursor.sort([("ended_at", -1), ("idx", -1)]).limit(1))
        return _task(docs[0]) if docs else None

    @_guarded
    def frames_finished(self, since: float, until: float) -> dict[int, int]:
        hours: dict[int, int] = {}
        for doc in self._db.tasks.find(
            {"state": str(TaskState.FINISHED), "ended_at": {"$gt": since, "$lte": until}},
            {"ended_at": 1, "start": 1, "end": 1, "step": 1, "_id": 0},
        ):
            hour = int(doc["ended_at"] // 3600)
            hours[hour] = hours.get(hour, 0) + (doc["end"] - doc["start"]) // doc["step"] + 1
        return hours

    @_guarded
    def runnable_jobs(self) -> list[Job]:
        docs = list(
            self._db.jobs.find(
                {"control": str(JobControl.ACTIVE), "n_queued": {"$gt": 0}}, {"spec": 0}
            )
        )
        return self._jobs_out(docs)

    @_guarded
    def next_queued(
        self, job_id: int, limit: int, *, ready: Callable[[FrameBlock], bool] | None = None
    ) -> list[Task]:
        if limit <= 0:
            return []
        query: dict[str, Any] = {"job_id": job_id, "state": str(TaskState.QUEUED)}
        order = [("idx", 1)]
        try:
            spec = self._specs.get(job_id) or self._specs_of([self._job_doc(job_id)])[0]
        except NotFound:
            return []
        if spec is not None and spec.order != "sequential":  # its tasks have a rank
            query["rank"] = {"$exists": True}
            order = [("rank", 1), ("idx", 1)]
        if ready is None:
            return [_task(doc) for doc in self._db.tasks.find(query).sort(order).limit(limit)]
        # Read on in the job's order, the frames only, until *limit* tasks are ready.
        ids = []
        frames = {"start": 1, "end": 1, "step": 1}
        for doc in self._db.tasks.find(query, frames).sort(order).batch_size(1000):
            if ready(FrameBlock(doc["start"], doc["end"], doc["step"])):
                ids.append(doc["_id"])
                if len(ids) >= limit:
                    break
        found = {doc["_id"]: _task(doc) for doc in self._db.tasks.find({"_id": {"$in": ids}})}
        return [found[task_id] for task_id in ids if task_id in found]

    @_guarded
    def hold_tasks(self, job_id: int, reasons: dict[int, str | None]) -> None:
        for index, reason in reasons.items():
            self._db.tasks.update_one(
                {"job_id": job_id, "idx": index, "state": str(TaskState.QUEUED)},
                {"$set": {"reason": reason}},
            )

    def _dispatch_allowed(self, s: Any, job_id: int, computer: str) -> bool:
        job = self._db.jobs.find_one({"_id": job_id}, {"control": 1}, session=s)
        host = self._db.hosts.find_one(
            {"job_id": job_id, "computer": computer, "blocked": True}, {"_id": 1}, session=s
        )
        return job is not None and policy.may_dispatch(
            state=TaskState.QUEUED, control=job["control"], host_blocked=host is not None
        )

    @_guarded
    def mark_dispatched(
        self, task_id: int, attempt_id: str, engine_id: int, computer: str, log_path: str = ""
    ) -> bool:
        return self.mark_dispatched_many(
            [Claim(task_id, attempt_id, engine_id, computer, log_path)]
        )[0]

    @_guarded
    def mark_dispatched_many(self, claims: list[Claim]) -> list[bool]:
        job_ids = self._write(lambda s: [self._claim(s, claim) for claim in claims])
        dispatched = []
        for claim, job_id in zip(claims, job_ids, strict=True):
            moved = job_id is not None
            if (
                moved
                and not self.transactions
                and not self._dispatch_allowed(None, job_id, claim.computer)
            ):
                # A stop, a delete or a block written between the check and the move: it wins.
                self.requeue_attempts(
                    [claim.attempt_id],
                    "its job was stopped, or the host blocked, as it was sent",
                    lost=False,
                )
                moved = False
            dispatched.append(moved)
        return dispatched

    def _claim(self, s: Any, claim: Claim) -> int | None:
        """queued -> dispatched for one claim; the task's job if it moved, else None."""
        task = self._db.tasks.find_one({"_id": claim.task_id}, session=s)
        if task is None or task["state"] != TaskState.QUEUED:
            return None
        if not self._dispatch_allowed(s, task["job_id"], claim.computer):
            return None
        fields = policy.dispatch_fields(
            attempts=task.get("attempts", 0),
            attempt_id=claim.attempt_id,
            engine_id=claim.engine_id,
            computer=claim.computer,
            log_path=claim.log_path,
            now=time.time(),
        )
        return task["job_id"] if self._move(s, task, TaskState.DISPATCHED, **fields) else None

    def _active(self, attempt_id: str, s: Any = None) -> dict[str, Any] | None:
        return self._db.tasks.find_one(
            {"attempt_id": attempt_id, "state": {"$in": _ACTIVE}}, session=s
        )

    @_guarded
    def mark_running(self, attempt_id: str, progress: float, tail: str) -> None:
        def change(s: Any) -> None:
            task = self._active(attempt_id, s)
            if task is not None:
                self._move(
                    s, task, TaskState.RUNNING, progress=progress, tail=tail[-policy.TAIL_CHARS :]
                )

        self._write(change)

    @_guarded
    def record_result(self, attempt_id: str, result: dict[str, Any]) -> str | None:
        return self.record_results([(attempt_id, result)])[0]

    @_guarded
    def record_results(self, results: list[tuple[str, dict[str, Any]]]) -> list[str | None]:
        return self._write(lambda s: [self._record_one(s, a, result) for a, result in results])

    def _record_one(self, s: Any, attempt_id: str, result: dict[str, Any]) -> str | None:
        db = self._db
        task = self._active(attempt_id, s)
        if task is None:
            return None
        job = db.jobs.find_one({"_id": task["job_id"]}, {"spec": 1, "priority": 1}, session=s)
        if job is None:
            return None  # deleted: its tasks are on their way out
        fields, seconds = policy.result_fields(
            result,
            started_at=task.get("started_at"),
            log_path=task.get("log_path"),
            now=time.time(),
        )
        computer = task.get("computer")
        if result.get("status") == "finished":
            if not self._move(s, task, TaskState.FINISHED, progress=1.0, reason=None, **fields):
                return None
            db.jobs.update_one(
                {"_id": task["job_id"]},
                {"$inc": {"task_seconds": seconds, "timed_tasks": 1}},
                session=s,
            )
            return str(TaskState.FINISHED)
        step = policy.after_failed_result(
            result,
            failures=task.get("failures", 0),
            retries=json.loads(job["spec"])["retries"],
        )
        if not self._move(
            s,
            task,
            step.state,
            failures=step.failures,
            reason=step.reason,
            attempt_id=None,
            engine_id=None,
            **fields,
            **step.fields,
        ):
            return None
        if computer and step.host_failure:
            db.hosts.update_one(
                {"job_id": task["job_id"], "computer": computer},
                {"$inc": {"failures": 1}, "$setOnInsert": {"blocked": False}},
                upsert=True,
                session=s,
            )
        self._event(
            s,
            *policy.failed_event(task["idx"], computer, step.reason, step.fields["failure_class"]),
            job_id=task["job_id"],
            task_index=task["idx"],
            computer=computer,
        )
        return str(step.state)

    @_guarded
    def fail_task(self, task_id: int, reason: str) -> None:
        def change(s: Any) -> None:
            task = self._db.tasks.find_one({"_id": task_id}, session=s)
            if task is None or task["state"] != TaskState.QUEUED:
                return
            if self._move(s, task, TaskState.ERROR, reason=reason, attempt_id=None):
                self._event(
                    s,
                    *policy.task_error_event(task["idx"], reason),
                    job_id=task["job_id"],
                    task_index=task["idx"],
                )

        self._write(change)

    @_guarded
    def fail_queued_tasks(self, job_id: int, reason: str) -> int:
        db = self._db
        queued, error = TaskState.QUEUED, TaskState.ERROR

        def change(s: Any) -> int:
            # Tasks that failed before keep their own last failure in the reason: one update
            # each.  The others share one reason and one update.
            failed_before = list(
                db.tasks.find(
                    {"job_id": job_id, "state": str(queued), "reason": {"$type": "string"}},
                    session=s,
                )
            )
            count = 0
            for task in failed_before:
                full = policy.queued_failure_reason(reason, task["reason"])
                count += self._move(s, task, error, reason=full, attempt_id=None)
            count += self._move_all(
                s,
                job_id,
                queued,
                error,
                {"reason": policy.queued_failure_reason(reason, None), "attempt_id": None},
            )
            if count:
                self._event(s, *policy.queued_failed_event(count, reason), job_id=job_id)
            return count

        return self._write(change)

    @_guarded
    def requeue_attempts(self, attempt_ids: list[str], reason: str, *, lost: bool) -> int:
        def change(s: Any) -> int:
            count = 0
            for attempt_id in attempt_ids:
                task = self._active(attempt_id, s)
                if task is None:
                    continue
                times_lost = task.get("lost", 0) + (1 if lost else 0)
                new, full_reason = policy.after_loss(
                    times_lost=times_lost, counted=lost, max_lost=self.max_lost, reason=reason
                )
                fields = policy.loss_fields(times_lost, full_reason, time.time())
                if not self._move(s, task, new, **fields):
                    continue
                count += 1
                self._event(
                    s,
                    *policy.requeued_event(task["idx"], full_reason),
                    job_id=task["job_id"],
                    task_index=task["idx"],
                    computer=task.get("computer"),
                )
            return count

        return self._write(change) if attempt_ids else 0

    @_guarded
    def active_dispatches(self) -> list[Dispatch]:
        jobs = {doc["_id"] for doc in self._db.jobs.find({}, {"_id": 1})}
        return [
            _dispatch(doc)
            for doc in self._db.tasks.find({"state": {"$in": _ACTIVE}})
            if doc["job_id"] in jobs
        ]

    # -- computers and pools ------------------------------------------------------------------

    @_guarded
    def upsert_computer(self, info: dict[str, Any]) -> Computer:
        name = info["name"]
        now = time.time()
        stored = json.dumps({k: v for k, v in info.items() if k not in ("name", "pools")})
        db = self._db
        db.computers.update_one(
            {"_id": name},
            {
                "$set": {"info": stored, "last_seen": now, "info_at": now},
                "$setOnInsert": {"enabled": True, "max_tasks": None},
            },
            upsert=True,
        )
        for pool in [p for p in info.get("pools") or [] if p]:
            with contextlib.suppress(DuplicateKeyError):
                db.pools.update_one(
                    {"_id": pool}, {"$setOnInsert": {"description": ""}}, upsert=True
                )
            with contextlib.suppress(DuplicateKeyError):
                db.members.update_one(
                    {"pool": pool, "computer": name}, {"$setOnInsert": {}}, upsert=True
                )
        return self.get_computer(name)

    @_guarded
    def touch_computers(self, names: list[str], at: float) -> None:
        if names:
            self._db.computers.update_many({"_id": {"$in": names}}, {"$set": {"last_seen": at}})

    def _computers(self, query: dict[str, Any]) -> list[Computer]:
        """Computers and their pools; a query by name reads only that computer's memberships
        (see SQLiteStore._computers)."""
        pools: dict[str, list[str]] = {}
        members = {"computer": query["_id"]} if isinstance(query.get("_id"), str) else {}
        for row in self._db.members.find(members, {"pool": 1, "computer": 1}).sort("pool", 1):
            pools.setdefault(row["computer"], []).append(row["pool"])
        computers = []
        for doc in self._db.computers.find(query).sort("_id", 1):
            info = json.loads(doc["info"])
            computers.append(
                computer_from_info(
                    doc["_id"],
                    info,
                    pools=pools.get(doc["_id"], []),
                    enabled=doc.get("enabled", True),
                    max_tasks=doc.get("max_tasks"),
                    last_seen=doc.get("last_seen"),
                    info_at=doc.get("info_at"),
                )
            )
        return computers

    @_guarded
    def list_computers(self) -> list[Computer]:
        return self._computers({})

    @_guarded
    def get_computer(self, name: str) -> Computer:
        found = self._computers({"_id": name})
        if not found:
            raise NotFound(f"no computer {name!r}: see `drqueue computers`")
        return found[0]

    @_guarded
    def update_computer(self, name: str, *, actor: str = "", **changes: Any) -> None:
        allowed = {"enabled", "max_tasks"}
        if set(changes) - allowed:
            raise ValueError(f"cannot change {sorted(set(changes) - allowed)}")
        values = {key: bool(v) if key == "enabled" else v for key, v in changes.items()}

        def change(s: Any) -> None:
            if not self._db.computers.update_one(
                {"_id": name}, {"$set": values}, session=s
            ).matched_count:
                raise NotFound(f"no computer {name!r}: see `drqueue computers`")
            self._event(
                s, *policy.computer_changed_event(name, changes), computer=name, actor=actor
            )

        self._write(change)

    @_guarded
    def list_pools(self) -> list[dict[str, Any]]:
        members: dict[str, list[str]] = {}
        for row in self._db.members.find({}, {"pool": 1, "computer": 1}).sort("computer", 1):
            members.setdefault(row["pool"], []).append(row["computer"])
        return [
            {
                "name": doc["_id"],
                "description": doc.get("description", ""),
                "members": members.get(doc["_id"], []),
            }
            for doc in self._db.pools.find().sort("_id", 1)
        ]

    @_guarded
    def create_pool(self, name: str, description: str = "", *, actor: str = "") -> None:
        def change(s: Any) -> None:
            try:
                self._db.pools.insert_one({"_id": name, "description": description}, session=s)
            except DuplicateKeyError:
                raise Conflict(f"pool {name!r} already exists") from None
            self._event(s, *policy.pool_created_event(name), actor=actor)

        self._write(change)

    @_guarded
    def delete_pool(self, name: str, *, actor: str = "") -> None:
        def change(s: Any) -> None:
            if not self._db.pools.delete_one({"_id": name}, session=s).deleted_count:
                raise NotFound(f"no pool {name!r}: see `drqueue pools`")
            self._db.members.delete_many({"pool": name}, session=s)
            self._event(s, *policy.pool_deleted_event(name), actor=actor)

        self._write(change)

    @_guarded
    def set_pool_member(self, pool: str, computer: str, member: bool, *, actor: str = "") -> None:
        db = self._db

        def change(s: Any) -> None:
            if not db.pools.find_one({"_id": pool}, {"_id": 1}, session=s):
                raise NotFound(f"no pool {pool!r}: see `drqueue pools`")
            if not db.computers.find_one({"_id": computer}, {"_id": 1}, session=s):
                raise NotFound(f"no computer {computer!r}: see `drqueue computers`")
            if member:
                db.members.update_one(
                    {"pool": pool, "computer": computer},
                    {"$setOnInsert": {}},
                    upsert=True,
                    session=s,
                )
            elif not db.members.delete_one(
                {"pool": pool, "computer": computer}, session=s
            ).deleted_count:
                raise NotFound(f"{computer} is not in pool {pool!r}")
            self._event(
                s, *policy.pool_member_event(computer, pool, member), computer=computer, actor=actor
            )

        self._write(change)

    # -- events -----------------------------------------------------------------------------

    @_guarded
    def add_event(self, kind: str, message: str, **about: Any) -> None:
        self._write(lambda s: self._event(s, kind, message, **about))

    @_guarded
    def events(
        self,
        *,
        job_id: int | None = None,
        since_id: int = 0,
        before_id: int | None = None,
        limit: int = 200,
        kind: str | None = None,
        actor: str | None = None,
    ) -> list[Event]:
        if limit <= 0:
            return []
        ids: dict[str, Any] = {"$gt": since_id}
        if before_id is not None:
            ids["$lt"] = before_id
        query: dict[str, Any] = {"_id": ids}
        if job_id is not None:
            query["job_id"] = job_id
        if kind is not None:  # base.kind_matches
            query["$or"] = [{"kind": kind}, {"kind": {"$regex": "^" + re.escape(kind + ".")}}]
        if actor is not None:
            query["actor"] = actor
        docs = list(self._db.events.find(query).sort("_id", -1).limit(limit))
        return [_event_out(doc) for doc in reversed(docs)]

    # -- the outbox: mail and webhooks (the notice's key is its _id) ---------------------------------

    @_guarded
    def notify_cursor(self) -> int | None:
        doc = self._db.meta.find_one({"_id": "notify_cursor"})
        return None if doc is None else int(doc["value"])

    @_guarded
    def enqueue_notices(self, notices: list[Notice], cursor: int) -> None:
        """Without transactions: the notices first (an upsert that keeps one already there),
        then the cursor; a master stopped between reads the events again and adds nothing."""

        def change(s: Any) -> None:
            for n in notices:
                doc = dataclasses.asdict(n)
                doc["_id"] = doc.pop("key")
                doc["done_at"] = None
                self._db.outbox.update_one(
                    {"_id": n.key}, {"$setOnInsert": doc}, upsert=True, session=s
                )
            self._db.meta.update_one(
                {"_id": "notify_cursor"}, {"$set": {"value": cursor}}, upsert=True, session=s
            )
            if notices:
                self._db.outbox.delete_many(
                    {"done_at": {"$lt": time.time() - NOTICES_KEPT_SECONDS}}, session=s
                )

        self._write(change)

    @_guarded
    def due_notices(self, channel: str, now: float, limit: int = 20) -> list[Notice]:
        docs = self._db.outbox.find(
            {"channel": channel, "due_at": {"$ne": None, "$lte": now}}
        ).sort("due_at", 1)
        notices = []
        for doc in docs.limit(limit):
            doc["key"] = doc.pop("_id")
            doc.pop("done_at", None)
            notices.append(Notice(**doc))
        return notices

    @_guarded
    def finish_notice(self, notice: Notice, event: tuple[str, str]) -> None:
        def change(s: Any) -> None:
            self._db.outbox.update_one(
                {"_id": notice.key},
                {"$set": {"due_at": None, "done_at": time.time()}, "$inc": {"attempts": 1}},
                session=s,
            )
            self._event(s, *event, job_id=notice.job_id)

        self._write(change)

    @_guarded
    def retry_notice(
        self, notice: Notice, due_at: float, error: str, event: tuple[str, str]
    ) -> None:
        def change(s: Any) -> None:
            self._db.outbox.update_one(
                {"_id": notice.key, "due_at": {"$ne": None}},
                {"$set": {"due_at": due_at, "last_error": error}, "$inc": {"attempts": 1}},
                session=s,
            )
            self._event(s, *event, job_id=notice.job_id)

        self._write(change)

    # -- moving a farm between stores -----------------------------------------------------------

    def export_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every stored object in transfer's form, read collection by collection: a copy of a
        store whose master is stopped is exact; one taken while a master runs may catch a job
        between two changes (the counts are recounted at import either way)."""
        db = self._db
        try:
            for doc in db.pools.find().sort("_id", 1):
                yield "pool", transfer.pool_record(doc["_id"], doc.get("description", ""))
            for doc in db.computers.find().sort("_id", 1):
                yield (
                    "computer",
                    transfer.computer_record(
                        doc["_id"],
                        json.loads(doc["info"]),
                        enabled=doc.get("enabled", True),
                        max_tasks=doc.get("max_tasks"),
                        last_seen=doc.get("last_seen"),
                        info_at=doc.get("info_at"),
                    ),
                )
            for doc in db.members.find().sort([("pool", 1), ("computer", 1)]):
                yield "member", transfer.member_record(doc["pool"], doc["computer"])
            jobs = []
            for doc in db.jobs.find({"control": {"$ne": CREATING}}).sort("_id", 1):
                jobs.append(doc["_id"])
                yield (
                    "job",
                    transfer.job_record(
                        doc["_id"],
                        _spec_from(doc),
                        control=doc["control"],
                        submitted_at=doc["submitted_at"],
                        finished_at=doc.get("finished_at"),
                        task_seconds=doc.get("task_seconds", 0.0),
                        timed_tasks=doc.get("timed_tasks", 0),
                        waiting_reason=doc.get("waiting_reason"),
                        idempotency_key=doc.get("idempotency_key"),
                    ),
                )
            for job_id in jobs:
                for doc in db.tasks.find({"job_id": job_id}).sort("idx", 1):
                    yield "task", transfer.task_record(_task(doc))
            exported = set(jobs)
            for doc in db.hosts.find().sort([("job_id", 1), ("computer", 1)]):
                if doc["job_id"] in exported:
                    yield (
                        "host",
                        transfer.host_record(
                            doc["job_id"],
                            doc["computer"],
                            doc.get("failures", 0),
                            doc.get("blocked", False),
                        ),
                    )
            for doc in db.events.find().sort("_id", 1):
                yield "event", transfer.event_record(_event_out(doc))
        except ConnectionFailure as exc:
            raise _unavailable(self.where, exc) from None

    @_guarded
    def import_records(self, records: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, int]:
        """Write the records in batches, with the schema document marked "importing" until the
        last: an import that fails removes what it wrote, and one cut short (the process
        killed) leaves a store the master refuses to open, never half a farm."""
        if not self.is_empty():
            raise StoreError(transfer.NOT_EMPTY)
        db = self._db
        db.meta.update_one({"_id": "schema"}, {"$set": {"importing": True}}, upsert=True)
        try:
            counts = self._import(records)
        except BaseException:
            with contextlib.suppress(PyMongoError):
                for name in COLLECTIONS:
                    db[name].delete_many({})
                db.counters.update_many({}, {"$set": {"next": 0}})
                db.meta.update_one({"_id": "schema"}, {"$unset": {"importing": ""}})
            raise
        db.meta.update_one({"_id": "schema"}, {"$unset": {"importing": ""}})
        return counts

    def _import(self, records: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, int]:
        db = self._db
        counts = dict.fromkeys(transfer.STORE_KINDS, 0)
        batches: dict[str, list[dict[str, Any]]] = {}
        states: dict[int, list[str]] = {}
        largest = {"jobs": 0, "tasks": 0, "events": 0}

        def flush(name: str) -> None:
            if batches.get(name):
                db[name].insert_many(batches[name], ordered=False)
                batches[name] = []

        for kind, record in records:
            counts[kind] += 1
            name, doc = self._document(kind, record)
            if kind == "task":
                states.setdefault(record["job_id"], []).append(record["state"])
            if name in largest:
                largest[name] = max(largest[name], doc["_id"])
            batch = batches.setdefault(name, [])
            batch.append(doc)
            if len(batch) >= TASKS_PER_INSERT:
                flush(name)
        for name in list(batches):
            flush(name)
        for job_id in db.jobs.distinct("_id"):
            self._set_counts(job_id, policy.count(states.get(job_id, ())))
        # A task's rank is derived from its job's order, like its counts: not exported.
        for doc in db.jobs.find({}, {"spec": 1}):
            order = json.loads(doc["spec"]).get("order", "sequential")
            if order == "sequential":
                continue
            ranks = task_ranks(len(states.get(doc["_id"], ())), order)
            for first in range(0, len(ranks), TASKS_PER_INSERT):
                db.tasks.bulk_write(
                    [
                        pymongo.UpdateOne(
                            {"job_id": doc["_id"], "idx": index}, {"$set": {"rank": rank}}
                        )
                        for index, rank in enumerate(ranks[first : first + TASKS_PER_INSERT], first)
                    ]
                )
        for name, value in largest.items():
            db.counters.update_one({"_id": name}, {"$max": {"next": value}}, upsert=True)
        return counts

    @staticmethod
    def _document(kind: str, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The collection and document of one transfer record."""
        if kind == "pool":
            return "pools", {"_id": record["name"], "description": record["description"]}
        if kind == "computer":
            return "computers", {
                "_id": record["name"],
                "info": json.dumps(record["info"]),
                "enabled": record["enabled"],
                "max_tasks": record["max_tasks"],
                "last_seen": record["last_seen"],
                "info_at": record["info_at"],
            }
        if kind == "member":
            return "members", {"pool": record["pool"], "computer": record["computer"]}
        if kind == "job":
            spec = transfer.spec_from_record(record["spec"])
            doc = {
                "_id": record["id"],
                "spec": _spec_json(spec),
                "owner": spec.owner,
                "priority": spec.priority,
                "after": list(spec.after),
                "after_frames": list(spec.after_frames),
                "control": record["control"],
                "submitted_at": record["submitted_at"],
                "finished_at": record["finished_at"],
                "n_total": 0,
                **{field: 0 for field in _FIELD.values()},
                "task_seconds": record["task_seconds"],
                "timed_tasks": record["timed_tasks"],
                "waiting_reason": record["waiting_reason"],
            }
            if record["idempotency_key"] is not None:
                doc["idempotency_key"] = record["idempotency_key"]
            return "jobs", doc
        if kind == "task":
            doc = {
                "_id": record["id"],
                "job_id": record["job_id"],
                "idx": record["index"],
                **{k: v for k, v in record.items() if k not in ("id", "job_id", "index")},
            }
            return "tasks", doc
        if kind == "host":
            return "hosts", dict(record)
        if kind == "event":
            return "events", {"_id": record["id"], **{k: v for k, v in record.items() if k != "id"}}
        raise ValueError(f"a store holds no {kind} records")
