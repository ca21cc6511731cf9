"""The farm's rules on tasks and jobs, apart from any database.

Every backend (``sqlite.py``, ``memory.py``) asks this module what a change means and then
stores it; none of them decides farm policy itself.  Here live:

- :func:`move`, the one check every task state change passes (:data:`drqueue.models.TRANSITIONS`),
  and what the change does to its job: which counter goes down and which up
  (:data:`COUNTER`), and whether the job may have ended or is open again;
- the state after a failed attempt (:func:`after_failure`: ``retries``) and after a lost one
  (:func:`after_loss`: ``max_lost``);
- the fields each kind of change sets on the task (dispatch, result, requeue, kill, loss);
- which tasks a requeue takes (:data:`REQUEUE_TAKES`), and when a delete is refused
  (:func:`check_delete`);
- when a job is finished (:func:`job_ended`) and when a dependency is done
  (:func:`dependency_done`, :func:`waiting_for`);
- what a task's change tells about its job (:func:`job_news`: its first finished frame, its
  end), which the notifier turns into mail and webhooks;
- when a mail or webhook that failed is tried again, and when it is given up
  (:func:`notice_retry_at`);
- the text of every event the store writes (the ``*_event`` functions).

It imports nothing of DrQueue's but ``models`` and ``errors``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from drqueue.errors import Conflict, InvalidJob
from drqueue.models import (
    Counts,
    FrameGrid,
    JobControl,
    JobSpec,
    TaskState,
    bounded_outputs,
    check_transition,
    task_seconds,
)

#: The job counter (a field of :class:`~drqueue.models.Counts`) each stored task state counts
#: in.  The one table of it: backends derive their counter columns, recounts and integrity
#: checks from it.  A task's state outside this table is impossible and repaired at start.
COUNTER: dict[TaskState, str] = {
    TaskState.QUEUED: "queued",
    TaskState.DISPATCHED: "running",
    TaskState.RUNNING: "running",
    TaskState.FINISHED: "finished",
    TaskState.ERROR: "error",
    TaskState.CANCELLED: "cancelled",
}

#: The counters, in the order of Counts' fields (after ``total``).
COUNTERS: tuple[str, ...] = ("queued", "running", "finished", "error", "cancelled")

#: The counters of tasks that ended: a job whose tasks are all in these has ended.
ENDED_COUNTERS: tuple[str, ...] = ("finished", "error", "cancelled")

#: Where a task in an impossible state is put by the integrity check, and why.
REPAIRED_STATE = TaskState.QUEUED
REPAIRED_REASON = "impossible state repaired at start"

#: The longest failure reason kept, in characters.
REASON_CHARS = 1000

#: The longest log tail kept per task, in characters.
TAIL_CHARS = 4000

#: The states each kind of requeue takes back to queued; "one" takes the task named.
REQUEUE_TAKES: dict[str, frozenset[TaskState]] = {
    "all": frozenset(COUNTER) - {TaskState.QUEUED},
    "failed": frozenset({TaskState.ERROR, TaskState.CANCELLED}),
}


@dataclass(frozen=True, slots=True)
class JobEffect:
    """What one task's state change does to its job."""

    #: The counter that goes down by one and the one that goes up; None when they are the same.
    counters: tuple[str, str] | None
    #: The task ended: the job has ended if all its tasks have (set its finished_at).
    may_end: bool
    #: The task is queued again: the job has not ended (clear its finished_at).
    reopens: bool


def _effects() -> dict[tuple[TaskState, TaskState], JobEffect]:
    effects = {}
    for old in COUNTER:
        for new in COUNTER:
            down, up = COUNTER[old], COUNTER[new]
            effects[old, new] = JobEffect(
                counters=None if down == up else (down, up),
                may_end=COUNTER[new] in ENDED_COUNTERS,
                reopens=new == TaskState.QUEUED,
            )
    return effects


#: Every (old, new) pair's effect, computed once: move() is on the dispatcher's hot path.
_EFFECTS = _effects()


