"""The store's interface: what the master needs from a database.

The store is the single source of truth (ARCHITECTURE.md): jobs, tasks,
computers, pools and events.  Every task transition is one transaction, and
goes through the backend's one transition function, which asks
:func:`drqueue.store.policy.move` (the check against :data:`drqueue.models.TRANSITIONS`)
and keeps the job's task counts in step.  What the next state is, and every other farm
rule, comes from :mod:`drqueue.store.policy`: a backend stores, it does not decide.

Backends sit side by side (``sqlite.py``, the default; ``memory.py``, for tests; ``mongo.py``
later) and share the contract tests in ``tests/unit/test_store.py``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from drqueue.models import Computer, FrameBlock, Job, JobSpec, Task, TaskState
from drqueue.store.jobquery import JobPage, JobQuery

#: The schema version this code writes; a store with a newer one is refused.
SCHEMA_VERSION = 3


@dataclass(slots=True)
class Dispatch:
    """A task the dispatcher has committed to one engine (state *dispatched* or *running*)."""

    task_id: int
    job_id: int
    attempt_id: str
    engine_id: int
    computer: str
    started_at: float | None


@dataclass(slots=True)
class Claim:
    """One task the dispatcher is about to send (see :meth:`Store.mark_dispatched_many`)."""

    task_id: int
    attempt_id: str
    engine_id: int
    computer: str
    log_path: str = ""


@dataclass(slots=True)
class Event:
    id: int
    at: float
    kind: str
    message: str
    job_id: int | None = None
    task_index: int | None = None
    computer: str | None = None
    actor: str | None = None


@dataclass(slots=True)
class Notice:
    """A mail or webhook POST the master owes, kept in the store's outbox until it is sent or
    given up, so that a restart of the master loses none (:mod:`drqueue.master.notify`)."""

    #: Unique: the event it comes from, its channel and its target.  A notice is enqueued once
    #: per key, however often the notifier reads the same event.
    key: str
    #: "email" or "webhook".
    channel: str
    #: What events show it went to: the recipients, or the webhook URL without its secrets.
    target: str
    #: What the sender needs (JSON): the message, or the body to POST and where.
    payload: dict[str, Any]
    #: The event it comes from, and its job (the delivery events are the job's too).
    event_id: int
    job_id: int | None
    created_at: float
    #: When it is tried (next); None once it was sent or given up.
    due_at: float | None
    attempts: int = 0
    last_error: str = ""


#: Seconds a notice is kept in the outbox after it was sent or given up (it stops a notifier
#: that reads its event again from sending it twice), then it is removed.
NOTICES_KEPT_SECONDS = 7 * 86400.0


class Store(abc.ABC):
    """Everything the master reads and writes.  Only the master holds a Store."""

    #: Times a task may be lost with its engine before it is an error (it probably crashes
    #: its engine); the master sets it from its config (``max_lost``).
    max_lost: int = 5

    # -- life --------------------------------------------------------------------------------

    @abc.abstractmethod
    def check_integrity(self) -> list[str]:
        """Check and repair what a crash can leave; return what was found, one line each."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def backup(self, path: str) -> None:
        """Write a consistent copy of the store to *path* while it is in use."""

    #: Seconds a master's claim on the store lasts unless renewed (claim_master).
    MASTER_LEASE_SECONDS = 30.0

    def claim_master(self, holder: str) -> None:
        """Claim the store for the master *holder* for MASTER_LEASE_SECONDS, or renew its
        claim; StoreError if another master's claim is alive.  A store in the master's root
        (SQLite's default) is already held by the root's master lock, so the default does
        nothing; a database many machines can reach (MongoDB) keeps the claim in itself."""
        return

    def release_master(self, holder: str) -> None:
        """Give up *holder*'s claim (a master that stops), so the next may start at once."""
        return

    def compact(self) -> dict[str, int]:
        """Give the space of deleted rows back to the file system; return the bytes the store
        took ``before`` and ``after``.  A backend that needs no compaction returns them equal."""
        return {"before": 0, "after": 0}

    # -- moving a farm between stores (drqueue.store.transfer) -----------------------------------

    @abc.abstractmethod
    def is_empty(self) -> bool:
        """No job, task, computer, pool or event is stored."""

    @abc.abstractmethod
    def export_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every stored object as (kind, record), in the neutral form and the kind order of
        :mod:`drqueue.store.transfer` (pools, computers, members, jobs, tasks, hosts, events).
        A job's counts are not exported: they are derived from its tasks."""

    @abc.abstractmethod
    def import_records(self, records: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, int]:
        """Write checked records (transfer.read) into this store, which must be empty
        (StoreError otherwise), all or nothing: on any error nothing of them stays.  Ids are
        kept, each job's counts are recounted from its tasks (policy.count), and new ids
        continue after the largest imported.  Returns how many of each kind were written."""

    # -- jobs --------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_job(
        self,
        spec: JobSpec,
        blocks: Sequence[FrameBlock],
        *,
        actor: str = "",
        idempotency_key: str | None = None,
    ) -> int:
        """Store a job and all its tasks; return the job id.

        Other writers are not held up for long (a backend writes the tasks in short
        transactions), and no read sees the job before all its tasks are stored; a master
        killed meanwhile leaves nothing visible, and check_integrity removes the rest.
        *idempotency_key*, if given, must be new for the owner: see job_by_key."""

    @abc.abstractmethod
    def job_by_key(self, owner: str, key: str) -> int | None:
        """The id of *owner*'s job submitted with Idempotency-Key *key*, or None;
        StoreBusy while that job is still being created."""

    @abc.abstractmethod
    def get_job(self, job_id: int) -> Job:
        """The job, or NotFound."""

    @abc.abstractmethod
    def list_jobs(self, *, owner: str | None = None, limit: int | None = None) -> list[Job]: ...

    @abc.abstractmethod
    def page_jobs(self, query: JobQuery) -> JobPage:
        """The jobs *query* keeps, in its order, its page of them, and how many matched
        (:mod:`drqueue.store.jobquery` defines what each filter and sort key means)."""

    def data_version(self) -> int | None:
        """A number that changes whenever a write to this store is committed, by anyone, and
        stays the same otherwise; None when the backend cannot tell (then nothing read from it
        is kept: :mod:`drqueue.master.jobpages`)."""
        return None

    @abc.abstractmethod
    def job_status_counts(self) -> dict[str, int]:
        """How many jobs have each status (:data:`jobquery.STATUSES`, every one named)."""

    @abc.abstractmethod
    def job_ids(self) -> set[int]: ...

    @abc.abstractmethod
    def set_job_control(self, job_id: int, control: str, *, actor: str = "") -> None: ...

    @abc.abstractmethod
    def set_job_priority(self, job_id: int, priority: int, *, actor: str = "") -> None: ...

    @abc.abstractmethod
    def delete_job(self, job_id: int, *, force: bool = False, actor: str = "") -> list[Dispatch]:
        """Delete a job; refused (Conflict) while tasks run unless *force*.  Returns what ran."""

    @abc.abstractmethod
    def requeue_tasks(
        self, job_id: int, *, which: str, index: int | None = None, actor: str = ""
    ) -> list[Dispatch]:
        """Send tasks back to queued: which="all" (rerun), "failed" (error+cancelled),
        "one" (the task *index*).  Active ones are cancelled first; returns those."""

    @abc.abstractmethod
    def kill_tasks(
        self, job_id: int, *, index: int | None = None, actor: str = ""
    ) -> list[Dispatch]:
        """Take the job's running tasks (or task *index*) off their engines, back to queued.
        The store changes first, so the runner's late result is a stale duplicate."""

    @abc.abstractmethod
    def set_job_waiting_reason(self, reasons: dict[int, str | None]) -> None: ...

    @abc.abstractmethod
    def block_host(self, job_id: int, computer: str) -> None: ...

    @abc.abstractmethod
    def blocked_hosts(self) -> dict[int, set[str]]:
        """Every job's blocked hosts."""

    @abc.abstractmethod
    def host_failures(self, job_id: int) -> dict[str, int]:
        """Failures of the job's tasks per computer."""

    @abc.abstractmethod
    def unblock_host(self, job_id: int, computer: str, *, actor: str = "") -> None: ...

    # -- tasks -------------------------------------------------------------------------------

    @abc.abstractmethod
    def list_tasks(
        self, job_id: int, *, state: str | None = None, offset: int = 0, limit: int | None = None
    ) -> list[Task]:
        """The job's tasks by index; *state* keeps one state, *offset*/*limit* take a page."""

    @abc.abstractmethod
    def get_task(self, job_id: int, index: int) -> Task: ...

    @abc.abstractmethod
    def task_for_frame(self, job_id: int, frame: int) -> Task: ...

    @abc.abstractmethod
    def task_states(self, job_id: int) -> list[TaskState]:
        """The state of each of the job's tasks, by index (NotFound for no job): the frame
        grid of a 100,000-task job without reading its tasks."""

    @abc.abstractmethod
    def last_finished_task(self, job_id: int) -> Task | None:
        """The job's finished task that ended last, or None (NotFound for no job)."""

    @abc.abstractmethod
    def frames_finished(self, since: float, until: float) -> dict[int, int]:
        """Frames of the tasks now finished whose ``ended_at`` is in (since, until], summed by
        hour (``int(ended_at // 3600)``, hours since the epoch): the live stream's chart."""

    @abc.abstractmethod
    def runnable_jobs(self) -> list[Job]:
        """Active jobs with queued tasks, for the dispatcher."""

    @abc.abstractmethod
    def next_queued(
        self, job_id: int, limit: int, *, ready: Callable[[FrameBlock], bool] | None = None
    ) -> list[Task]:
        """The job's first *limit* queued tasks in its order (``spec.order``: lowest rank
        first, then by index).  With *ready*, only the tasks whose frame block it accepts
        (the frame-by-frame dependencies: :mod:`drqueue.master.framedeps`), read on in order
        until *limit* are found."""

    @abc.abstractmethod
    def hold_tasks(self, job_id: int, reasons: dict[int, str | None]) -> None:
        """Set the reason of the job's queued tasks by index (None clears it): why a task is
        held (an upstream frame it waits for ended in error).  A task no longer queued is left
        as it is; a dispatch clears the reason."""

    @abc.abstractmethod
    def mark_dispatched(
        self, task_id: int, attempt_id: str, engine_id: int, computer: str, log_path: str = ""
    ) -> bool:
        """queued -> dispatched, committed before the task is sent; False if it was not queued,
        or its job was stopped or the host blocked for it since.  *log_path* is where the
        runner writes the attempt's log (empty: keep the last one)."""

    def mark_dispatched_many(self, claims: list[Claim]) -> list[bool]:
        """:meth:`mark_dispatched` for each claim, in order, in one transaction (one round of
        the dispatcher's sends); whether each task was dispatched.  The default makes one
        transaction of each: a backend that can do better overrides it."""
        return [
            self.mark_dispatched(c.task_id, c.attempt_id, c.engine_id, c.computer, c.log_path)
            for c in claims
        ]

    @abc.abstractmethod
    def mark_running(self, attempt_id: str, progress: float, tail: str) -> None:
        """dispatched -> running, or a progress update of a running attempt."""

    @abc.abstractmethod
    def record_result(self, attempt_id: str, result: dict[str, Any]) -> str | None:
        """Record a runner result in one transaction; return the task's new state, or None
        when no task expects this attempt (a stale duplicate, ignored)."""

    def record_results(self, results: list[tuple[str, dict[str, Any]]]) -> list[str | None]:
        """:meth:`record_result` for each (attempt id, result), in order, in one transaction
        (the results the dispatcher collected in one round); each task's new state, or None
        for a stale one.  The default makes one transaction of each: a backend that can do
        better overrides it."""
        return [self.record_result(attempt_id, result) for attempt_id, result in results]

    @abc.abstractmethod
    def fail_task(self, task_id: int, reason: str) -> None:
        """Turn a queued task into an error: nothing can ever run it."""

    @abc.abstractmethod
    def fail_queued_tasks(self, job_id: int, reason: str) -> int:
        """Turn every queued task of the job into an error, in one transaction; return how many."""

    @abc.abstractmethod
    def requeue_attempts(self, attempt_ids: list[str], reason: str, *, lost: bool) -> int:
        """Put the tasks of these attempts back in the queue (engine lost); return how many.

        *lost* counts the loss against the task (see max_lost).
        """

    def requeue_all_active(self, reason: str) -> int:
        """At master start: every dispatched or running task goes back to queued (its loss
        not counted against it: the master, not the task, went away)."""
        attempts = [d.attempt_id for d in self.active_dispatches()]
        return self.requeue_attempts(attempts, reason, lost=False)

    @abc.abstractmethod
    def active_dispatches(self) -> list[Dispatch]: ...

    # -- computers and pools -------------------------------------------------------------------

    @abc.abstractmethod
    def upsert_computer(self, info: dict[str, Any]) -> Computer:
        """Record a slave's collected info; keeps enabled, max_tasks and pool membership."""

    @abc.abstractmethod
    def touch_computers(self, names: list[str], at: float) -> None: ...

    @abc.abstractmethod
    def list_computers(self) -> list[Computer]: ...

    @abc.abstractmethod
    def get_computer(self, name: str) -> Computer: ...

    @abc.abstractmethod
    def update_computer(self, name: str, *, actor: str = "", **changes: Any) -> None:
        """Change enabled or max_tasks."""

    @abc.abstractmethod
    def list_pools(self) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def create_pool(self, name: str, description: str = "", *, actor: str = "") -> None: ...

    @abc.abstractmethod
    def delete_pool(self, name: str, *, actor: str = "") -> None: ...

    @abc.abstractmethod
    def set_pool_member(
        self, pool: str, computer: str, member: bool, *, actor: str = ""
    ) -> None: ...

    # -- events -------------------------------------------------------------------------------

    @abc.abstractmethod
    def add_event(self, kind: str, message: str, **about: Any) -> None: ...

    @abc.abstractmethod
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
        """The newest *limit* events with since_id < id < before_id (of one job if given), oldest
        first.  Page back through the trail with ``before_id=`` the first id of the last page.
        *kind* keeps that kind and the kinds of its family (``job`` keeps
        ``job.stopped``, ``job.submitted``…: :func:`kind_matches`); *actor* keeps one actor's."""

    # -- the outbox: mail and webhooks (drqueue.master.notify) --------------------------------------

    @abc.abstractmethod
    def notify_cursor(self) -> int | None:
        """The id of the last event the notifier has read, or None if it never ran."""

    @abc.abstractmethod
    def enqueue_notices(self, notices: list[Notice], cursor: int) -> None:
        """Add the *notices* whose key is new and set the notifier's cursor to *cursor*, in one
        transaction (or, without transactions, in that order: a notifier that reads the same
        events again adds nothing twice); remove notices done NOTICES_KEPT_SECONDS ago."""

    @abc.abstractmethod
    def due_notices(self, channel: str, now: float, limit: int = 20) -> list[Notice]:
        """The *channel*'s notices not yet done whose due_at is at most *now*, soonest first."""

    @abc.abstractmethod
    def finish_notice(self, notice: Notice, event: tuple[str, str]) -> None:
        """Mark *notice* done (sent, or given up) and write *event* (kind, message) for its
        job, in one transaction."""

    @abc.abstractmethod
    def retry_notice(
        self, notice: Notice, due_at: float, error: str, event: tuple[str, str]
    ) -> None:
        """Count a failed attempt of *notice*, due again at *due_at*, and write *event*."""


