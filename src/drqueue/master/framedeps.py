"""Which of a job's queued tasks may run now: frame-by-frame dependencies and the first-frame check.

A job submitted with ``after_frames`` (``--after JOB:frames``) runs a task once every task of
JOB that renders one of its frames has finished (:func:`drqueue.models.upstream_indexes`, by
frame number whatever the two jobs' block sizes); frames JOB does not render wait for nothing.
A job with ``first_frame_check`` runs only the first task of its order until that task has
finished; if it ends in error (its retries spent), the job is stopped with that reason.

The dispatcher asks :meth:`FrameGate.ready_tasks` for such a job instead of the store's plain
``next_queued``.  Each dispatch decision reads an upstream job's task states once
(``Store.task_states``: one indexed read, 10,000 tasks in a few milliseconds; skipped once the
upstream job has finished), so a decision costs the same whatever the order its tasks
finish in, and nothing is kept that a requeue or rerun through the API could make stale.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from drqueue.errors import NotFound
from drqueue.models import (
    FrameBlock,
    FrameGrid,
    Job,
    JobControl,
    Task,
    TaskState,
    first_task_index,
    upstream_indexes,
)
from drqueue.store.base import Store

#: Held tasks named in a job's waiting reason; the rest are counted.
REASON_TASKS = 5


def gated(job: Job) -> bool:
    """Whether the job's tasks need :class:`FrameGate` to be chosen."""
    return bool(job.spec.after_frames) or job.spec.first_frame_check


#: Seconds a gated job found with no ready task is not searched again while neither it nor
#: its upstream jobs changed counts (ten times the search's own time if that is longer).  (Counts can stay equal through a change, one task
#: requeued and another finished: the search is then at most this late.)
NOTHING_READY_SECONDS = 2.0
#: A search for ready tasks longer than this is not repeated before ten times its length has
#: passed, even when counts change (a running upstream's change all the time), and whether it
#: found tasks or not: a job whose ready tasks lie deep in its queue (``--order reverse`` behind
#: a sequential render) costs the dispatcher at most a tenth of its time.
LONG_SEARCH_SECONDS = 0.1


@dataclass(slots=True)
class _Upstream:
    """What a decision knows of one upstream job: its frame grid, its counts, and its tasks'
    states once asked for (None once every task finished: nothing to check)."""

    job_id: int
    grid: FrameGrid
    counts: tuple[int, ...]
    done: bool
    _states: list[TaskState] | None = None

    @property
    def counts_ended(self) -> bool:
        """Whether a task of it ended in error or was cancelled (Counts' error, cancelled)."""
        return bool(self.counts[4] or self.counts[5])

    def states(self, store: Store) -> list[TaskState] | None:
        if self.done:
            return None
        if self._states is None:
            self._states = store.task_states(self.job_id)
        return self._states