def move(old: TaskState, new: TaskState) -> JobEffect:
    """The one check of a task's state change: ValueError unless the transition table allows
    *old* -> *new* (staying in a state, as a progress update does, is allowed).  Returns what
    the change does to the task's job, for the backend to store in the same transaction."""
    if old != new:
        check_transition(old, new)
    return _EFFECTS[old, new]


_STATE_VALUES = frozenset(str(state) for state in TaskState)


def count(states: Iterable[TaskState | str]) -> Counts:
    """A job's counts from its tasks' states (the recount of an integrity check)."""
    counts = Counts()
    for state in states:
        counts.total += 1
        name = COUNTER.get(TaskState(state)) if state in _STATE_VALUES else None
        if name is not None:
            setattr(counts, name, getattr(counts, name) + 1)
    return counts


def job_ended(counts: Counts) -> bool:
    """Every task of the job has ended (finished, error or cancelled)."""
    return counts.finished + counts.error + counts.cancelled == counts.total


def job_news(
    new: TaskState, index: int | None, counts: Counts, *, was_ended: bool
) -> list[tuple[str, str, int | None]]:
    """The events (kind, message, task index) a task's move to *new* brings about for its job,
    given the job's *counts* after the move and whether it had ended before it (*was_ended*):
    ``task.first-frame`` when task *index* is the job's first finished task (again after a
    rerun), and the job's end, ``job.finished`` or ``job.error`` (:func:`ended_event`; of
    the job, no task), when its last task just ended."""
    news: list[tuple[str, str, int | None]] = []
    if new == TaskState.FINISHED and counts.finished == 1 and index is not None:
        news.append((*first_frame_event(index), index))
    if not was_ended and job_ended(counts):
        news.append((*ended_event(counts), None))
    return news


def dependency_done(counts: Counts) -> bool:
    """A job others wait for (``--after``) lets them run once every one of its tasks finished."""
    return counts.finished == counts.total


def waiting_for(after: list[int], done: set[int]) -> list[int]:
    """The jobs of *after* that are not *done* yet, in their order."""
    return [dep for dep in after if dep not in done] if after else []


def may_dispatch(*, state: TaskState, control: str, host_blocked: bool) -> bool:
    """A task may be committed dispatched only if it is queued, its job is active and the
    chosen host is not blocked for the job: a stop or block since the decision wins."""
    return state == TaskState.QUEUED and control == JobControl.ACTIVE and not host_blocked


# -- the next state ---------------------------------------------------------------------------


class Outcome(NamedTuple):
    """A task's next state and the reason stored with it."""

    state: TaskState
    reason: str


def failure_reason(result: dict[str, Any]) -> str:
    """Why an attempt failed, from the runner's result: its reason, else the exit code."""
    return str(result.get("reason") or f"exit code {result.get('exit_code')}")[:REASON_CHARS]


def after_failure(*, failures: int, retries: int, reason: str) -> Outcome:
    """After its *failures*-th failure a task is queued again while it has retries left
    (``retries`` 0: one attempt), else it is an error that says how often it failed."""
    if failures <= retries:
        return Outcome(TaskState.QUEUED, reason)
    times = f"{failures} time{'s' if failures != 1 else ''}"
    return Outcome(TaskState.ERROR, f"{reason} (failed {times})")


class FailureStep(NamedTuple):
    """What a failed attempt does to its task (:func:`after_failed_result`)."""

    state: TaskState
    reason: str
    #: The task's failures after this attempt.
    failures: int
    #: Whether it counts against the host it ran on (``block_after_failures``).
    host_failure: bool
    #: The fields it sets beside: its class and detail, and a raised ``min_ram_mb``.
    fields: dict[str, Any]


#: The longest failure class and detail kept, in characters.
CLASS_CHARS = 40
DETAIL_CHARS = 500


