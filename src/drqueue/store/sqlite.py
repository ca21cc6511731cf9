"""The SQLite store: the embedded default, one file under DRQUEUE_ROOT/db.

WAL mode lets the API read while the dispatcher writes; every write is one
``BEGIN IMMEDIATE`` transaction, so a crash at any instant leaves the last
committed state.  Each thread gets its own connection.

Task counts per state are kept on the job row (``n_queued`` …) so that the
dispatcher and job lists never scan tasks; :meth:`SQLiteStore._move` is the one
function that writes a task's state, and it keeps those counts in step.  What a change
means (the next state, the counters, the event texts) is the farm's policy and comes from
:mod:`drqueue.store.policy`; this module only stores it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from drqueue.errors import Conflict, InvalidJob, NotFound, StoreBusy, StoreError
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
from drqueue.store.jobquery import ACTIVE_STATUSES, STATUSES, JobPage, JobQuery, stalled_jobs
from drqueue.store.policy import TAIL_CHARS

#: The SQL list of the states of a task on an engine: ('dispatched', 'running').
_ACTIVE = "({})".format(", ".join(f"'{state}'" for state in sorted(ACTIVE_STATES)))

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL, owner TEXT NOT NULL, renderer TEXT NOT NULL, scene TEXT,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, step INTEGER NOT NULL,
    block_size INTEGER NOT NULL, priority INTEGER NOT NULL, retries INTEGER NOT NULL,
    timeout REAL, max_parallel INTEGER,
    env TEXT NOT NULL, params TEXT NOT NULL, requirements TEXT NOT NULL,
    after TEXT NOT NULL, notify TEXT NOT NULL, on_failure TEXT NOT NULL DEFAULT '{{}}',
    control TEXT NOT NULL, submitted_at REAL NOT NULL, finished_at REAL,
    n_total INTEGER NOT NULL, n_queued INTEGER NOT NULL DEFAULT 0,
    n_running INTEGER NOT NULL DEFAULT 0, n_finished INTEGER NOT NULL DEFAULT 0,
    n_error INTEGER NOT NULL DEFAULT 0, n_cancelled INTEGER NOT NULL DEFAULT 0,
    task_seconds REAL NOT NULL DEFAULT 0, timed_tasks INTEGER NOT NULL DEFAULT 0,
    waiting_reason TEXT, idempotency_key TEXT,
    after_frames TEXT NOT NULL DEFAULT '[]', task_order TEXT NOT NULL DEFAULT 'sequential',
    first_frame_check INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_runnable ON jobs(n_queued) WHERE n_queued > 0;
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs(owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, step INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,
    lost INTEGER NOT NULL DEFAULT 0,
    computer TEXT, engine_id INTEGER, attempt_id TEXT,
    started_at REAL, ended_at REAL, exit_code INTEGER, peak_rss_kb INTEGER, cpu_seconds REAL,
    progress REAL NOT NULL DEFAULT 0, log_path TEXT, tail TEXT NOT NULL DEFAULT '',
    reason TEXT, outputs TEXT NOT NULL DEFAULT '[]', rank INTEGER NOT NULL DEFAULT 0,
    failure_class TEXT, failure_detail TEXT, min_ram_mb INTEGER
);
CREATE UNIQUE INDEX tasks_job_idx ON tasks(job_id, idx);
CREATE INDEX tasks_job_state ON tasks(job_id, state, idx);
CREATE INDEX tasks_job_rank ON tasks(job_id, state, rank, idx);
CREATE INDEX tasks_attempt ON tasks(attempt_id);
CREATE INDEX tasks_active ON tasks(state) WHERE state IN {_ACTIVE};
CREATE TABLE host_failures (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    computer TEXT NOT NULL, failures INTEGER NOT NULL DEFAULT 0,
    blocked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, computer)
);
CREATE TABLE computers (
    name TEXT PRIMARY KEY, info TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1, max_tasks INTEGER,
    last_seen REAL, info_at REAL
);
CREATE TABLE pools (name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '');
CREATE TABLE pool_members (
    pool TEXT NOT NULL REFERENCES pools(name) ON DELETE CASCADE,
    computer TEXT NOT NULL,
    PRIMARY KEY (pool, computer)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL,
    message TEXT NOT NULL, job_id INTEGER, task_index INTEGER, computer TEXT, actor TEXT
);
CREATE INDEX events_job ON events(job_id, id);
"""

#: Indexes added since a schema version: made, if missing, each time a store is opened (old code
#: reads a store that has them).  tasks_finished_at: the live stream's frames per hour.
#: outbox: the mail and webhooks the master owes (Store.enqueue_notices); old code ignores it.
_LATER_INDEXES = (
    f"CREATE INDEX IF NOT EXISTS tasks_finished_at ON tasks(ended_at) "
    f"WHERE state = '{TaskState.FINISHED}'",
    "CREATE TABLE IF NOT EXISTS outbox (key TEXT PRIMARY KEY, channel TEXT NOT NULL, "
    "target TEXT NOT NULL, payload TEXT NOT NULL, event_id INTEGER NOT NULL, job_id INTEGER, "
    "created_at REAL NOT NULL, due_at REAL, attempts INTEGER NOT NULL DEFAULT 0, "
    "last_error TEXT NOT NULL DEFAULT '', done_at REAL)",
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(channel, due_at) WHERE due_at IS NOT NULL",
    # The sent notices' clean-up: without it, a full scan inside each enqueue's transaction
    # (350-600 ms with half a million kept).
    "CREATE INDEX IF NOT EXISTS outbox_done ON outbox(done_at) WHERE done_at IS NOT NULL",
)

#: A job's status (models.job_status) in SQL, over a row of jobs: what GET /jobs filters and
#: sorts by, and the live stream counts.  The contract suite holds it to Job.status.
_STATUS_SQL = f"""(CASE
    WHEN n_total > 0 AND {" + ".join(f"n_{name}" for name in policy.ENDED_COUNTERS)} = n_total
        THEN CASE WHEN n_error > 0 THEN 'error' WHEN n_cancelled > 0 THEN 'cancelled'
            ELSE 'finished' END
    WHEN control = '{JobControl.STOPPED}' THEN CASE WHEN n_running > 0 THEN 'stopping'
        ELSE 'stopped' END
    WHEN n_running > 0 THEN 'running'
    WHEN after != '[]' AND EXISTS (SELECT 1 FROM json_each(jobs.after) AS d WHERE NOT EXISTS
        (SELECT 1 FROM jobs AS dep WHERE dep.id = d.value AND dep.n_finished = dep.n_total))
        THEN 'waiting'
    ELSE 'queued' END)"""

#: SQL true of a job jobquery.needs_attention keeps, but for the stalled ones (waiting for a
#: job that cannot finish without a user, however long the chain: jobquery.stalled_jobs, which
#: page_jobs finds first and names in ``?``): a task in error or a host blocked.
_ATTENTION_SQL = """(n_error > 0
    OR EXISTS (SELECT 1 FROM host_failures AS h WHERE h.job_id = jobs.id AND h.blocked)
    OR jobs.id IN (SELECT value FROM json_each(?)))"""

#: The SQL each sort key of jobquery.SORTS orders by (the same values as jobquery.SORT_VALUE).
_SORT_SQL = {
    "id": "id",
    "name": "name",
    "owner": "owner",
    "priority": "priority",
    "status": _STATUS_SQL,
    "submitted": "submitted_at",
    "progress": "(CASE WHEN n_total = 0 THEN 0.0 ELSE CAST(n_finished AS REAL) / n_total END)",
    "eta": "(CASE WHEN n_queued + n_running = 0 THEN 0.0 WHEN timed_tasks = 0 THEN 9e999 "
    "ELSE task_seconds / timed_tasks * (n_queued + n_running) END)",
}

#: TaskState by its stored value (calling TaskState per row is slow for 100,000 tasks).
_STATES = {str(state): state for state in TaskState}

#: The counter column on jobs of each counter of policy.COUNTER.
_COLUMN = {name: f"n_{name}" for name in policy.COUNTERS}
_COLUMNS_WITH_TOTAL = ("n_total", *_COLUMN.values())

#: SQL true of a job whose stored counts differ from its tasks' (check_integrity).
_DRIFTED = " OR ".join(f"j.{column} != COALESCE(t.{column}, 0)" for column in _COLUMNS_WITH_TOTAL)

#: SQL summing a job's tasks per counter column, from policy.COUNTER (for check_integrity).
_COUNT_BY_STATE = ", ".join(
    "SUM(state IN ({})) {}".format(
        ", ".join(f"'{state}'" for state, of in policy.COUNTER.items() if of == name), column
    )
    for name, column in _COLUMN.items()
)

