"""The in-memory store: the Store in plain Python objects, for fast tests of the farm's rules.

Like Dramatiq's ``StubBroker``: it keeps nothing on disk and nothing survives the process,
but it passes the same contract suite as the SQLite store (``tests/unit/test_store.py``), so
a unit test of the policy or of a caller may use it where a file would only cost time.  It
decides nothing itself: every rule comes from :mod:`drqueue.store.policy`, as in SQLite.

Every method holds one lock for its whole change, so each is one transaction, and what it
returns is a copy: a caller that changes a returned Task or Job changes nothing stored.
No store URL names it (a master on it would forget the farm when it stops): tests create
``MemoryStore()`` themselves.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from drqueue.errors import Conflict, InvalidJob, NotFound, StoreError
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
    Task,
    TaskState,
    task_ranks,
)
from drqueue.store import policy, transfer
from drqueue.store.base import (
    NOTICES_KEPT_SECONDS,
    Claim,
    Dispatch,
    Event,
    Notice,
    Store,
    computer_from_info,
    kind_matches,
)
from drqueue.store.jobquery import STATUSES, JobPage, JobQuery, page_of

#: The range of an integer the store keeps, as SQLite's INTEGER (a frame beyond it is refused).
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


@dataclass(slots=True)
class _JobRecord:
    """What the store keeps of a job beside its tasks."""

    id: int
    spec: JobSpec
    control: JobControl
    submitted_at: float
    idempotency_key: str | None
    counts: Counts
    task_ids: list[int] = field(default_factory=list)  # by task index
    finished_at: float | None = None
    task_seconds: float = 0.0
    timed_tasks: int = 0
    waiting_reason: str | None = None
    #: computer -> [failures, blocked]
    hosts: dict[str, list[Any]] = field(default_factory=dict)
    #: Its task ids in dispatch order (spec.order), made when first asked for.
    ordered_ids: list[int] | None = None

    def in_order(self) -> list[int]:
        if self.ordered_ids is None:
            ranks = task_ranks(len(self.task_ids), self.spec.order)
            self.ordered_ids = [
                task_id for _, task_id in sorted(zip(ranks, self.task_ids, strict=True))
            ]
        return self.ordered_ids


@dataclass(slots=True)
class _ComputerRecord:
    info: dict[str, Any]
    enabled: bool = True
    max_tasks: int | None = None
    last_seen: float | None = None
    info_at: float | None = None


def _dispatch(task: Task) -> Dispatch:
    return Dispatch(
        task_id=task.id,
        job_id=task.job_id,
        attempt_id=task.attempt_id or "",
        engine_id=task.engine_id if task.engine_id is not None else -1,
        computer=task.computer or "",
        started_at=task.started_at,
    )


def _copy(task: Task) -> Task:
    return dataclasses.replace(task, outputs=list(task.outputs))


class MemoryStore(Store):
    """The Store in memory: nothing survives the process."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._jobs: dict[int, _JobRecord] = {}
        self._tasks: dict[int, Task] = {}
        #: The task of each attempt on an engine (dispatched or running).
        self._attempts: dict[str, int] = {}
        self._computers: dict[str, _ComputerRecord] = {}
        self._pools: dict[str, str] = {}
        self._members: set[tuple[str, str]] = set()  # (pool, computer)
        self._events: list[Event] = []
        #: The outbox by key, each notice with when it was done (None: still owed).
        self._outbox: dict[str, tuple[Notice, float | None]] = {}
        self._notify_cursor: int | None = None
        self._next_job = self._next_task = self._next_event = 1

    # -- life --------------------------------------------------------------------------------

    def check_integrity(self) -> list[str]:
        found = []
        with self._lock:
            for job in self._jobs.values():
                actual = policy.count(self._tasks[t].state for t in job.task_ids)
                if actual != job.counts:
                    job.counts = actual
                    found.append(f"recounted the tasks of job {job.id}")
        return found

    def close(self) -> None:
        pass

    def backup(self, path: str) -> None:
        raise StoreError("the memory store keeps nothing to back up: use a sqlite:/// store")

    # -- moving a farm between stores (drqueue.store.transfer) ----------------------------------

    def is_empty(self) -> bool:
        with self._lock:
            return not (self._jobs or self._tasks or self._computers or self._pools or self._events)

    def export_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """A snapshot taken under the lock, handed out after it."""
        with self._lock:
            records = list(self._records())
        yield from records

    def _records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every stored object as (kind, record) of store.transfer, in its kind order."""
        for name, description in sorted(self._pools.items()):
            yield "pool", transfer.pool_record(name, description)
        for name, computer in sorted(self._computers.items()):
            yield (
                "computer",
                transfer.computer_record(
                    name,
                    dict(computer.info),
                    enabled=computer.enabled,
                    max_tasks=computer.max_tasks,
                    last_seen=computer.last_seen,
                    info_at=computer.info_at,
                ),
            )
        for pool, computer_name in sorted(self._members):
            yield "member", transfer.member_record(pool, computer_name)
        jobs = [self._jobs[job_id] for job_id in sorted(self._jobs)]
        for job in jobs:
            yield (
                "job",
                transfer.job_record(
                    job.id,
                    job.spec,
                    control=job.control,
                    submitted_at=job.submitted_at,
                    finished_at=job.finished_at,
                    task_seconds=job.task_seconds,
                    timed_tasks=job.timed_tasks,
                    waiting_reason=job.waiting_reason,
                    idempotency_key=job.idempotency_key,
                ),
            )
        for job in jobs:
            for task_id in job.task_ids:
                yield "task", transfer.task_record(self._tasks[task_id])
        for job in jobs:
            for computer_name, (failures, blocked) in sorted(job.hosts.items()):
                yield "host", transfer.host_record(job.id, computer_name, failures, blocked)
        for event in self._events:
            yield "event", transfer.event_record(event)

    def import_records(self, records: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, int]:
        """The records are stored aside and taken in only once all are read: all or nothing."""
        counts = dict.fromkeys(transfer.STORE_KINDS, 0)
        jobs: dict[int, _JobRecord] = {}
        tasks: dict[int, Task] = {}
        computers: dict[str, _ComputerRecord] = {}
        pools: dict[str, str] = {}
        members: set[tuple[str, str]] = set()
        events: list[Event] = []
        with self._lock:
            if not self.is_empty():
                raise StoreError(transfer.NOT_EMPTY)
            for kind, record in records:
                if kind == "task":
                    task = transfer.task_from_record(record)
                    tasks[task.id] = task
                    jobs[task.job_id].task_ids.append(task.id)
                elif kind == "job":
                    jobs[record["id"]] = _JobRecord(
                        id=record["id"],
                        spec=transfer.spec_from_record(record["spec"]),
                        control=JobControl(record["control"]),
                        submitted_at=record["submitted_at"],
                        idempotency_key=record["idempotency_key"],
                        counts=Counts(),
                        finished_at=record["finished_at"],
                        task_seconds=record["task_seconds"],
                        timed_tasks=record["timed_tasks"],
                        waiting_reason=record["waiting_reason"],
                    )
                elif kind == "event":
                    events.append(transfer.event_from_record(record))
                elif kind == "host":
                    host = [record["failures"], record["blocked"]]
                    jobs[record["job_id"]].hosts[record["computer"]] = host
                elif kind == "computer":
                    computers[record["name"]] = _ComputerRecord(
                        info=dict(record["info"]),
                        enabled=record["enabled"],
                        max_tasks=record["max_tasks"],
                        last_seen=record["last_seen"],
                        info_at=record["info_at"],
                    )
                elif kind == "pool":
                    pools[record["name"]] = record["description"]
                elif kind == "member":
                    members.add((record["pool"], record["computer"]))
                else:
                    raise ValueError(f"a store imports no {kind!r} records")
                counts[kind] += 1
            for job in jobs.values():
                job.task_ids.sort(key=lambda task_id: tasks[task_id].index)
                job.counts = policy.count(tasks[task_id].state for task_id in job.task_ids)
            events.sort(key=lambda event: event.id)
            self._jobs, self._tasks, self._events = jobs, tasks, events
            self._computers, self._pools, self._members = computers, pools, members
            self._attempts = {
                task.attempt_id: task.id
                for task in tasks.values()
                if task.attempt_id is not None and task.state in ACTIVE_STATES
            }
            self._next_job = max(self._next_job, max(jobs, default=0) + 1)
            self._next_task = max(self._next_task, max(tasks, default=0) + 1)
            self._next_event = max(self._next_event, max((e.id for e in events), default=0) + 1)
        return counts

    # -- the one place a task's state changes ---------------------------------------------------

    def _move(self, task: Task, new: TaskState, **fields: Any) -> None:
        """Move one task to state *new*, setting *fields*, and keep its job's counts in step."""
        effect = policy.move(task.state, new)
        job = self._jobs[task.job_id]
        if task.attempt_id is not None:  # indexed again below if it stays on an engine
            self._attempts.pop(task.attempt_id, None)
        for name, value in fields.items():
            setattr(task, name, value)
        task.state = new
        if task.attempt_id is not None and new in ACTIVE_STATES:
            self._attempts[task.attempt_id] = task.id
        counts = job.counts
        if effect.counters:
            down, up = effect.counters
            setattr(counts, down, getattr(counts, down) - 1)
            setattr(counts, up, getattr(counts, up) + 1)
        if effect.may_end:
            was_ended = job.finished_at is not None
            if not was_ended and policy.job_ended(counts):
                job.finished_at = time.time()
            for kind, message, index in policy.job_news(
                new, task.index, counts, was_ended=was_ended
            ):
                self._event(kind, message, job_id=job.id, task_index=index)
        elif effect.reopens:
            job.finished_at = None

    def _event(self, kind: str, message: str, **about: Any) -> None:
        self._events.append(
            Event(
                id=self._next_event,
                at=time.time(),
                kind=kind,
                message=message,
                job_id=about.get("job_id"),
                task_index=about.get("task_index"),
                computer=about.get("computer"),
                actor=about.get("actor"),
            )
        )
        self._next_event += 1

    # -- jobs ---------------------------------------------------------------------------------

    def _job(self, job_id: int) -> _JobRecord:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    def _task(self, job: _JobRecord, index: int | None) -> Task:
        if index is None or not 0 <= index < len(job.task_ids):
            raise NotFound(f"job {job.id} has no task {index}")
        return self._tasks[job.task_ids[index]]

    def create_job(
        self,
        spec: JobSpec,
        blocks: Sequence[FrameBlock],
        *,
        actor: str = "",
        idempotency_key: str | None = None,
    ) -> int:
        for block in blocks:
            for number in (block.start, block.end, block.step):
                if not _INT_MIN <= number <= _INT_MAX:
                    raise OverflowError(f"frame {number} does not fit a 64-bit integer")
        with self._lock:
            for dep in spec.after:
                if dep not in self._jobs:
                    raise policy.missing_dependency(dep)
            for dep in spec.after_frames:
                upstream = self._jobs.get(dep)
                policy.check_frame_dependency(dep, upstream.spec if upstream else None, spec)
            for pool in spec.requirements.pools:
                if pool not in self._pools:
                    raise policy.missing_pool(pool)
            if idempotency_key is not None:
                existing = self._job_by_key(spec.owner, idempotency_key)
                if existing is not None:
                    raise Conflict(f"job {existing} already has this Idempotency-Key")
            job_id = self._next_job
            self._next_job += 1
            spec = copy.deepcopy(spec)
            if not spec.name:
                spec.name = f"job-{job_id}"
            job = _JobRecord(
                id=job_id,
                spec=spec,
                control=JobControl.ACTIVE,
                submitted_at=time.time(),
                idempotency_key=idempotency_key,
                counts=Counts(total=len(blocks), queued=len(blocks)),
            )
            for index, block in enumerate(blocks):
                task = Task(
                    id=self._next_task,
                    job_id=job_id,
                    index=index,
                    block=block,
                    state=TaskState.QUEUED,
                )
                self._tasks[task.id] = task
                job.task_ids.append(task.id)
                self._next_task += 1
            self._jobs[job_id] = job
            self._event(
                *policy.submitted_event(len(blocks), spec.start, spec.end, spec.step),
                job_id=job_id,
                actor=actor or spec.owner,
            )
        return job_id

    def _job_by_key(self, owner: str, key: str) -> int | None:
        for job in self._jobs.values():
            if job.spec.owner == owner and job.idempotency_key == key:
                return job.id
        return None

    def job_by_key(self, owner: str, key: str) -> int | None:
        with self._lock:
            return self._job_by_key(owner, key)

    def _job_out(self, job: _JobRecord) -> Job:
        done = {
            dep
            for dep in job.spec.after
            if dep in self._jobs and policy.dependency_done(self._jobs[dep].counts)
        }
        return Job(
            id=job.id,
            spec=job.spec,
            control=job.control,
            counts=dataclasses.replace(job.counts),
            submitted_at=job.submitted_at,
            finished_at=job.finished_at,
            task_seconds=job.task_seconds,
            timed_tasks=job.timed_tasks,
            waiting_for=policy.waiting_for(job.spec.after, done),
            waiting_reason=job.waiting_reason,
            blocked_hosts=sorted(c for c, (_, blocked) in job.hosts.items() if blocked),
        )

    def get_job(self, job_id: int) -> Job:
        with self._lock:
            return self._job_out(self._job(job_id))

    def list_jobs(self, *, owner: str | None = None, limit: int | None = None) -> list[Job]:
        with self._lock:
            jobs = [j for j in self._jobs.values() if not owner or j.spec.owner == owner]
            if limit:
                jobs = jobs[-limit:]
            return [self._job_out(job) for job in jobs]

    def page_jobs(self, query: JobQuery) -> JobPage:
        with self._lock:
            if query.ids is not None and not query.attention:
                records = [self._jobs[i] for i in query.ids if i in self._jobs]
            else:
                records = list(self._jobs.values())
            return page_of((self._job_out(job) for job in records), query)

    def job_status_counts(self) -> dict[str, int]:
        with self._lock:
            counts = dict.fromkeys(STATUSES, 0)
            for job in self._jobs.values():
                counts[self._job_out(job).status] += 1
            return counts

    def job_ids(self) -> set[int]:
        with self._lock:
            return set(self._jobs)

    def set_job_control(self, job_id: int, control: str, *, actor: str = "") -> None:
        control = JobControl(control)
        with self._lock:
            self._job(job_id).control = control
            self._event(*policy.control_event(control), job_id=job_id, actor=actor)

    def set_job_priority(self, job_id: int, priority: int, *, actor: str = "") -> None:
        if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
            raise InvalidJob(
                f"priority must be between {PRIORITY_MIN} and {PRIORITY_MAX}, not {priority}"
            )
        with self._lock:
            job = self._job(job_id)
            job.spec = dataclasses.replace(job.spec, priority=priority)
            self._event(*policy.priority_event(priority), job_id=job_id, actor=actor)

    def delete_job(self, job_id: int, *, force: bool = False, actor: str = "") -> list[Dispatch]:
        with self._lock:
            job = self._job(job_id)
            dependants = policy.frame_dependants(
                job_id, ((other.id, other.spec) for other in self._jobs.values())
            )
            policy.check_delete(
                job_id, running=job.counts.running, dependants=dependants, force=force
            )
            active = []
            for task_id in job.task_ids:
                task = self._tasks.pop(task_id)
                if task.state in ACTIVE_STATES:
                    active.append(_dispatch(task))
                    self._attempts.pop(task.attempt_id or "", None)
            del self._jobs[job_id]
            self._event(*policy.deleted_event(job_id), job_id=job_id, actor=actor)
        return active

    def requeue_tasks(
        self, job_id: int, *, which: str, index: int | None = None, actor: str = ""
    ) -> list[Dispatch]:
        with self._lock:
            job = self._job(job_id)
            if which in policy.REQUEUE_TAKES:
                takes = policy.REQUEUE_TAKES[which]
                tasks = [self._tasks[t] for t in job.task_ids if self._tasks[t].state in takes]
            elif which == "one":
                tasks = [self._task(job, index)]
            else:
                raise ValueError(which)
            was_active = []
            for task in tasks:
                if task.state in ACTIVE_STATES:
                    was_active.append(_dispatch(task))
                if task.state != TaskState.QUEUED:
                    self._move(task, TaskState.QUEUED, **policy.requeue_fields())
            if which in policy.REQUEUE_TAKES:
                job.hosts.clear()
            self._event(*policy.requeue_event(which, index, len(tasks)), job_id=job_id, actor=actor)
        return was_active

    def kill_tasks(
        self, job_id: int, *, index: int | None = None, actor: str = ""
    ) -> list[Dispatch]:
        with self._lock:
            job = self._job(job_id)
            if index is not None:
                tasks = [self._task(job, index)]
            else:
                tasks = [self._tasks[t] for t in job.task_ids]
            killed = []
            for task in tasks:
                if task.state in ACTIVE_STATES:
                    killed.append(_dispatch(task))
                    self._move(task, TaskState.QUEUED, **policy.kill_fields(actor, time.time()))
            self._event(*policy.kill_event(len(killed)), job_id=job_id, actor=actor)
        return killed

    def set_job_waiting_reason(self, reasons: dict[int, str | None]) -> None:
        with self._lock:
            for job_id, reason in reasons.items():
                if job_id in self._jobs:
                    self._jobs[job_id].waiting_reason = reason

    def block_host(self, job_id: int, computer: str) -> None:
        with self._lock:
            self._job(job_id).hosts.setdefault(computer, [0, False])[1] = True

    def blocked_hosts(self) -> dict[int, set[str]]:
        with self._lock:
            result: dict[int, set[str]] = {}
            for job in self._jobs.values():
                for computer, (_, blocked) in job.hosts.items():
                    if blocked:
                        result.setdefault(job.id, set()).add(computer)
            return result

    def host_failures(self, job_id: int) -> dict[str, int]:
        with self._lock:
            job = self._jobs.get(job_id)
            return {c: failures for c, (failures, _) in job.hosts.items()} if job else {}

    def unblock_host(self, job_id: int, computer: str, *, actor: str = "") -> None:
        with self._lock:
            host = self._job(job_id).hosts.get(computer)
            if host is None or not host[1]:
                raise NotFound(f"host {computer!r} is not blocked for job {job_id}")
            host[:] = [0, False]
            self._event(*policy.unblock_event(computer), job_id=job_id, actor=actor)

    # -- tasks ----------------------------------------------------------------------------------

    def list_tasks(
        self, job_id: int, *, state: str | None = None, offset: int = 0, limit: int | None = None
    ) -> list[Task]:
        with self._lock:
            tasks = [self._tasks[t] for t in self._job(job_id).task_ids]
            if state is not None:
                tasks = [t for t in tasks if t.state == state]
            end = None if limit is None else offset + limit
            return [_copy(t) for t in tasks[offset:end]]

    def get_task(self, job_id: int, index: int) -> Task:
        with self._lock:
            return _copy(self._task(self._job(job_id), index))

    def task_for_frame(self, job_id: int, frame: int) -> Task:
        with self._lock:
            spec = self._job(job_id).spec
            if not spec.start <= frame <= spec.end or (frame - spec.start) % spec.step:
                raise NotFound(f"job {job_id} does not render frame {frame}")
            return self.get_task(job_id, (frame - spec.start) // (spec.step * spec.block_size))

    def task_states(self, job_id: int) -> list[TaskState]:
        with self._lock:
            return [self._tasks[t].state for t in self._job(job_id).task_ids]

    def last_finished_task(self, job_id: int) -> Task | None:
        with self._lock:
            finished = [
                self._tasks[t]
                for t in self._job(job_id).task_ids
                if self._tasks[t].state == TaskState.FINISHED
            ]
            last = max(finished, key=lambda t: (t.ended_at or 0.0, t.index), default=None)
            return _copy(last) if last else None

    def frames_finished(self, since: float, until: float) -> dict[int, int]:
        with self._lock:
            hours: dict[int, int] = {}
            for task in self._tasks.values():
                ended = task.ended_at
                if task.state == TaskState.FINISHED and ended and since < ended <= until:
                    hour = int(ended // 3600)
                    hours[hour] = hours.get(hour, 0) + len(task.block)
            return hours

    def runnable_jobs(self) -> list[Job]:
        with self._lock:
            return [
                self._job_out(job)
                for job in self._jobs.values()
                if job.counts.queued > 0 and job.control == JobControl.ACTIVE
            ]

    def next_queued(
        self, job_id: int, limit: int, *, ready: Callable[[FrameBlock], bool] | None = None
    ) -> list[Task]:
        with self._lock:
            job = self._jobs.get(job_id)
            found: list[Task] = []
            for task_id in job.in_order() if job else ():
                if len(found) >= limit:
                    break
                task = self._tasks[task_id]
                if task.state == TaskState.QUEUED and (ready is None or ready(task.block)):
                    found.append(_copy(task))
            return found

    def hold_tasks(self, job_id: int, reasons: dict[int, str | None]) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            for index, reason in reasons.items():
                if job and 0 <= index < len(job.task_ids):
                    task = self._tasks[job.task_ids[index]]
                    if task.state == TaskState.QUEUED:
                        task.reason = reason

    def mark_dispatched(
        self, task_id: int, attempt_id: str, engine_id: int, computer: str, log_path: str = ""
    ) -> bool:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return False
            job = self._jobs[task.job_id]
            host = job.hosts.get(computer)
            if not policy.may_dispatch(
                state=task.state, control=job.control, host_blocked=bool(host and host[1])
            ):
                return False
            self._move(
                task,
                TaskState.DISPATCHED,
                **policy.dispatch_fields(
                    attempts=task.attempts,
                    attempt_id=attempt_id,
                    engine_id=engine_id,
                    computer=computer,
                    log_path=log_path,
                    now=time.time(),
                ),
            )
            return True

    def mark_dispatched_many(self, claims: list[Claim]) -> list[bool]:
        with self._lock:  # one transaction: no other writer sees half of them
            return [
                self.mark_dispatched(c.task_id, c.attempt_id, c.engine_id, c.computer, c.log_path)
                for c in claims
            ]

    def _active(self, attempt_id: str) -> Task | None:
        task_id = self._attempts.get(attempt_id)
        return None if task_id is None else self._tasks.get(task_id)

    def mark_running(self, attempt_id: str, progress: float, tail: str) -> None:
        with self._lock:
            task = self._active(attempt_id)
            if task is not None:
                self._move(
                    task, TaskState.RUNNING, progress=progress, tail=tail[-policy.TAIL_CHARS :]
                )

    def record_result(self, attempt_id: str, result: dict[str, Any]) -> str | None:
        with self._lock:
            task = self._active(attempt_id)
            if task is None:
                return None
            job = self._jobs[task.job_id]
            fields, seconds = policy.result_fields(
                result, started_at=task.started_at, log_path=task.log_path, now=time.time()
            )
            computer = task.computer
            if result.get("status") == "finished":
                self._move(task, TaskState.FINISHED, progress=1.0, reason=None, **fields)
                job.task_seconds += seconds
                job.timed_tasks += 1
                return str(TaskState.FINISHED)
            step = policy.after_failed_result(
                result, failures=task.failures, retries=job.spec.retries
            )
            self._move(
                task,
                step.state,
                failures=step.failures,
                reason=step.reason,
                attempt_id=None,
                engine_id=None,
                **fields,
                **step.fields,
            )
            self._event(
                *policy.failed_event(
                    task.index, computer, step.reason, step.fields["failure_class"]
                ),
                job_id=job.id,
                task_index=task.index,
                computer=computer,
            )
            new = step.state
            if computer and step.host_failure:
                job.hosts.setdefault(computer, [0, False])[0] += 1
            return str(new)

    def record_results(self, results: list[tuple[str, dict[str, Any]]]) -> list[str | None]:
        with self._lock:
            return [self.record_result(attempt_id, result) for attempt_id, result in results]

    def fail_task(self, task_id: int, reason: str) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task.state != TaskState.QUEUED:
                return
            self._move(task, TaskState.ERROR, reason=reason, attempt_id=None)
            self._event(
                *policy.task_error_event(task.index, reason),
                job_id=task.job_id,
                task_index=task.index,
            )

    def fail_queued_tasks(self, job_id: int, reason: str) -> int:
        with self._lock:
            job = self._jobs.get(job_id)
            tasks = [
                self._tasks[t]
                for t in (job.task_ids if job else ())
                if self._tasks[t].state == TaskState.QUEUED
            ]
            for task in tasks:
                full = policy.queued_failure_reason(reason, task.reason)
                self._move(task, TaskState.ERROR, reason=full, attempt_id=None)
            if tasks:
                self._event(*policy.queued_failed_event(len(tasks), reason), job_id=job_id)
            return len(tasks)

    def requeue_attempts(self, attempt_ids: list[str], reason: str, *, lost: bool) -> int:
        count = 0
        with self._lock:
            for attempt_id in attempt_ids:
                task = self._active(attempt_id)
                if task is None:
                    continue
                count += 1
                times_lost = task.lost + (1 if lost else 0)
                new, full_reason = policy.after_loss(
                    times_lost=times_lost, counted=lost, max_lost=self.max_lost, reason=reason
                )
                computer = task.computer
                self._move(task, new, **policy.loss_fields(times_lost, full_reason, time.time()))
                self._event(
                    *policy.requeued_event(task.index, full_reason),
                    job_id=task.job_id,
                    task_index=task.index,
                    computer=computer,
                )
        return count

    def active_dispatches(self) -> list[Dispatch]:
        with self._lock:
            return [_dispatch(self._tasks[t]) for t in self._attempts.values()]

    # -- computers and pools ------------------------------------------------------------------

    def upsert_computer(self, info: dict[str, Any]) -> Computer:
        name = info["name"]
        now = time.time()
        with self._lock:
            record = self._computers.setdefault(name, _ComputerRecord(info={}))
            record.info = {k: v for k, v in info.items() if k not in ("name", "pools")}
            record.last_seen = record.info_at = now
            for pool in info.get("pools") or []:
                if pool:
                    self._pools.setdefault(pool, "")
                    self._members.add((pool, name))
            return self.get_computer(name)

    def touch_computers(self, names: list[str], at: float) -> None:
        with self._lock:
            for name in names:
                if name in self._computers:
                    self._computers[name].last_seen = at

    def _computer_out(self, name: str, record: _ComputerRecord) -> Computer:
        return computer_from_info(
            name,
            record.info,
            pools=sorted(pool for pool, member in self._members if member == name),
            enabled=record.enabled,
            max_tasks=record.max_tasks,
            last_seen=record.last_seen,
            info_at=record.info_at,
        )

    def list_computers(self) -> list[Computer]:
        with self._lock:
            return [self._computer_out(n, r) for n, r in sorted(self._computers.items())]

    def get_computer(self, name: str) -> Computer:
        with self._lock:
            record = self._computers.get(name)
            if record is None:
                raise NotFound(f"no computer {name!r}: see `drqueue computers`")
            return self._computer_out(name, record)

    def update_computer(self, name: str, *, actor: str = "", **changes: Any) -> None:
        allowed = {"enabled", "max_tasks"}
        if set(changes) - allowed:
            raise ValueError(f"cannot change {sorted(set(changes) - allowed)}")
        with self._lock:
            record = self._computers.get(name)
            if record is None:
                raise NotFound(f"no computer {name!r}: see `drqueue computers`")
            for key, value in changes.items():
                setattr(record, key, bool(value) if key == "enabled" else value)
            self._event(*policy.computer_changed_event(name, changes), computer=name, actor=actor)

    def list_pools(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "name": name,
                    "description": description,
                    "members": sorted(c for pool, c in self._members if pool == name),
                }
                for name, description in sorted(self._pools.items())
            ]

    def create_pool(self, name: str, description: str = "", *, actor: str = "") -> None:
        with self._lock:
            if name in self._pools:
                raise Conflict(f"pool {name!r} already exists")
            self._pools[name] = description
            self._event(*policy.pool_created_event(name), actor=actor)

    def delete_pool(self, name: str, *, actor: str = "") -> None:
        with self._lock:
            if self._pools.pop(name, None) is None:
                raise NotFound(f"no pool {name!r}: see `drqueue pools`")
            self._members = {(p, c) for p, c in self._members if p != name}
            self._event(*policy.pool_deleted_event(name), actor=actor)

    def set_pool_member(self, pool: str, computer: str, member: bool, *, actor: str = "") -> None:
        with self._lock:
            if pool not in self._pools:
                raise NotFound(f"no pool {pool!r}: see `drqueue pools`")
            if computer not in self._computers:
                raise NotFound(f"no computer {computer!r}: see `drqueue computers`")
            if member:
                self._members.add((pool, computer))
            elif (pool, computer) in self._members:
                self._members.discard((pool, computer))
            else:
                raise NotFound(f"{computer} is not in pool {pool!r}")
            self._event(
                *policy.pool_member_event(computer, pool, member), computer=computer, actor=actor
            )

    # -- events -----------------------------------------------------------------------------

    def add_event(self, kind: str, message: str, **about: Any) -> None:
        with self._lock:
            self._event(kind, message, **about)

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
        with self._lock:
            found = [
                e
                for e in self._events
                if e.id > since_id
                and (before_id is None or e.id < before_id)
                and (job_id is None or e.job_id == job_id)
                and (kind is None or kind_matches(e.kind, kind))
                and (actor is None or e.actor == actor)
            ]
            return [dataclasses.replace(e) for e in found[-limit:]] if limit > 0 else []

    # -- the outbox: mail and webhooks --------------------------------------------------------

    def notify_cursor(self) -> int | None:
        with self._lock:
            return self._notify_cursor

    def enqueue_notices(self, notices: list[Notice], cursor: int) -> None:
        with self._lock:
            for notice in notices:
                self._outbox.setdefault(notice.key, (copy.deepcopy(notice), None))
            self._notify_cursor = cursor
            old = time.time() - NOTICES_KEPT_SECONDS
            for key, (_notice, done_at) in list(self._outbox.items()):
                if done_at is not None and done_at < old:
                    del self._outbox[key]

    def due_notices(self, channel: str, now: float, limit: int = 20) -> list[Notice]:
        with self._lock:
            due = [
                notice
                for notice, _done_at in self._outbox.values()
                if notice.channel == channel and notice.due_at is not None and notice.due_at <= now
            ]
            due.sort(key=lambda notice: notice.due_at or 0.0)
            return [copy.deepcopy(notice) for notice in due[:limit]]

    def finish_notice(self, notice: Notice, event: tuple[str, str]) -> None:
        with self._lock:
            held = self._outbox.get(notice.key)
            if held is not None:
                held[0].due_at = None
                held[0].attempts += 1
                self._outbox[notice.key] = (held[0], time.time())
            self._event(*event, job_id=notice.job_id)

    def retry_notice(
        self, notice: Notice, due_at: float, error: str, event: tuple[str, str]
    ) -> None:
        with self._lock:
            held = self._outbox.get(notice.key)
            if held is not None and held[0].due_at is not None:
                held[0].due_at = due_at
                held[0].attempts += 1
                held[0].last_error = error
            self._event(*event, job_id=notice.job_id)