def after_failed_result(result: dict[str, Any], *, failures: int, retries: int) -> FailureStep:
    """A failed attempt's effect, by the action the master chose for its class
    (``failure_action``, drqueue.failures; ``retry`` when it names none):

    - ``fail``: an error at once, not the host's fault;
    - ``backoff`` and ``retry-bigger``: queued again, counted against neither the task nor the
      host (``retry-bigger`` also stores the memory the task now needs, ``min_ram_mb``);
    - ``retry``: :func:`after_failure`, and a failure of the host.
    """
    reason = failure_reason(result)
    klass = result.get("failure_class")
    detail = result.get("failure_detail")
    fields: dict[str, Any] = {
        "failure_class": str(klass)[:CLASS_CHARS] if klass else None,
        "failure_detail": str(detail)[:DETAIL_CHARS] if detail else None,
    }
    if isinstance(result.get("min_ram_mb"), int) and result["min_ram_mb"] > 0:
        fields["min_ram_mb"] = result["min_ram_mb"]
    action = result.get("failure_action") or "retry"
    if action == "fail":
        return FailureStep(TaskState.ERROR, reason, failures + 1, False, fields)
    if action in ("backoff", "retry-bigger"):
        return FailureStep(TaskState.QUEUED, reason, failures, False, fields)
    new, reason = after_failure(failures=failures + 1, retries=retries, reason=reason)
    return FailureStep(new, reason, failures + 1, True, fields)


def after_loss(*, times_lost: int, counted: bool, max_lost: int, reason: str) -> Outcome:
    """A task taken off its engine goes back to the queue, unless the loss is *counted*
    against it and it has now been lost *max_lost* times: it probably crashes its engine."""
    if counted and times_lost >= max_lost:
        return Outcome(
            TaskState.ERROR, f"{reason} ({times_lost} times: the task may crash its engine)"
        )
    return Outcome(TaskState.QUEUED, reason)


def check_delete(job_id: int, *, running: int, dependants: list[int], force: bool) -> None:
    """Conflict unless the job may be deleted: not while its tasks run, nor while another job
    depends on it, unless *force*."""
    if force:
        return
    if running:
        raise Conflict(
            f"job {job_id} has {running} running tasks: stop or kill it first, or force the delete"
        )
    if dependants:
        raise Conflict(
            f"job {job_id} is a dependency of job {dependants[0]}: delete that first, "
            "or force the delete"
        )


# -- the fields each change sets -----------------------------------------------------------------


def dispatch_fields(
    *, attempts: int, attempt_id: str, engine_id: int, computer: str, log_path: str, now: float
) -> dict[str, Any]:
    """A queued task committed to one engine: a fresh attempt, nothing of the last one kept
    but its log path (when the dispatcher names none)."""
    fields: dict[str, Any] = {
        "attempt_id": attempt_id,
        "engine_id": engine_id,
        "computer": computer,
        "attempts": attempts + 1,
        "started_at": now,
        "ended_at": None,
        "exit_code": None,
        "progress": 0.0,
        "reason": None,
        "tail": "",
        "failure_class": None,
        "failure_detail": None,
    }
    if log_path:
        fields["log_path"] = log_path
    return fields


def result_fields(
    result: dict[str, Any], *, started_at: float | None, log_path: str | None, now: float
) -> tuple[dict[str, Any], float]:
    """The fields a runner's result sets, and how long the attempt ran.

    The duration is the runner's monotonic measure (task_seconds).  The start is the slave's
    own clock, which keeps the order of tasks on a farm whose clocks agree, but clamped between
    when the master dispatched the attempt (*started_at*) and *now*, so a slave's clock set
    wrong by any amount cannot place a task outside the time the master saw it out."""
    dispatched = started_at if started_at is not None else now
    seconds = task_seconds(result, now - dispatched)
    try:
        began = float(result["started_at"])
    except (KeyError, TypeError, ValueError):
        began = now - seconds
    began = min(max(began, dispatched), now - seconds) if began == began else now - seconds
    fields = {
        "exit_code": result.get("exit_code"),
        "started_at": began,
        "ended_at": began + seconds,
        "peak_rss_kb": result.get("peak_rss_kb"),
        "cpu_seconds": result.get("cpu_seconds"),
        "tail": str(result.get("tail") or "")[-TAIL_CHARS:],
        "outputs": bounded_outputs(result.get("outputs")),
        "log_path": result.get("log_path") or log_path,
    }
    return fields, seconds