#: What each schema version adds to the one before it (ALTER statements, in order).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE jobs ADD COLUMN idempotency_key TEXT",
        "CREATE UNIQUE INDEX jobs_idempotency_key ON jobs(owner, idempotency_key) "
        "WHERE idempotency_key IS NOT NULL",
    ),
    # Frame-by-frame dependencies, the task order and the failure classes (issue 15).  A task of an older store
    # keeps rank 0: its job's tasks then go by index, the sequential order they always had.
    3: (
        "ALTER TABLE jobs ADD COLUMN after_frames TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE jobs ADD COLUMN task_order TEXT NOT NULL DEFAULT 'sequential'",
        "ALTER TABLE jobs ADD COLUMN first_frame_check INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN rank INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX tasks_job_rank ON tasks(job_id, state, rank, idx)",
        "ALTER TABLE jobs ADD COLUMN on_failure TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE tasks ADD COLUMN failure_class TEXT",
        "ALTER TABLE tasks ADD COLUMN failure_detail TEXT",
        "ALTER TABLE tasks ADD COLUMN min_ram_mb INTEGER",
    ),
}

#: A job's control while create_job writes its tasks: invisible to every read, never run.
#: A master killed meanwhile leaves it so, and check_integrity deletes it at the next start.
CREATING = "creating"

#: Task rows written per transaction by create_job; between two, other writers get the lock.
TASKS_PER_TRANSACTION = 2000

#: Seconds create_job leaves the write lock free between two of its transactions, and the
#: most it waits there for this process's other writers (SQLite's busy handler, which they
#: sleep in, retries at least every 100 ms) to have had their turn.
CREATE_PAUSE = 0.002
CREATE_YIELD_MAX = 0.25

#: Rows of one kind import_records writes per executemany.
IMPORT_ROWS_PER_STATEMENT = 1000

#: Seconds a client is told to wait (Retry-After) when the store stayed locked too long.
RETRY_AFTER = 2

_TASK_COLUMNS = (
    'id, job_id, idx, start, "end", step, state, attempts, failures, lost, computer, engine_id, '
    "attempt_id, started_at, ended_at, exit_code, peak_rss_kb, cpu_seconds, progress, log_path, "
    "tail, reason, failure_class, failure_detail, min_ram_mb, outputs"
)


def _task_from_row(row: sqlite3.Row) -> Task:
    return Task(
        id=row["id"],
        job_id=row["job_id"],
        index=row["idx"],
        block=FrameBlock(row["start"], row["end"], row["step"]),
        state=TaskState(row["state"]),
        attempts=row["attempts"],
        failures=row["failures"],
        lost=row["lost"],
        computer=row["computer"],
        engine_id=row["engine_id"],
        attempt_id=row["attempt_id"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        exit_code=row["exit_code"],
        peak_rss_kb=row["peak_rss_kb"],
        cpu_seconds=row["cpu_seconds"],
        progress=row["progress"],
        log_path=row["log_path"],
        tail=row["tail"],
        reason=row["reason"],
        outputs=json.loads(row["outputs"]),
        failure_class=row["failure_class"],
        failure_detail=row["failure_detail"],
        min_ram_mb=row["min_ram_mb"],
    )


#: The columns of a job that change after submit, and its id: all that a read of a job whose
#: spec is already decoded needs (see SQLiteStore._specs_of).
_JOB_STATE_COLUMNS = (
    "id, priority, control, submitted_at, finished_at, n_total, n_queued, n_running, "
    "n_finished, n_error, n_cancelled, task_seconds, timed_tasks, waiting_reason"
)


#: JobControl by its stored value.
_CONTROLS = {str(control): control for control in JobControl}


#: The columns of jobs that hold its spec, in the order of _spec_values.
_SPEC_COLUMNS = (
    'name, owner, renderer, scene, start, "end", step, block_size, priority, retries, timeout, '
    "max_parallel, env, params, requirements, after, notify, after_frames, task_order, "
    "first_frame_check, on_failure"
)


def _spec_values(spec: JobSpec) -> tuple[Any, ...]:
    """A spec as the values of _SPEC_COLUMNS."""
    return (
        spec.name,
        spec.owner,
        spec.renderer,
        spec.scene,
        spec.start,
        spec.end,
        spec.step,
        spec.block_size,
        spec.priority,
        spec.retries,
        spec.timeout,
        spec.max_parallel,
        json.dumps(spec.env),
        json.dumps(spec.params),
        json.dumps(spec.requirements.to_dict()),
        json.dumps(spec.after),
        json.dumps(spec.notify),
        json.dumps(spec.after_frames),
        spec.order,
        int(spec.first_frame_check),
        json.dumps(spec.on_failure),
    )


def _spec_from_row(row: sqlite3.Row) -> JobSpec:
    return JobSpec(
        renderer=row["renderer"],
        start=row["start"],
        end=row["end"],
        name=row["name"],
        owner=row["owner"],
        scene=row["scene"],
        step=row["step"],
        block_size=row["block_size"],
        priority=row["priority"],
        retries=row["retries"],
        timeout=row["timeout"],
        env=json.loads(row["env"]),
        params=json.loads(row["params"]),
        requirements=Requirements.from_dict(json.loads(row["requirements"])),
        after=json.loads(row["after"]),
        max_parallel=row["max_parallel"],
        notify=json.loads(row["notify"]),
        after_frames=json.loads(row["after_frames"]),
        order=row["task_order"],
        first_frame_check=bool(row["first_frame_check"]),
        on_failure=json.loads(row["on_failure"]),
    )


def _counts_from_row(row: sqlite3.Row) -> Counts:
    return Counts(
        total=row["n_total"],
        queued=row["n_queued"],
        running=row["n_running"],
        finished=row["n_finished"],
        error=row["n_error"],
        cancelled=row["n_cancelled"],
    )


def _casefold(text: Any) -> Any:
    return text.casefold() if isinstance(text, str) else text


def _busy_or(exc: sqlite3.OperationalError) -> Exception:
    """StoreBusy for SQLite's "database is locked" (or busy), else *exc* itself."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return StoreBusy(
            "the store is busy with another writer: ask again in a moment",
            retry_after=RETRY_AFTER,
        )
    return exc


def _marks(columns: str) -> str:
    """As many SQL parameters ("?, ?, ...") as *columns* names columns."""
    return ", ".join("?" * (columns.count(",") + 1))


def _event_from_row(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        at=row["at"],
        kind=row["kind"],
        message=row["message"],
        job_id=row["job_id"],
        task_index=row["task_index"],
        computer=row["computer"],
        actor=row["actor"],
    )


def _dispatch_from_row(row: sqlite3.Row) -> Dispatch:
    return Dispatch(
        task_id=row["id"],
        job_id=row["job_id"],
        attempt_id=row["attempt_id"],
        engine_id=row["engine_id"],
        computer=row["computer"],
        started_at=row["started_at"],
    )


# -- moving a farm between stores: rows to records (export) and records to rows (import) ---------

#: The keys of a task record, in the order of _TASK_COLUMNS but its last (outputs, as JSON).
_TASK_KEYS = tuple(
    "index" if column == "idx" else column.strip('"') for column in _TASK_COLUMNS.split(", ")
)[:-1]
#: A task record's values of _TASK_KEYS, as a tuple.
_task_values = operator.itemgetter(*_TASK_KEYS)

#: Jobs whose creation ended: the others are not stored yet, nor exported.
_CREATED = "job_id IN (SELECT id FROM jobs WHERE control != ?)"


def _records(conn: sqlite3.Connection) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every stored object as (kind, record) of store.transfer, in its kind order."""
    for row in conn.execute("SELECT name, description FROM pools ORDER BY name"):
        yield "pool", transfer.pool_record(row["name"], row["description"])
    for row in conn.execute("SELECT * FROM computers ORDER BY name"):
        yield (
            "computer",
            transfer.computer_record(
                row["name"],
                json.loads(row["info"]),
                enabled=bool(row["enabled"]),
                max_tasks=row["max_tasks"],
                last_seen=row["last_seen"],
                info_at=row["info_at"],
            ),
        )
    for row in conn.execute("SELECT pool, computer FROM pool_members ORDER BY pool, computer"):
        yield "member", transfer.member_record(row["pool"], row["computer"])
    for row in conn.execute("SELECT * FROM jobs WHERE control != ? ORDER BY id", (CREATING,)):
        yield (
            "job",
            transfer.job_record(
                row["id"],
                _spec_from_row(row),
                control=row["control"],
                submitted_at=row["submitted_at"],
                finished_at=row["finished_at"],
                task_seconds=row["task_seconds"],
                timed_tasks=row["timed_tasks"],
                waiting_reason=row["waiting_reason"],
                idempotency_key=row["idempotency_key"],
            ),
        )
    for row in conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM tasks WHERE {_CREATED} ORDER BY job_id, idx", (CREATING,)
    ):
        # Straight from the row (a Task on the way took as long again, for 100,000 tasks).
        record = dict(zip(_TASK_KEYS, row, strict=False))  # all but outputs
        record["outputs"] = json.loads(row["outputs"])
        yield "task", record
    for row in conn.execute(
        f"SELECT * FROM host_failures WHERE {_CREATED} ORDER BY job_id, computer", (CREATING,)
    ):
        yield (
            "host",
            transfer.host_record(row["job_id"], row["computer"], row["failures"], row["blocked"]),
        )
    for row in conn.execute("SELECT * FROM events ORDER BY id"):
        yield "event", transfer.event_record(_event_from_row(row))