class FrameGate:
    """The ready tasks of gated jobs, for one dispatch decision or chores pass at a time."""

    def __init__(self, store: Store):
        self.store = store
        self._upstream: dict[int, _Upstream | None] = {}
        #: Job id -> (what its counts and its upstream jobs' were, until when, whether the
        #: search was long) when it was last found with no ready task, or after a long search.
        self._nothing_ready: dict[int, tuple[tuple, float, bool]] = {}
        #: Jobs whose first-frame check passed: not read again (a rerun is not checked again).
        self._checked: set[int] = set()

    def new_round(self) -> None:
        """Forget the upstream states read for the last decision."""
        self._upstream = {}

    def _upstream_of(self, job_id: int) -> _Upstream | None:
        if job_id not in self._upstream:
            try:
                job = self.store.get_job(job_id)
            except NotFound:
                self._upstream[job_id] = None
            else:
                counts = dataclasses.astuple(job.counts)
                done = job.counts.finished == job.counts.total
                self._upstream[job_id] = _Upstream(job_id, FrameGrid.of(job.spec), counts, done)
        return self._upstream[job_id]

    def _snapshot(self, job: Job) -> tuple:
        """What, changed, may make a task of *job* ready: its counts and its upstreams'."""
        upstream = [self._upstream_of(dep) for dep in job.spec.after_frames]
        return (
            dataclasses.astuple(job.counts),
            tuple(up.counts if up else None for up in upstream),
        )

    def frames_ready(self, job: Job, block: FrameBlock) -> bool:
        """Whether every upstream task that renders a frame of *block* has finished."""
        for dep in job.spec.after_frames:
            upstream = self._upstream_of(dep)
            if upstream is None:
                return False
            states = upstream.states(self.store)
            if states is None:
                continue
            for index in upstream_indexes(block, upstream.grid):
                if states[index] != TaskState.FINISHED:
                    return False
        return True

    def first_check(self, job: Job) -> Task | None:
        """The job's first-frame-check task while the check is not passed, else None."""
        if not job.spec.first_frame_check or job.id in self._checked:
            return None
        index = first_task_index(job.counts.total, job.spec.order)
        try:
            task = self.store.get_task(job.id, index)
        except NotFound:
            return None
        if task.state == TaskState.FINISHED:
            self._checked.add(job.id)
            return None
        return task

    def ready_tasks(self, job: Job, limit: int) -> list[Task]:
        """Up to *limit* of the job's queued tasks that may run now, in its order."""
        check = self.first_check(job)
        if check is not None:
            ready = check.state == TaskState.QUEUED and self.frames_ready(job, check.block)
            return [check] if ready and limit > 0 else []
        if not job.spec.after_frames:
            return self.store.next_queued(job.id, limit)
        now = time.monotonic()
        snapshot = self._snapshot(job)
        known = self._nothing_ready.get(job.id)
        if known and now < known[1] and (known[0] == snapshot or known[2]):
            return []
        found = self.store.next_queued(
            job.id, limit, ready=lambda block: self.frames_ready(job, block)
        )
        searched = time.monotonic() - now
        long = searched > LONG_SEARCH_SECONDS
        if found and not long:
            self._nothing_ready.pop(job.id, None)
        else:  # a long search waits ten times its length: at most a tenth of the dispatcher
            until = now + searched + max(0.0 if found else NOTHING_READY_SECONDS, 10 * searched)
            self._nothing_ready[job.id] = (snapshot, until, long)
        return found

    def failed_check(self, job: Job) -> str | None:
        """Why the job's first-frame check failed (its task ended in error or was cancelled),
        or None while it has not."""
        check = self.first_check(job)
        if check is None or check.state not in (TaskState.ERROR, TaskState.CANCELLED):
            return None
        return f"task {check.index} {check.state}: {check.reason or 'no reason given'}"

    def holds(self, job: Job) -> tuple[str | None, dict[int, str]]:
        """Why none of the job's queued tasks may run (None if one may), and the reason of
        each queued task held by an upstream task in error or cancelled (by index)."""
        if job.control != JobControl.ACTIVE or not job.counts.queued:
            return None, {}
        check = self.first_check(job)
        if check is not None and check.state in (TaskState.DISPATCHED, TaskState.RUNNING):
            return None, {}  # it runs: nothing to explain
        held: dict[int, str] = {}
        failed_deps: set[int] = set()
        if job.spec.after_frames:
            broken = {}
            for dep in job.spec.after_frames:
                upstream = self._upstream_of(dep)
                if upstream is None:
                    failed_deps.add(dep)
                elif upstream.counts_ended:
                    ended = [
                        i
                        for i, s in enumerate(upstream.states(self.store) or ())
                        if s in (TaskState.ERROR, TaskState.CANCELLED)
                    ]
                    if ended:
                        broken[dep] = (upstream, set(ended))
            if broken or failed_deps:
                for task in self.store.list_tasks(job.id, state=str(TaskState.QUEUED)):
                    reason = self._held_by(task, broken, failed_deps)
                    if reason:
                        held[task.index] = reason
        if check is not None:
            if check.state == TaskState.QUEUED and check.index not in held:
                if self.frames_ready(job, check.block):
                    return None, held
                return f"first frame check: task {check.index} waits for its frames", held
            if check.index in held:
                return f"first frame check: task {check.index} {held[check.index]}", held
            return None, held
        if self.ready_tasks(job, 1):
            return None, held
        deps = ", ".join(f"job {dep}" for dep in job.spec.after_frames)
        if not held:
            return f"waiting for frames of {deps}", held
        shown = ", ".join(str(index) for index in sorted(held)[:REASON_TASKS])
        more = f" and {len(held) - REASON_TASKS} more" if len(held) > REASON_TASKS else ""
        first = held[min(held)]
        return f"waiting for frames of {deps}: tasks {shown}{more} held ({first})", held

    def _held_by(
        self,
        task: Task,
        broken: dict[int, tuple[_Upstream, set[int]]],
        deleted: set[int],
    ) -> str | None:
        """The reason *task* is held by a deleted upstream job or an upstream task that ended
        in error or was cancelled, or None."""
        if deleted:
            return f"held: job {min(deleted)}, whose frames it waits for, was deleted"
        for dep, (upstream, ended) in broken.items():
            for index in upstream_indexes(task.block, upstream.grid):
                if index in ended:
                    state = (upstream.states(self.store) or {index: "error"})[index]
                    return f"held: task {index} of job {dep} (its frames) ended in {state}"
        return None