def requeue_fields() -> dict[str, Any]:
    """A user's rerun or requeue: the task starts afresh, its failures and losses forgotten."""
    return {
        "attempt_id": None,
        "failures": 0,
        "lost": 0,
        "progress": 0.0,
        "reason": None,
        "engine_id": None,
    }


def kill_fields(actor: str, now: float) -> dict[str, Any]:
    """A running task a user killed: back to the queue, and not a failure."""
    return {
        "attempt_id": None,
        "engine_id": None,
        "progress": 0.0,
        "reason": f"killed by {actor or 'a user'}",
        "ended_at": now,
    }


def loss_fields(times_lost: int, reason: str, now: float) -> dict[str, Any]:
    """A task whose attempt was lost (or taken back) with its engine."""
    return {
        "attempt_id": None,
        "engine_id": None,
        "lost": times_lost,
        "reason": reason,
        "progress": 0.0,
        "ended_at": now,
    }


def queued_failure_reason(reason: str, last: str | None) -> str:
    """A queued task the job gives up on keeps its own last failure (often the renderer's
    error line) beside why."""
    return (f"{reason}; its last failure: {last}" if last else reason)[:REASON_CHARS]


# -- event texts -----------------------------------------------------------------------------------
# Each gives an event's (kind, message); the backend stores it with the job, task and computer.


def submitted_event(tasks: int, start: int, end: int, step: int) -> tuple[str, str]:
    return "job.submitted", f"{tasks} tasks, frames {start}-{end} by {step}"


def failed_event(
    index: int, computer: str | None, reason: str, failure_class: str | None = None
) -> tuple[str, str]:
    """``task 3 failed on alpha (oom): exit code 1: MemoryError``: the class when known."""
    kind = f" ({failure_class})" if failure_class else ""
    return "task.failed", f"task {index} failed on {computer}{kind}: {reason}"


def task_error_event(index: int, reason: str) -> tuple[str, str]:
    return "task.error", f"task {index}: {reason}"


def queued_failed_event(tasks: int, reason: str) -> tuple[str, str]:
    """Queued tasks nothing can run turned into errors (``job.error`` is the job's end)."""
    return "task.error", f"{tasks} queued tasks in error: {reason}"


def first_frame_event(index: int) -> tuple[str, str]:
    return "task.first-frame", f"task {index} is the job's first finished task"


def ended_event(counts: Counts) -> tuple[str, str]:
    """A job whose tasks have all ended: ``job.finished``, or ``job.error`` when one is in
    error (``job.cancelled`` when some were cancelled and none failed)."""
    if counts.error:
        return "job.error", f"ended in error: {counts.error} of {counts.total} tasks in error"
    if counts.cancelled:
        return "job.cancelled", f"ended: {counts.cancelled} of {counts.total} tasks cancelled"
    return "job.finished", f"finished: {counts.total} tasks"


def requeued_event(index: int, reason: str) -> tuple[str, str]:
    return "task.requeued", f"task {index}: {reason}"


def requeue_event(which: str, index: int | None, tasks: int) -> tuple[str, str]:
    what = {"all": "rerun", "failed": "requeue-failed", "one": f"requeue task {index}"}[which]
    return "job.requeue", f"{what}: {tasks} tasks"


def kill_event(tasks: int) -> tuple[str, str]:
    return "job.kill", f"killed {tasks} running tasks"


def control_event(control: str) -> tuple[str, str]:
    return f"job.{control}", f"job {control}"


def priority_event(priority: int) -> tuple[str, str]:
    return "job.priority", f"priority set to {priority}"


def deleted_event(job_id: int) -> tuple[str, str]:
    return "job.deleted", f"job {job_id} deleted"