#: Each kind's INSERT, of the values _values_of gives.  A job's counts are recounted after.
_INSERT = {
    "pool": "INSERT INTO pools (name, description) VALUES (?, ?)",
    "computer": "INSERT INTO computers (name, info, enabled, max_tasks, last_seen, info_at) "
    "VALUES (?, ?, ?, ?, ?, ?)",
    "member": "INSERT INTO pool_members (pool, computer) VALUES (?, ?)",
    "job": f"INSERT INTO jobs (id, {_SPEC_COLUMNS}, control, submitted_at, finished_at, "
    "task_seconds, timed_tasks, waiting_reason, idempotency_key, n_total) "
    f"VALUES (?, {_marks(_SPEC_COLUMNS)}, ?, ?, ?, ?, ?, ?, ?, 0)",
    "task": f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES ({_marks(_TASK_COLUMNS)})",
    "host": "INSERT INTO host_failures (job_id, computer, failures, blocked) VALUES (?, ?, ?, ?)",
    "event": "INSERT INTO events (id, at, kind, message, job_id, task_index, computer, actor) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
}

#: The keys of an event record, in the order of the events table's columns.
_EVENT_KEYS = ("id", "at", "kind", "message", "job_id", "task_index", "computer", "actor")


def _values_of(kind: str, record: dict[str, Any]) -> tuple[Any, ...]:
    """A record as the values of its kind's _INSERT."""
    if kind == "task":
        return (*_task_values(record), json.dumps(record["outputs"]))
    if kind == "job":
        return (
            record["id"],
            *_spec_values(transfer.spec_from_record(record["spec"])),
            record["control"],
            record["submitted_at"],
            record["finished_at"],
            record["task_seconds"],
            record["timed_tasks"],
            record["waiting_reason"],
            record["idempotency_key"],
        )
    if kind == "computer":
        return (
            record["name"],
            json.dumps(record["info"]),
            int(record["enabled"]),
            record["max_tasks"],
            record["last_seen"],
            record["info_at"],
        )
    if kind == "host":
        return (record["job_id"], record["computer"], record["failures"], int(record["blocked"]))
    if kind == "event":
        return tuple(record[key] for key in _EVENT_KEYS)
    if kind == "pool":
        return (record["name"], record["description"])
    return (record["pool"], record["computer"])  # a member


#: The WAL is truncated to this size whenever a checkpoint empties it (PRAGMA journal_size_limit).
WAL_LIMIT_BYTES = 8 * 1024 * 1024

#: A job of at least this many tasks is followed by a WAL checkpoint when it is deleted.
CHECKPOINT_AFTER_TASKS = 10_000