def kind_matches(kind: str, wanted: str) -> bool:
    """Whether an event of *kind* is kept by the ``kind`` filter *wanted*: the same kind, or
    a kind of the family *wanted* (``task`` keeps ``task.failed``)."""
    return kind == wanted or kind.startswith(wanted + ".")


def computer_from_info(
    name: str,
    info: dict[str, Any],
    *,
    pools: list[str],
    enabled: bool,
    max_tasks: int | None,
    last_seen: float | None,
    info_at: float | None,
) -> Computer:
    """A stored computer: what its slave reported (*info*, as upsert_computer keeps it) and
    what the store keeps beside (its pools, enabled, max_tasks, when it was seen)."""
    return Computer(
        name=name,
        hostname=info.get("hostname", ""),
        os=info.get("os", ""),
        arch=info.get("arch", ""),
        cores=info.get("cores", 0),
        ram_mb=info.get("ram_mb", 0),
        free_ram_mb=info.get("free_ram_mb", 0),
        load=info.get("load", 0.0),
        gpus=info.get("gpus", 0),
        pools=pools,
        renderers=list(info.get("renderers", [])),
        enabled=bool(enabled),
        max_tasks=max_tasks,
        slots=info.get("slots", 0),
        last_seen=last_seen,
        info_at=info_at,
    )


def shown_url(url: str) -> str:
    """A store URL as logs and messages show it: without the password it may hold."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':')[0]}:***@{hosts}{slash}{path}"


def sqlite_path(url: str) -> str:
    """The file of a sqlite:/// URL, always absolute: ``sqlite:///srv/drqueue.sqlite`` and
    ``sqlite:////srv/drqueue.sqlite`` both name /srv/drqueue.sqlite.  (A path relative to
    wherever the master happened to start would open a new, empty store from another folder.)"""
    return "/" + url[len("sqlite:///") :].lstrip("/")


def open_store(url: str) -> Store:
    """Open the store a URL names: sqlite:///path (the default), or mongodb://… and
    mongodb+srv://… (a MongoDB database: docs/storage.md)."""
    if url.startswith("sqlite:///"):
        from drqueue.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url))
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from drqueue.store.mongo import MongoStore

        return MongoStore(url)
    from drqueue.errors import ConfigError

    scheme = url.split("://")[0] if "://" in url else url[:40]
    raise ConfigError(
        f"unknown store URL scheme {scheme!r}: use sqlite:///path/to/drqueue.sqlite or "
        "mongodb://host:port/database"
    )