def unblock_event(computer: str) -> tuple[str, str]:
    return "job.unblock", f"{computer} unblocked"


def computer_changed_event(name: str, changes: dict[str, Any]) -> tuple[str, str]:
    """ "computer alpha disabled", "computer alpha enabled, task limit removed"."""
    said = []
    for key, value in changes.items():
        if key == "enabled":
            said.append("enabled" if value else "disabled")
        elif key == "max_tasks":
            said.append("task limit removed" if value is None else f"task limit {value}")
        else:
            said.append(f"{key} set to {value}")
    return "computer.changed", f"computer {name} {', '.join(said)}"


def pool_created_event(name: str) -> tuple[str, str]:
    return "pool.created", f"pool {name} created"


def pool_deleted_event(name: str) -> tuple[str, str]:
    return "pool.deleted", f"pool {name} deleted"


def pool_member_event(computer: str, pool: str, member: bool) -> tuple[str, str]:
    return "pool.member", f"{computer} {'added to' if member else 'removed from'} {pool}"


# -- the outbox: mail and webhooks ------------------------------------------------------------


def notice_retry_at(
    *, attempts: int, created_at: float, now: float, first_delay: float, give_up_after: float
) -> float | None:
    """When a mail or webhook that has now failed *attempts* times is tried again: after
    *first_delay* seconds, doubling with each failure up to an hour; None (give up) once it
    is *give_up_after* seconds old, or would be by then."""
    delay = min(3600.0, first_delay * 2 ** max(0, attempts - 1))
    if now + delay - created_at > give_up_after:
        return None
    return now + delay


def delivered_event(channel: str, target: str, attempts: int, detail: str) -> tuple[str, str]:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return f"{channel}.sent", f"{channel} to {target} {detail}{tries}"


def delivery_failed_event(
    channel: str, target: str, attempts: int, error: str, retry_in: float
) -> tuple[str, str]:
    return (
        f"{channel}.failed",
        f"{channel} to {target} failed (attempt {attempts}): {error}; next try in {retry_in:.0f} s",
    )


def gave_up_event(channel: str, target: str, attempts: int, error: str) -> tuple[str, str]:
    return (
        f"{channel}.gave-up",
        f"{channel} to {target} given up after {attempts} attempts: {error}",
    )


def missing_dependency(dep: int) -> InvalidJob:
    """The refusal of a job whose ``after`` names a job that does not exist (every backend's)."""
    return InvalidJob(f"the job waits for job {dep} (after), which does not exist")


def check_frame_dependency(dep: int, upstream: JobSpec | None, spec: JobSpec) -> None:
    """Refuse ``after_frames`` naming job *dep* (its spec *upstream*, None if it does not
    exist) unless the two jobs share at least one frame number (every backend's rule)."""
    if upstream is None:
        raise InvalidJob(
            f"the job waits for the frames of job {dep} (after_frames), which does not exist"
        )
    if not FrameGrid.of(spec).overlaps(FrameGrid.of(upstream)):
        raise InvalidJob(
            f"the job's frames {spec.start}-{spec.end} (step {spec.step}) share no frame with "
            f"job {dep}'s {upstream.start}-{upstream.end} (step {upstream.step}): "
            "wait for the whole job (after) instead"
        )


def frame_dependants(job_id: int, specs: Iterable[tuple[int, JobSpec]]) -> list[int]:
    """The jobs among *specs* that wait for *job_id*, whole or frame by frame (a delete's
    check: :func:`check_delete`)."""
    return [
        other
        for other, spec in specs
        if other != job_id and (job_id in spec.after or job_id in spec.after_frames)
    ]


def missing_pool(pool: str) -> InvalidJob:
    """The refusal of a job that requires a pool that does not exist (every backend's)."""
    return InvalidJob(
        f"the job requires pool {pool!r}, which does not exist: see `drqueue pools`, "
        f"or create it (`drqueue pool create {pool}`)"
    )