def _make_private(path: str) -> None:
    """Create the store file *path* mode 0600, or tighten an existing one and its WAL and
    shared-memory files: they hold every job's env.  SQLite gives the -wal and -shm files it
    creates the mode of the store file."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)


class SQLiteStore(Store):
    """The Store on one SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0):
        """*busy_timeout*: seconds a write waits for SQLite's lock before it is StoreBusy."""
        self.path = str(path)
        self.busy_timeout = busy_timeout
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            _make_private(self.path)
        self._local = threading.local()
        #: Threads of this process waiting for SQLite's write lock (create_job lets them first).
        self._waiting_writers = 0
        self._waiting_lock = threading.Lock()
        #: This process's writers take turns here before SQLite's own lock (see _write).
        self._write_turn = threading.RLock()
        #: Each job's spec, decoded once, by job id (see _specs_of).
        self._specs: dict[int, JobSpec] = {}
        #: A connection that only asks SQLite's data_version (see data_version()).
        self._version_conn: sqlite3.Connection | None = None
        self._version_lock = threading.Lock()
        self._init_schema()

    # -- connections and transactions -----------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        # A checkpoint that empties the WAL also truncates it to this: a big submit or
        # delete must not leave a WAL of its size behind for good.
        conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        # page_jobs' name filter: case-insensitive as Python's casefold, not SQLite's ASCII-only.
        conn.create_function("drq_casefold", 1, _casefold, deterministic=True)
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error.

        This process's writers queue on one Python lock first, so each gets SQLite's lock the
        moment the last one lets go of it; left to SQLite's busy handler, a waiting writer
        sleeps and polls (up to 100 ms between two tries), which made a small submit beside a
        giant one wait 0.3–1 s for its two transactions.  Other processes still meet SQLite's
        busy handler.  A lock still held after busy_timeout is StoreBusy (a 503 with
        Retry-After from the API), never a bare "database is locked"."""
        conn = self._conn()
        with self._waiting_lock:
            self._waiting_writers += 1
        try:
            if not self._write_turn.acquire(timeout=self.busy_timeout):
                raise _busy_or(sqlite3.OperationalError("database is locked"))
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                self._write_turn.release()
                raise _busy_or(exc) from None
        finally:
            with self._waiting_lock:
                self._waiting_writers -= 1
        try:
            yield conn
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise _busy_or(exc) from None
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise _busy_or(exc) from None
        finally:
            self._write_turn.release()

    def _init_schema(self) -> None:
        with self._write() as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
            ).fetchone()
            if not exists:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
                for statement in _LATER_INDEXES:
                    conn.execute(statement)
                return
            version = int(
                conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
            )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(step),))
            if version <= SCHEMA_VERSION:
                for statement in _LATER_INDEXES:
                    conn.execute(statement)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this DrQueue's "
                f"{SCHEMA_VERSION}: upgrade DrQueue"
            )

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        with self._version_lock:
            if self._version_conn is not None:
                self._version_conn.close()
                self._version_conn = None

    def data_version(self) -> int | None:
        """SQLite's ``PRAGMA data_version`` on a connection of its own that never writes: it
        changes with every commit of any other connection (this process's writers, or another
        process's), and costs microseconds.  None for ":memory:" (one database per connection)."""
        if self.path == ":memory:":
            return None
        with self._version_lock:
            if self._version_conn is None:
                self._version_conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
            return self._version_conn.execute("PRAGMA data_version").fetchone()[0]

    def backup(self, path: str) -> None:
        _make_private(path)  # a backup holds every job's env, as the store does
        target = sqlite3.connect(path)
        try:
            self._conn().backup(target)
        finally:
            target.close()

    def _files_size(self) -> int:
        """The bytes of the store file and its WAL."""
        return sum(
            os.stat(name).st_size
            for name in (self.path, self.path + "-wal")
            if os.path.exists(name)
        )

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy the WAL into the store.  PASSIVE never waits for readers or writers (the next
        write then starts the WAL afresh and truncates it to WAL_LIMIT_BYTES); TRUNCATE waits
        for them (up to the busy timeout) and truncates the WAL to nothing."""
        self._conn().execute(f"PRAGMA wal_checkpoint({mode})")

    def compact(self, *, wait: float = 10.0) -> dict[str, int]:
        """Checkpoint the WAL and VACUUM the store: the file shrinks to what it holds.

        VACUUM writes the whole new file through the WAL; a running master's readers can keep
        the WAL from being truncated, so the last checkpoint is tried again for up to *wait*
        seconds, until it completes (else the WAL shrinks at the master's next checkpoint)."""
        before = self._files_size()
        conn = self._conn()
        self.checkpoint("TRUNCATE")
        conn.execute("VACUUM")
        deadline = time.monotonic() + wait
        while conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:  # 1: busy
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return {"before": before, "after": self._files_size()}

    def check_integrity(self) -> list[str]:
        found: list[str] = []
        conn = self._conn()
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise StoreError(f"{self.path} failed SQLite's integrity check: {result}")
        with self._write() as conn:
            # A job whose create_job never ended (the master died mid-way) was never visible:
            # it goes, tasks and all, and a client's retry with its Idempotency-Key makes it anew.
            unfinished = conn.execute("DELETE FROM jobs WHERE control = ?", (CREATING,)).rowcount
            if unfinished:
                found.append(f"removed {unfinished} jobs whose creation was cut short")
            orphans = conn.execute(
                "DELETE FROM tasks WHERE job_id NOT IN (SELECT id FROM jobs)"
            ).rowcount
            if orphans:
                found.append(f"removed {orphans} tasks of deleted jobs")
            stored = tuple(str(state) for state in policy.COUNTER)
            marks = ", ".join("?" * len(stored))
            bad = conn.execute(
                f"SELECT COUNT(*) FROM tasks WHERE state NOT IN ({marks})", stored
            ).fetchone()[0]
            if bad:
                conn.execute(
                    f"UPDATE tasks SET state = ?, attempt_id = NULL, reason = ? "
                    f"WHERE state NOT IN ({marks})",
                    (str(policy.REPAIRED_STATE), policy.REPAIRED_REASON, *stored),
                )
                found.append(f"requeued {bad} tasks in impossible states")
            # Recount every job from its tasks: counts are derived data and must agree.
            drift = conn.execute(
                f"""
                SELECT j.id FROM jobs j LEFT JOIN (
                    SELECT job_id, COUNT(*) n_total, {_COUNT_BY_STATE}
                    FROM tasks GROUP BY job_id) t ON t.job_id = j.id
                WHERE {_DRIFTED}
                """
            ).fetchall()
            for (job_id,) in drift:
                self._recount(conn, job_id)
                found.append(f"recounted the tasks of job {job_id}")
        return found

    def _recount(self, conn: sqlite3.Connection, job_id: int) -> None:
        counts = policy.count(
            row[0] for row in conn.execute("SELECT state FROM tasks WHERE job_id = ?", (job_id,))
        )
        assignments = ", ".join(f"{column} = :{column}" for column in _COLUMNS_WITH_TOTAL)
        conn.execute(
            f"UPDATE jobs SET {assignments} WHERE id = :id",
            {"id": job_id, "n_total": counts.total}
            | {_COLUMN[name]: getattr(counts, name) for name in policy.COUNTERS},
        )

    # -- moving a farm between stores (drqueue.store.transfer) ----------------------------------

    def is_empty(self) -> bool:
        return self._is_empty(self._conn())

    @staticmethod
    def _is_empty(conn: sqlite3.Connection) -> bool:
        return not any(
            conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]
            for table in ("jobs", "tasks", "computers", "pools", "events")
        )

    def export_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Read in one transaction of a connection of its own: a snapshot of the store that
        lasts while the records are written out, and holds no writer up (WAL)."""
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            yield from _records(conn)
        finally:
            conn.close()

    def import_records(self, records: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, int]:
        """In one write transaction: on any error, the records' own included, ROLLBACK.
        Explicit ids are kept, and AUTOINCREMENT continues after the largest."""
        counts = dict.fromkeys(transfer.STORE_KINDS, 0)
        with self._write() as conn:
            if not self._is_empty(conn):
                raise StoreError(transfer.NOT_EMPTY)
            for kind, group in itertools.groupby(records, key=operator.itemgetter(0)):
                if kind not in _INSERT:
                    raise ValueError(f"a store imports no {kind!r} records")
                while chunk := list(itertools.islice(group, IMPORT_ROWS_PER_STATEMENT)):
                    conn.executemany(_INSERT[kind], [_values_of(kind, r) for _, r in chunk])
                    counts[kind] += len(chunk)
            for (job_id,) in conn.execute("SELECT id FROM jobs").fetchall():
                self._recount(conn, job_id)
            # A task's rank is derived from its job's order, like its counts: not exported.
            for job_id, order, total in conn.execute(
                "SELECT id, task_order, n_total FROM jobs WHERE task_order != 'sequential'"
            ).fetchall():
                conn.executemany(
                    "UPDATE tasks SET rank = ? WHERE job_id = ? AND idx = ?",
                    ((rank, job_id, index) for index, rank in enumerate(task_ranks(total, order))),
                )
        self._specs.clear()
        if counts["task"] >= CHECKPOINT_AFTER_TASKS:
            self.checkpoint()  # the import wrote every page of its tasks to the WAL
        return counts

    # -- the one place a task's state changes -----------------------------------------------

    def _move(
        self,
        conn: sqlite3.Connection,
        task: sqlite3.Row,
        new: TaskState,
        **fields: Any,
    ) -> None:
        """Move one task to state *new*, setting *fields*, and keep its job's counts in step.

        policy.move checks the transition and says what it does to the job."""
        effect = policy.move(TaskState(task["state"]), new)
        fields["state"] = str(new)
        if "outputs" in fields:
            fields["outputs"] = json.dumps(fields["outputs"])
        assignments = ", ".join(f'"{name}" = :{name}' for name in fields)
        conn.execute(
            f"UPDATE tasks SET {assignments} WHERE id = :task_id", {**fields, "task_id": task["id"]}
        )
        if effect.counters:
            down, up = _COLUMN[effect.counters[0]], _COLUMN[effect.counters[1]]
            conn.execute(
                f"UPDATE jobs SET {down} = {down} - 1, {up} = {up} + 1 WHERE id = ?",
                (task["job_id"],),
            )
        if effect.may_end:
            job = conn.execute(
                "SELECT finished_at, n_total, n_queued, n_running, n_finished, n_error, "
                "n_cancelled FROM jobs WHERE id = ?",
                (task["job_id"],),
            ).fetchone()
            counts = _counts_from_row(job)
            if job["finished_at"] is None and policy.job_ended(counts):
                conn.execute(
                    "UPDATE jobs SET finished_at = ? WHERE id = ?", (time.time(), task["job_id"])
                )
            news = policy.job_news(
                new, task["idx"], counts, was_ended=job["finished_at"] is not None
            )
            for kind, message, index in news:
                self._event(conn, kind, message, job_id=task["job_id"], task_index=index)
        elif effect.reopens:
            conn.execute("UPDATE jobs SET finished_at = NULL WHERE id = ?", (task["job_id"],))

    def _event(self, conn: sqlite3.Connection, kind: str, message: str, **about: Any) -> None:
        conn.execute(
            "INSERT INTO events (at, kind, message, job_id, task_index, computer, actor) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                kind,
                message,
                about.get("job_id"),
                about.get("task_index"),
                about.get("computer"),
                about.get("actor"),
            ),
        )

    # -- jobs ---------------------------------------------------------------------------------

    def create_job(
        self,
        spec: JobSpec,
        blocks: Sequence[FrameBlock],
        *,
        actor: str = "",
        idempotency_key: str | None = None,
    ) -> int:
        """Store a job and its tasks; return its id.

        The job row is written first, hidden (control CREATING), then its tasks
        TASKS_PER_TRANSACTION at a time in short transactions that let other writers in, and
        the job is published (control active, its tasks counted queued) in the last one.
        Until then no read sees it; if creation fails it is deleted, and a master killed
        mid-way deletes it at its next start (check_integrity)."""
        now = time.time()
        queued = str(TaskState.QUEUED)
        ranks = task_ranks(len(blocks), spec.order)
        with self._write() as conn:
            for dep in spec.after:
                if not conn.execute(
                    "SELECT 1 FROM jobs WHERE id = ? AND control != ?", (dep, CREATING)
                ).fetchone():
                    raise policy.missing_dependency(dep)
            for dep in spec.after_frames:
                row = conn.execute(
                    "SELECT * FROM jobs WHERE id = ? AND control != ?", (dep, CREATING)
                ).fetchone()
                policy.check_frame_dependency(dep, _spec_from_row(row) if row else None, spec)
            for pool in spec.requirements.pools:
                if not conn.execute("SELECT 1 FROM pools WHERE name = ?", (pool,)).fetchone():
                    raise policy.missing_pool(pool)
            if idempotency_key is not None:
                self._check_key_free(conn, spec.owner, idempotency_key)
            cur = conn.execute(
                f"INSERT INTO jobs ({_SPEC_COLUMNS}, control, submitted_at, n_total, n_queued, "
                f"idempotency_key) VALUES ({_marks(_SPEC_COLUMNS)}, ?, ?, ?, 0, ?)",
                (*_spec_values(spec), CREATING, now, len(blocks), idempotency_key),
            )
            job_id = cur.lastrowid
            assert job_id is not None
        try:
            for first in range(0, max(len(blocks), 1), TASKS_PER_TRANSACTION):
                if first:
                    self._let_other_writers_in()
                chunk = blocks[first : first + TASKS_PER_TRANSACTION]
                last = first + TASKS_PER_TRANSACTION >= len(blocks)
                # The rows are made before the lock is taken: it is held for the insert only.
                rows = [
                    (job_id, index, block.start, block.end, block.step, queued, rank)
                    for index, (block, rank) in enumerate(
                        zip(chunk, ranks[first : first + TASKS_PER_TRANSACTION], strict=True),
                        start=first,
                    )
                ]
                with self._write() as conn:
                    conn.executemany(
                        'INSERT INTO tasks (job_id, idx, start, "end", step, state, rank) '
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                    if last:
                        self._publish(conn, job_id, spec, len(blocks), actor)
        except BaseException:
            with contextlib.suppress(Exception), self._write() as conn:
                conn.execute("DELETE FROM jobs WHERE id = ? AND control = ?", (job_id, CREATING))
            raise
        return job_id

    def _let_other_writers_in(self) -> None:
        """Between two of create_job's transactions: wait until the writers that queued for
        the lock meanwhile got it, so a giant submit holds nobody up for long."""
        deadline = time.monotonic() + CREATE_YIELD_MAX
        time.sleep(CREATE_PAUSE)
        while self._waiting_writers and time.monotonic() < deadline:
            time.sleep(0.001)

    def _publish(
        self, conn: sqlite3.Connection, job_id: int, spec: JobSpec, tasks: int, actor: str
    ) -> None:
        """Make a created job visible and runnable: the last step of create_job."""
        conn.execute(
            "UPDATE jobs SET control = ?, n_queued = ?, name = CASE WHEN name = '' THEN ? "
            "ELSE name END WHERE id = ?",
            (str(JobControl.ACTIVE), tasks, f"job-{job_id}", job_id),
        )
        self._event(
            conn,
            *policy.submitted_event(tasks, spec.start, spec.end, spec.step),
            job_id=job_id,
            actor=actor or spec.owner,
        )

    def _check_key_free(self, conn: sqlite3.Connection, owner: str, key: str) -> None:
        row = conn.execute(
            "SELECT id, control FROM jobs WHERE owner = ? AND idempotency_key = ?", (owner, key)
        ).fetchone()
        if row is not None and row["control"] == CREATING:
            raise StoreBusy(
                f"job {row['id']} of this Idempotency-Key is still being created: ask again",
                retry_after=RETRY_AFTER,
            )
        if row is not None:
            raise Conflict(f"job {row['id']} already has this Idempotency-Key")

    def job_by_key(self, owner: str, key: str) -> int | None:
        row = (
            self._conn()
            .execute(
                "SELECT id, control FROM jobs WHERE owner = ? AND idempotency_key = ?", (owner, key)
            )
            .fetchone()
        )
        if row is None:
            return None
        if row["control"] == CREATING:
            raise StoreBusy(
                f"job {row['id']} of this Idempotency-Key is still being created: ask again",
                retry_after=RETRY_AFTER,
            )
        return row["id"]

    def _job_row(self, conn: sqlite3.Connection, job_id: int) -> sqlite3.Row:
        row = conn.execute(
            "SELECT * FROM jobs WHERE id = ? AND control != ?", (job_id, CREATING)
        ).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id}")
        return row

    def _specs_of(self, conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[JobSpec | None]:
        """The spec of each row's job; None for a job deleted since its row was read.

        A job's spec never changes after create_job but for its priority, a plain column, so
        each is read and decoded once (its five JSON columns were most of the time of listing
        10,000 jobs) and kept by job id.  Jobs read again share their spec: treat it as
        read-only.  *rows* need only the _JOB_STATE_COLUMNS.
        """
        specs = self._specs
        unknown = [row["id"] for row in rows if row["id"] not in specs]
        for first in range(0, len(unknown), 900):  # SQLite's limit on bound parameters
            chunk = unknown[first : first + 900]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"SELECT * FROM jobs WHERE id IN ({marks})", chunk):
                specs[row["id"]] = _spec_from_row(row)
        found: list[JobSpec | None] = []
        for row in rows:
            spec = specs.get(row["id"])
            if spec is not None and spec.priority != row["priority"]:
                spec = specs[row["id"]] = dataclasses.replace(spec, priority=row["priority"])
            found.append(spec)
        return found

    def _jobs_from_rows(self, conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[Job]:
        """Jobs from their rows (of _JOB_STATE_COLUMNS at least), in the same order."""
        specs = self._specs_of(conn, rows)
        deps_needed = {dep for spec in specs if spec for dep in spec.after}
        finished: set[int] = set()
        if deps_needed:
            marks = ",".join("?" * len(deps_needed))
            finished = {
                r["id"]
                for r in conn.execute(
                    f"SELECT {_JOB_STATE_COLUMNS} FROM jobs WHERE id IN ({marks})",
                    tuple(deps_needed),
                )
                if policy.dependency_done(_counts_from_row(r))
            }
        blocked: dict[int, list[str]] = {}
        ids = [row["id"] for row in rows]
        if ids and len(ids) <= 900:
            marks = ",".join("?" * len(ids))
            for job_id, computer in conn.execute(
                f"SELECT job_id, computer FROM host_failures WHERE blocked AND job_id IN ({marks})",
                ids,
            ):
                blocked.setdefault(job_id, []).append(computer)
        elif ids:
            for job_id, computer in conn.execute(
                "SELECT job_id, computer FROM host_failures WHERE blocked"
            ):
                blocked.setdefault(job_id, []).append(computer)
        for hosts in blocked.values():
            hosts.sort()
        # Cheap per row, as this runs for every job the list and the dispatcher read: the
        # control by dict lookup (calling JobControl is slow), and no comprehension for the
        # many jobs that depend on none.
        jobs = []
        for row, spec in zip(rows, specs, strict=True):
            if spec is None:
                continue
            jobs.append(
                Job(
                    id=row["id"],
                    spec=spec,
                    control=_CONTROLS[row["control"]],
                    counts=_counts_from_row(row),
                    submitted_at=row["submitted_at"],
                    finished_at=row["finished_at"],
                    task_seconds=row["task_seconds"],
                    timed_tasks=row["timed_tasks"],
                    waiting_for=policy.waiting_for(spec.after, finished),
                    waiting_reason=row["waiting_reason"],
                    blocked_hosts=blocked.get(row["id"]) or [],
                )
            )
        return jobs

    def get_job(self, job_id: int) -> Job:
        conn = self._conn()
        return self._jobs_from_rows(conn, [self._job_row(conn, job_id)])[0]

    def list_jobs(self, *, owner: str | None = None, limit: int | None = None) -> list[Job]:
        conn = self._conn()
        sql = f"SELECT {_JOB_STATE_COLUMNS} FROM jobs WHERE control != ?"
        args: list[Any] = [CREATING]
        if owner:
            sql += " AND owner = ?"
            args.append(owner)
        sql += " ORDER BY id"
        if limit:
            sql += " DESC LIMIT ?"
            args.append(limit)
        rows = conn.execute(sql, args).fetchall()
        if limit:
            rows.reverse()
        elif not owner:  # every job: forget the specs of deleted ones
            for gone in self._specs.keys() - {row["id"] for row in rows}:
                self._specs.pop(gone, None)
        return self._jobs_from_rows(conn, rows)

    def _stalled_jobs(self) -> set[int]:
        """jobquery.stalled_jobs of every job, read as (id, status, dependencies) rows."""
        rows = self._conn().execute(
            f"SELECT id, {_STATUS_SQL} AS status, after FROM jobs WHERE control != ?", (CREATING,)
        )
        status_of: dict[int, str] = {}
        waiting_for: dict[int, list[int]] = {}
        for job_id, status, after in rows:
            status_of[job_id] = status
            if status == "waiting":
                waiting_for[job_id] = json.loads(after)
        return stalled_jobs(status_of, waiting_for)

    def page_jobs(self, query: JobQuery) -> JobPage:
        where = ["control != ?"]
        args: list[Any] = [CREATING]
        if query.ids is not None:
            where.append("id IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(sorted(query.ids)))
        for column, value in (("owner", query.owner), ("renderer", query.renderer)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.pool is not None:
            where.append(
                "EXISTS (SELECT 1 FROM json_each(requirements, '$.pools') WHERE value = ?)"
            )
            args.append(query.pool)
        if query.name_contains is not None:
            where.append("instr(drq_casefold(name), ?) > 0")
            args.append(query.name_contains.casefold())
        if query.status is not None:
            where.append(f"{_STATUS_SQL} = ?")
            args.append(query.status)
        if query.active:
            where.append(f"{_STATUS_SQL} IN ({', '.join('?' * len(ACTIVE_STATUSES))})")
            args.extend(ACTIVE_STATUSES)
        if query.attention:
            where.append(_ATTENTION_SQL)
            args.append(json.dumps(sorted(self._stalled_jobs())))
        sql_where = " AND ".join(where)
        direction = "DESC" if query.descending else "ASC"
        conn = self._conn()
        total = conn.execute(f"SELECT COUNT(*) FROM jobs WHERE {sql_where}", args).fetchone()[0]
        if query.limit is not None and query.limit <= 0:
            return JobPage([], total)
        rows = conn.execute(
            f"SELECT {_JOB_STATE_COLUMNS} FROM jobs WHERE {sql_where} "
            f"ORDER BY {_SORT_SQL[query.sort]} {direction}, id {direction} LIMIT ? OFFSET ?",
            [*args, -1 if query.limit is None else query.limit, query.offset],
        ).fetchall()
        return JobPage(self._jobs_from_rows(conn, rows), total)

    def job_status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for status, count in self._conn().execute(
            f"SELECT {_STATUS_SQL} AS status, COUNT(*) FROM jobs WHERE control != ? "
            "GROUP BY status",
            (CREATING,),
        ):
            counts[status] = count
        return counts

    def job_ids(self) -> set[int]:
        return {
            row[0]
            for row in self._conn().execute("SELECT id FROM jobs WHERE control != ?", (CREATING,))
        }

    def set_job_control(self, job_id: int, control: str, *, actor: str = "") -> None:
        control = JobControl(control)
        with self._write() as conn:
            self._job_row(conn, job_id)
            conn.execute("UPDATE jobs SET control = ? WHERE id = ?", (str(control), job_id))
            self._event(conn, *policy.control_event(control), job_id=job_id, actor=actor)

    def set_job_priority(self, job_id: int, priority: int, *, actor: str = "") -> None:
        if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
            raise InvalidJob(
                f"priority must be between {PRIORITY_MIN} and {PRIORITY_MAX}, not {priority}"
            )
        with self._write() as conn:
            self._job_row(conn, job_id)
            conn.execute("UPDATE jobs SET priority = ? WHERE id = ?", (priority, job_id))
            self._event(conn, *policy.priority_event(priority), job_id=job_id, actor=actor)

    def delete_job(self, job_id: int, *, force: bool = False, actor: str = "") -> list[Dispatch]:
        with self._write() as conn:
            row = self._job_row(conn, job_id)
            dependants = (
                []
                if force or row["n_running"]
                else [
                    r["id"]
                    for r in conn.execute(
                        "SELECT id, after, after_frames FROM jobs WHERE id != ?", (job_id,)
                    )
                    if job_id in json.loads(r["after"]) or job_id in json.loads(r["after_frames"])
                ]
            )
            policy.check_delete(
                job_id, running=row["n_running"], dependants=dependants, force=force
            )
            active = [
                _dispatch_from_row(r)
                for r in conn.execute(
                    f"SELECT * FROM tasks WHERE job_id = ? AND state IN {_ACTIVE}", (job_id,)
                )
            ]
            conn.execute("DELETE FROM tasks WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM host_failures WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            self._event(conn, *policy.deleted_event(job_id), job_id=job_id, actor=actor)
        if row["n_total"] >= CHECKPOINT_AFTER_TASKS:
            self.checkpoint()  # the delete wrote every page of its tasks to the WAL
        return active

    def requeue_tasks(
        self, job_id: int, *, which: str, index: int | None = None, actor: str = ""
    ) -> list[Dispatch]:
        with self._write() as conn:
            self._job_row(conn, job_id)
            if which in policy.REQUEUE_TAKES:
                states = tuple(str(state) for state in sorted(policy.REQUEUE_TAKES[which]))
                rows = conn.execute(
                    f"SELECT * FROM tasks WHERE job_id = ? AND state IN "
                    f"({', '.join('?' * len(states))})",
                    (job_id, *states),
                ).fetchall()
            elif which == "one":
                rows = conn.execute(
                    "SELECT * FROM tasks WHERE job_id = ? AND idx = ?", (job_id, index)
                ).fetchall()
                if not rows:
                    raise NotFound(f"job {job_id} has no task {index}")
            else:
                raise ValueError(which)
            was_active = []
            for row in rows:
                if TaskState(row["state"]) in ACTIVE_STATES:
                    was_active.append(_dispatch_from_row(row))
                if row["state"] != TaskState.QUEUED:
                    self._move(conn, row, TaskState.QUEUED, **policy.requeue_fields())
            if which in policy.REQUEUE_TAKES:
                conn.execute("DELETE FROM host_failures WHERE job_id = ?", (job_id,))
            self._event(
                conn, *policy.requeue_event(which, index, len(rows)), job_id=job_id, actor=actor
            )
        return was_active

    def kill_tasks(
        self, job_id: int, *, index: int | None = None, actor: str = ""
    ) -> list[Dispatch]:
        """Take the job's running tasks (or the one *index*) off their engines, back to queued.

        The store changes first, so the runner's late result is a stale duplicate.
        """
        with self._write() as conn:
            self._job_row(conn, job_id)
            sql = f"SELECT * FROM tasks WHERE job_id = ? AND state IN {_ACTIVE}"
            args: tuple[Any, ...] = (job_id,)
            if index is not None:
                if not conn.execute(
                    "SELECT 1 FROM tasks WHERE job_id = ? AND idx = ?", (job_id, index)
                ).fetchone():
                    raise NotFound(f"job {job_id} has no task {index}")
                sql += " AND idx = ?"
                args = (job_id, index)
            rows = conn.execute(sql, args).fetchall()
            for row in rows:
                self._move(conn, row, TaskState.QUEUED, **policy.kill_fields(actor, time.time()))
            self._event(conn, *policy.kill_event(len(rows)), job_id=job_id, actor=actor)
        return [_dispatch_from_row(row) for row in rows]

    def set_job_waiting_reason(self, reasons: dict[int, str | None]) -> None:
        if not reasons:
            return
        with self._write() as conn:
            conn.executemany(
                "UPDATE jobs SET waiting_reason = ? WHERE id = ?",
                [(reason, job_id) for job_id, reason in reasons.items()],
            )

    def block_host(self, job_id: int, computer: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO host_failures (job_id, computer, failures, blocked) VALUES (?, ?, 0, 1) "
                "ON CONFLICT (job_id, computer) DO UPDATE SET blocked = 1",
                (job_id, computer),
            )

    def unblock_host(self, job_id: int, computer: str, *, actor: str = "") -> None:
        with self._write() as conn:
            self._job_row(conn, job_id)
            changed = conn.execute(
                "UPDATE host_failures SET blocked = 0, failures = 0 WHERE job_id = ? AND computer = ? "
                "AND blocked",
                (job_id, computer),
            ).rowcount
            if not changed:
                raise NotFound(f"host {computer!r} is not blocked for job {job_id}")
            self._event(conn, *policy.unblock_event(computer), job_id=job_id, actor=actor)

    def blocked_hosts(self) -> dict[int, set[str]]:
        """Every job's blocked hosts (for the dispatcher)."""
        result: dict[int, set[str]] = {}
        for job_id, computer in self._conn().execute(
            "SELECT job_id, computer FROM host_failures WHERE blocked"
        ):
            result.setdefault(job_id, set()).add(computer)
        return result

    # -- tasks ----------------------------------------------------------------------------------

    def list_tasks(
        self, job_id: int, *, state: str | None = None, offset: int = 0, limit: int | None = None
    ) -> list[Task]:
        conn = self._conn()
        self._job_row(conn, job_id)
        sql = f"SELECT {_TASK_COLUMNS} FROM tasks WHERE job_id = ?"
        args: list[Any] = [job_id]
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        sql += " ORDER BY idx LIMIT ? OFFSET ?"
        args += [-1 if limit is None else limit, offset]
        return [_task_from_row(row) for row in conn.execute(sql, args)]

    def get_task(self, job_id: int, index: int) -> Task:
        conn = self._conn()
        self._job_row(conn, job_id)
        row = conn.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE job_id = ? AND idx = ?", (job_id, index)
        ).fetchone()
        if row is None:
            raise NotFound(f"job {job_id} has no task {index}")
        return _task_from_row(row)

    def get_task_by_id(self, task_id: int) -> Task:
        row = (
            self._conn()
            .execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
            .fetchone()
        )
        if row is None:
            raise NotFound(f"no task {task_id}")
        return _task_from_row(row)

    def task_for_frame(self, job_id: int, frame: int) -> Task:
        conn = self._conn()
        job = self._job_row(conn, job_id)
        step = job["step"]
        if not job["start"] <= frame <= job["end"] or (frame - job["start"]) % step:
            raise NotFound(f"job {job_id} does not render frame {frame}")
        index = (frame - job["start"]) // (step * job["block_size"])
        return self.get_task(job_id, index)

    def task_states(self, job_id: int) -> list[TaskState]:
        conn = self._conn()
        self._job_row(conn, job_id)
        states = _STATES
        return [
            states[row[0]]
            for row in conn.execute(
                "SELECT state FROM tasks WHERE job_id = ? ORDER BY idx", (job_id,)
            )
        ]

    def last_finished_task(self, job_id: int) -> Task | None:
        conn = self._conn()
        self._job_row(conn, job_id)
        row = conn.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE job_id = ? AND state = ? "
            "ORDER BY ended_at DESC, idx DESC LIMIT 1",
            (job_id, str(TaskState.FINISHED)),
        ).fetchone()
        return _task_from_row(row) if row else None

    def frames_finished(self, since: float, until: float) -> dict[int, int]:
        return dict(
            self._conn().execute(
                'SELECT CAST(ended_at / 3600 AS INTEGER) AS hour, SUM(("end" - start) / step + 1) '
                "FROM tasks WHERE state = ? AND ended_at > ? AND ended_at <= ? GROUP BY hour",
                (str(TaskState.FINISHED), since, until),
            )
        )

    def runnable_jobs(self) -> list[Job]:
        conn = self._conn()
        rows = conn.execute(
            # The state columns only: the specs are kept (_specs_of), and reading every runnable
            # job's spec text on each decision was a quarter of the dispatcher at 500 jobs.
            f"SELECT {_JOB_STATE_COLUMNS} FROM jobs WHERE n_queued > 0 AND control = ?",
            (str(JobControl.ACTIVE),),
        ).fetchall()
        return self._jobs_from_rows(conn, rows)

    def next_queued(
        self, job_id: int, limit: int, *, ready: Callable[[FrameBlock], bool] | None = None
    ) -> list[Task]:
        if limit <= 0:
            return []
        if ready is None:
            return [
                _task_from_row(row)
                for row in self._conn().execute(
                    f"SELECT {_TASK_COLUMNS} FROM tasks WHERE job_id = ? AND state = ? "
                    "ORDER BY rank, idx LIMIT ?",
                    (job_id, str(TaskState.QUEUED), limit),
                )
            ]
        # Read on in the job's order, the frames only, until *limit* tasks are ready.
        ids = []
        for task_id, start, end, step in self._conn().execute(
            'SELECT id, start, "end", step FROM tasks WHERE job_id = ? AND state = ? '
            "ORDER BY rank, idx",
            (job_id, str(TaskState.QUEUED)),
        ):
            if ready(FrameBlock(start, end, step)):
                ids.append(task_id)
                if len(ids) >= limit:
                    break
        if not ids:
            return []
        rows = self._conn().execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id IN ({','.join('?' * len(ids))})", ids
        )
        found = {row["id"]: _task_from_row(row) for row in rows}
        return [found[task_id] for task_id in ids if task_id in found]

    def hold_tasks(self, job_id: int, reasons: dict[int, str | None]) -> None:
        with self._write() as conn:
            conn.executemany(
                "UPDATE tasks SET reason = ? WHERE job_id = ? AND idx = ? AND state = ?",
                (
                    (reason, job_id, index, str(TaskState.QUEUED))
                    for index, reason in reasons.items()
                ),
            )

    def mark_dispatched(
        self, task_id: int, attempt_id: str, engine_id: int, computer: str, log_path: str = ""
    ) -> bool:
        return self.mark_dispatched_many(
            [Claim(task_id, attempt_id, engine_id, computer, log_path)]
        )[0]

    def mark_dispatched_many(self, claims: list[Claim]) -> list[bool]:
        with self._write() as conn:
            return [self._claim(conn, claim) for claim in claims]

    def _claim(self, conn: sqlite3.Connection, claim: Claim) -> bool:
        row = conn.execute("SELECT * FROM tasks WHERE id = ?", (claim.task_id,)).fetchone()
        if row is None or row["state"] != TaskState.QUEUED:
            return False
        # The dispatcher decided on a snapshot: a stop, a delete or a host block committed
        # since then wins, checked here in the same transaction as the move.
        job = conn.execute("SELECT control FROM jobs WHERE id = ?", (row["job_id"],)).fetchone()
        if job is None or not policy.may_dispatch(
            state=TaskState.QUEUED,
            control=job["control"],
            host_blocked=conn.execute(
                "SELECT 1 FROM host_failures WHERE job_id = ? AND computer = ? AND blocked",
                (row["job_id"], claim.computer),
            ).fetchone()
            is not None,
        ):
            return False
        self._move(
            conn,
            row,
            TaskState.DISPATCHED,
            **policy.dispatch_fields(
                attempts=row["attempts"],
                attempt_id=claim.attempt_id,
                engine_id=claim.engine_id,
                computer=claim.computer,
                log_path=claim.log_path,
                now=time.time(),
            ),
        )
        return True

    def mark_running(self, attempt_id: str, progress: float, tail: str) -> None:
        with self._write() as conn:
            row = conn.execute(
                f"SELECT * FROM tasks WHERE attempt_id = ? AND state IN {_ACTIVE}", (attempt_id,)
            ).fetchone()
            if row is None:
                return
            self._move(conn, row, TaskState.RUNNING, progress=progress, tail=tail[-TAIL_CHARS:])

    def record_result(self, attempt_id: str, result: dict[str, Any]) -> str | None:
        return self.record_results([(attempt_id, result)])[0]

    def record_results(self, results: list[tuple[str, dict[str, Any]]]) -> list[str | None]:
        with self._write() as conn:
            return [self._record_one(conn, attempt_id, result) for attempt_id, result in results]

    def _record_one(
        self, conn: sqlite3.Connection, attempt_id: str, result: dict[str, Any]
    ) -> str | None:
        row = conn.execute(
            f"SELECT * FROM tasks WHERE attempt_id = ? AND state IN {_ACTIVE}", (attempt_id,)
        ).fetchone()
        if row is None:
            return None
        job = self._job_row(conn, row["job_id"])
        fields, seconds = policy.result_fields(
            result, started_at=row["started_at"], log_path=row["log_path"], now=time.time()
        )
        computer = row["computer"]
        if result.get("status") == "finished":
            self._move(conn, row, TaskState.FINISHED, progress=1.0, reason=None, **fields)
            conn.execute(
                "UPDATE jobs SET task_seconds = task_seconds + ?, timed_tasks = timed_tasks + 1 "
                "WHERE id = ?",
                (seconds, row["job_id"]),
            )
            return str(TaskState.FINISHED)
        step = policy.after_failed_result(result, failures=row["failures"], retries=job["retries"])
        self._move(
            conn,
            row,
            step.state,
            failures=step.failures,
            reason=step.reason,
            attempt_id=None,
            engine_id=None,
            **fields,
            **step.fields,
        )
        self._event(
            conn,
            *policy.failed_event(row["idx"], computer, step.reason, step.fields["failure_class"]),
            job_id=row["job_id"],
            task_index=row["idx"],
            computer=computer,
        )
        if computer and step.host_failure:
            conn.execute(
                "INSERT INTO host_failures (job_id, computer, failures) VALUES (?, ?, 1) "
                "ON CONFLICT (job_id, computer) DO UPDATE SET failures = failures + 1",
                (row["job_id"], computer),
            )
        return str(step.state)

    def host_failures(self, job_id: int) -> dict[str, int]:
        return {
            computer: failures
            for computer, failures in self._conn().execute(
                "SELECT computer, failures FROM host_failures WHERE job_id = ?", (job_id,)
            )
        }

    def fail_task(self, task_id: int, reason: str) -> None:
        """Turn a queued task into an error (nothing can ever run it)."""
        with self._write() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None or row["state"] != TaskState.QUEUED:
                return
            self._move(conn, row, TaskState.ERROR, reason=reason, attempt_id=None)
            self._event(
                conn,
                *policy.task_error_event(row["idx"], reason),
                job_id=row["job_id"],
                task_index=row["idx"],
            )

    def fail_queued_tasks(self, job_id: int, reason: str) -> int:
        """Turn every queued task of a job into an error (it failed on every eligible host)."""
        with self._write() as conn:
            rows = conn.execute(
                "SELECT * FROM tasks WHERE job_id = ? AND state = ?",
                (job_id, str(TaskState.QUEUED)),
            ).fetchall()
            for row in rows:
                full = policy.queued_failure_reason(reason, row["reason"])
                self._move(conn, row, TaskState.ERROR, reason=full, attempt_id=None)
            if rows:
                self._event(conn, *policy.queued_failed_event(len(rows), reason), job_id=job_id)
        return len(rows)

    def requeue_attempts(self, attempt_ids: list[str], reason: str, *, lost: bool) -> int:
        count = 0
        with self._write() as conn:
            for attempt_id in attempt_ids:
                row = conn.execute(
                    f"SELECT * FROM tasks WHERE attempt_id = ? AND state IN {_ACTIVE}",
                    (attempt_id,),
                ).fetchone()
                if row is None:
                    continue
                count += 1
                times_lost = row["lost"] + (1 if lost else 0)
                new, full_reason = policy.after_loss(
                    times_lost=times_lost, counted=lost, max_lost=self.max_lost, reason=reason
                )
                self._move(
                    conn, row, new, **policy.loss_fields(times_lost, full_reason, time.time())
                )
                self._event(
                    conn,
                    *policy.requeued_event(row["idx"], full_reason),
                    job_id=row["job_id"],
                    task_index=row["idx"],
                    computer=row["computer"],
                )
        return count

    def active_dispatches(self) -> list[Dispatch]:
        return [
            _dispatch_from_row(row)
            for row in self._conn().execute(f"SELECT * FROM tasks WHERE state IN {_ACTIVE}")
        ]

    # -- computers and pools ------------------------------------------------------------------

    def upsert_computer(self, info: dict[str, Any]) -> Computer:
        name = info["name"]
        now = time.time()
        declared_pools = [p for p in info.get("pools") or [] if p]
        stored_info = {k: v for k, v in info.items() if k not in ("name", "pools")}
        with self._write() as conn:
            conn.execute(
                "INSERT INTO computers (name, info, last_seen, info_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET info = excluded.info, last_seen = excluded.last_seen, "
                "info_at = excluded.info_at",
                (name, json.dumps(stored_info), now, now),
            )
            for pool in declared_pools:
                conn.execute("INSERT OR IGNORE INTO pools (name) VALUES (?)", (pool,))
                conn.execute(
                    "INSERT OR IGNORE INTO pool_members (pool, computer) VALUES (?, ?)",
                    (pool, name),
                )
        return self.get_computer(name)

    def touch_computers(self, names: list[str], at: float) -> None:
        if not names:
            return
        with self._write() as conn:
            conn.executemany(
                "UPDATE computers SET last_seen = ? WHERE name = ?", [(at, name) for name in names]
            )

    def _computers(
        self, where: str = "", args: tuple[Any, ...] = (), *, one: str | None = None
    ) -> list[Computer]:
        """Computers and their pools; *one* names the only computer *where* selects, so only
        its memberships are read (each info probe reads its computer back: reading every
        membership each time made registering 4,000 computers quadratic, bench/fleet.py)."""
        conn = self._conn()
        pools: dict[str, list[str]] = {}
        members = "SELECT pool, computer FROM pool_members"
        rows = (
            conn.execute(members + " ORDER BY pool")
            if one is None
            else conn.execute(members + " WHERE computer = ? ORDER BY pool", (one,))
        )
        for pool, computer in rows:
            pools.setdefault(computer, []).append(pool)
        computers = []
        for row in conn.execute(f"SELECT * FROM computers {where} ORDER BY name", args):
            info = json.loads(row["info"])
            computers.append(
                computer_from_info(
                    row["name"],
                    info,
                    pools=pools.get(row["name"], []),
                    enabled=row["enabled"],
                    max_tasks=row["max_tasks"],
                    last_seen=row["last_seen"],
                    info_at=row["info_at"],
                )
            )
        return computers

    def list_computers(self) -> list[Computer]:
        return self._computers()

    def get_computer(self, name: str) -> Computer:
        found = self._computers("WHERE name = ?", (name,), one=name)
        if not found:
            raise NotFound(f"no computer {name!r}: see `drqueue computers`")
        return found[0]

    def update_computer(self, name: str, *, actor: str = "", **changes: Any) -> None:
        allowed = {"enabled", "max_tasks"}
        if set(changes) - allowed:
            raise ValueError(f"cannot change {sorted(set(changes) - allowed)}")
        with self._write() as conn:
            if not conn.execute("SELECT 1 FROM computers WHERE name = ?", (name,)).fetchone():
                raise NotFound(f"no computer {name!r}: see `drqueue computers`")
            for key, value in changes.items():
                conn.execute(f"UPDATE computers SET {key} = ? WHERE name = ?", (value, name))
            self._event(
                conn, *policy.computer_changed_event(name, changes), computer=name, actor=actor
            )

    def list_pools(self) -> list[dict[str, Any]]:
        conn = self._conn()
        members: dict[str, list[str]] = {}
        for pool, computer in conn.execute(
            "SELECT pool, computer FROM pool_members ORDER BY computer"
        ):
            members.setdefault(pool, []).append(computer)
        return [
            {
                "name": row["name"],
                "description": row["description"],
                "members": members.get(row["name"], []),
            }
            for row in conn.execute("SELECT * FROM pools ORDER BY name")
        ]

    def create_pool(self, name: str, description: str = "", *, actor: str = "") -> None:
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM pools WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"pool {name!r} already exists")
            conn.execute("INSERT INTO pools (name, description) VALUES (?, ?)", (name, description))
            self._event(conn, *policy.pool_created_event(name), actor=actor)

    def delete_pool(self, name: str, *, actor: str = "") -> None:
        with self._write() as conn:
            if not conn.execute("DELETE FROM pools WHERE name = ?", (name,)).rowcount:
                raise NotFound(f"no pool {name!r}: see `drqueue pools`")
            conn.execute("DELETE FROM pool_members WHERE pool = ?", (name,))
            self._event(conn, *policy.pool_deleted_event(name), actor=actor)

    def set_pool_member(self, pool: str, computer: str, member: bool, *, actor: str = "") -> None:
        with self._write() as conn:
            if not conn.execute("SELECT 1 FROM pools WHERE name = ?", (pool,)).fetchone():
                raise NotFound(f"no pool {pool!r}: see `drqueue pools`")
            if not conn.execute("SELECT 1 FROM computers WHERE name = ?", (computer,)).fetchone():
                raise NotFound(f"no computer {computer!r}: see `drqueue computers`")
            if member:
                conn.execute(
                    "INSERT OR IGNORE INTO pool_members (pool, computer) VALUES (?, ?)",
                    (pool, computer),
                )
            elif not conn.execute(
                "DELETE FROM pool_members WHERE pool = ? AND computer = ?", (pool, computer)
            ).rowcount:
                raise NotFound(f"{computer} is not in pool {pool!r}")
            self._event(
                conn,
                *policy.pool_member_event(computer, pool, member),
                computer=computer,
                actor=actor,
            )

    # -- events -----------------------------------------------------------------------------

    def add_event(self, kind: str, message: str, **about: Any) -> None:
        with self._write() as conn:
            self._event(conn, kind, message, **about)

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
        sql = "SELECT * FROM events WHERE id > ?"
        args: list[Any] = [since_id]
        if before_id is not None:
            sql += " AND id < ?"
            args.append(before_id)
        if job_id is not None:
            sql += " AND job_id = ?"
            args.append(job_id)
        if kind is not None:  # base.kind_matches
            sql += " AND (kind = ? OR substr(kind, 1, ?) = ?)"
            args += [kind, len(kind) + 1, kind + "."]
        if actor is not None:
            sql += " AND actor = ?"
            args.append(actor)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        rows = self._conn().execute(sql, args).fetchall()
        return [_event_from_row(row) for row in reversed(rows)]

    # -- the outbox: mail and webhooks --------------------------------------------------------

    def notify_cursor(self) -> int | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'notify_cursor'").fetchone()
        return None if row is None else int(row[0])

    def enqueue_notices(self, notices: list[Notice], cursor: int) -> None:
        with self._write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO outbox (key, channel, target, payload, event_id, job_id, "
                "created_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        n.key,
                        n.channel,
                        n.target,
                        json.dumps(n.payload),
                        n.event_id,
                        n.job_id,
                        n.created_at,
                        n.due_at,
                    )
                    for n in notices
                ],
            )
            conn.execute(
                "INSERT INTO meta VALUES ('notify_cursor', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(cursor),),
            )
            if notices:
                conn.execute(
                    "DELETE FROM outbox WHERE done_at < ?", (time.time() - NOTICES_KEPT_SECONDS,)
                )

    def due_notices(self, channel: str, now: float, limit: int = 20) -> list[Notice]:
        rows = self._conn().execute(
            "SELECT * FROM outbox WHERE channel = ? AND due_at IS NOT NULL AND due_at <= ? "
            "ORDER BY due_at LIMIT ?",
            (channel, now, limit),
        )
        return [
            Notice(
                key=row["key"],
                channel=row["channel"],
                target=row["target"],
                payload=json.loads(row["payload"]),
                event_id=row["event_id"],
                job_id=row["job_id"],
                created_at=row["created_at"],
                due_at=row["due_at"],
                attempts=row["attempts"],
                last_error=row["last_error"],
            )
            for row in rows
        ]

    def finish_notice(self, notice: Notice, event: tuple[str, str]) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET due_at = NULL, done_at = ?, attempts = attempts + 1 "
                "WHERE key = ?",
                (time.time(), notice.key),
            )
            self._event(conn, *event, job_id=notice.job_id)

    def retry_notice(
        self, notice: Notice, due_at: float, error: str, event: tuple[str, str]
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE outbox SET due_at = ?, attempts = attempts + 1, last_error = ? "
                "WHERE key = ? AND due_at IS NOT NULL",
                (due_at, error, notice.key),
            )
            self._event(conn, *event, job_id=notice.job_id)
