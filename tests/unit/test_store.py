"""Contract tests of the store (ARCHITECTURE.md: "The store is the single source of truth").

Written against the Store interface; ``store`` is parametrised by backend (SQLite, and the
in-memory store), so every backend runs the same contract.  Every test checks that the
job's task counts agree with its tasks after each change.  The tests of one backend's own
machinery (reopening a file, its integrity repair, backups, schema versions) take
``sqlite_store``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid

import pytest

from drqueue.errors import Conflict, InvalidJob, NotFound, StoreError
from drqueue.models import Counts, FrameBlock, JobSpec, TaskState, split_frames
from drqueue.store import SCHEMA_VERSION, Store
from drqueue.store.base import Claim
from drqueue.store.jobquery import JobQuery
from drqueue.store.sqlite import SQLiteStore


@pytest.fixture()
def store(any_store) -> Store:
    """Every backend in turn (conftest.STORE_BACKENDS)."""
    return any_store


@pytest.fixture()
def sqlite_store(tmp_path) -> SQLiteStore:
    backend = SQLiteStore(tmp_path / "db" / "drqueue.sqlite")
    yield backend
    backend.close()


def submit(
    store: Store, start: int = 1, end: int = 4, *, retries: int = 3, block_size: int = 1, **options
) -> int:
    spec = JobSpec(
        "shell",
        start,
        end,
        block_size=block_size,
        retries=retries,
        params={"cmd": "true"},
        **options,
    )
    return store.create_job(spec, split_frames(start, end, 1, block_size))


def recount(store: Store, job_id: int) -> Counts:
    """The counts as the tasks themselves say."""
    counts = Counts()
    for task in store.list_tasks(job_id):
        counts.total += 1
        if task.state == TaskState.QUEUED:
            counts.queued += 1
        elif task.state in (TaskState.DISPATCHED, TaskState.RUNNING):
            counts.running += 1
        elif task.state == TaskState.FINISHED:
            counts.finished += 1
        elif task.state == TaskState.ERROR:
            counts.error += 1
        elif task.state == TaskState.CANCELLED:
            counts.cancelled += 1
    return counts


def counts_of(store: Store, job_id: int) -> Counts:
    """The stored counts, checked against the tasks."""
    stored = store.get_job(job_id).counts
    assert stored == recount(store, job_id), "the job's counts drifted from its tasks"
    return stored


def dispatch(
    store: Store, job_id: int, index: int, engine: int = 0, computer: str = "alpha"
) -> str:
    task = store.get_task(job_id, index)
    attempt = uuid.uuid4().hex
    assert store.mark_dispatched(task.id, attempt, engine, computer)
    return attempt


FINISHED = {
    "status": "finished",
    "exit_code": 0,
    "peak_rss_kb": 1000,
    "cpu_seconds": 0.5,
    "tail": "done",
    "outputs": ["/out/0001.png"],
}


def failed(reason: str = "exit code 1: boom") -> dict:
    return {"status": "failed", "exit_code": 1, "reason": reason, "tail": "boom"}


# -- creating jobs ---------------------------------------------------------------------------------


def test_create_job_stores_the_job_and_all_its_tasks(store):
    job_id = submit(store, 1, 10, block_size=3, name="shot", owner="ann", priority=70)
    job = store.get_job(job_id)
    assert (job.spec.name, job.spec.owner, job.spec.priority) == ("shot", "ann", 70)
    assert job.status == "queued"
    assert counts_of(store, job_id) == Counts(total=4, queued=4)
    tasks = store.list_tasks(job_id)
    assert [t.index for t in tasks] == [0, 1, 2, 3]
    assert [t.block for t in tasks] == [
        FrameBlock(1, 3),
        FrameBlock(4, 6),
        FrameBlock(7, 9),
        FrameBlock(10, 10),
    ]
    assert all(t.state == TaskState.QUEUED and t.attempts == 0 for t in tasks)
    assert [e.kind for e in store.events(job_id=job_id)] == ["job.submitted"]


def test_unnamed_job_is_named_after_its_id(store):
    job_id = submit(store)
    assert store.get_job(job_id).spec.name == f"job-{job_id}"


def test_create_job_is_one_transaction(store):
    """A job whose tasks cannot be written leaves neither job nor tasks behind."""
    before = store.job_ids()
    spec = JobSpec("shell", 1, 2, params={"cmd": "true"})
    with pytest.raises(OverflowError):
        store.create_job(spec, [FrameBlock(1, 1), FrameBlock(2**70, 2**70)])
    assert store.job_ids() == before
    assert store.list_jobs() == []
    assert store.events() == []
    job_id = submit(store)
    assert counts_of(store, job_id).total == 4


def test_create_job_refuses_a_dependency_that_does_not_exist(store):
    with pytest.raises(InvalidJob, match="waits for job 99 \\(after\\), which does not exist"):
        submit(store, after=[99])
    assert store.job_ids() == set()


def test_unknown_job_is_not_found(store):
    with pytest.raises(NotFound, match="no job 5"):
        store.get_job(5)
    with pytest.raises(NotFound):
        store.list_tasks(5)
    with pytest.raises(NotFound):
        store.set_job_control(5, "stopped")


# -- a task's life -----------------------------------------------------------------------------------


def test_counts_follow_every_transition(store):
    job_id = submit(store, 1, 4, retries=0)
    a = dispatch(store, job_id, 0)
    b = dispatch(store, job_id, 1, engine=1)
    c = dispatch(store, job_id, 2, engine=2)
    assert counts_of(store, job_id) == Counts(total=4, queued=1, running=3)
    assert store.get_job(job_id).status == "running"
    store.mark_running(a, 0.25, "25%")
    assert store.get_task(job_id, 0).state == TaskState.RUNNING
    assert store.get_task(job_id, 0).progress == 0.25
    assert counts_of(store, job_id) == Counts(total=4, queued=1, running=3)
    assert store.record_result(a, FINISHED) == "finished"
    assert store.record_result(b, failed()) == "error"
    assert store.requeue_attempts([c], "engine lost", lost=True) == 1
    assert counts_of(store, job_id) == Counts(total=4, queued=2, finished=1, error=1)
    d = dispatch(store, job_id, 3)
    assert store.kill_tasks(job_id, actor="wrangler")[0].attempt_id == d
    assert counts_of(store, job_id) == Counts(total=4, queued=2, finished=1, error=1)
    store.requeue_tasks(job_id, which="failed")
    assert counts_of(store, job_id) == Counts(total=4, queued=3, finished=1)
    store.requeue_tasks(job_id, which="all")
    assert counts_of(store, job_id) == Counts(total=4, queued=4)
    assert store.get_job(job_id).finished_at is None


def test_finished_result_records_the_run(store):
    job_id = submit(store)
    attempt = dispatch(store, job_id, 0, engine=3, computer="beta")
    assert store.get_task(job_id, 0).attempts == 1
    # The slave's wall clock is 50 years off; its monotonic measure says 12.5 s.
    result = dict(
        FINISHED, started_at=100.0, ended_at=112.5, seconds=12.5, log_path="/logs/1/0.log"
    )
    before = time.time()
    assert store.record_result(attempt, result) == "finished"
    task = store.get_task(job_id, 0)
    assert task.state == TaskState.FINISHED
    assert (task.computer, task.engine_id, task.exit_code) == ("beta", 3, 0)
    assert before <= task.ended_at <= time.time()  # the master's clock
    assert task.ended_at - task.started_at == pytest.approx(12.5)
    assert (task.peak_rss_kb, task.cpu_seconds, task.tail) == (1000, 0.5, "done")
    assert task.outputs == ["/out/0001.png"]
    assert task.progress == 1.0
    assert task.log_path == "/logs/1/0.log"
    job = store.get_job(job_id)
    assert (job.task_seconds, job.timed_tasks) == (12.5, 1)


@pytest.mark.parametrize(
    "outputs, stored",
    [
        ([f"/out/{n:05}.png" for n in range(1500)], [f"/out/{n:05}.png" for n in range(500, 1500)]),
        (["/out/a.png", "/" + "x" * 4096, "/out/b.png"], ["/out/a.png", "/out/b.png"]),
        (["/out/a.png", 7, None, {"p": 1}, ["/x"]], ["/out/a.png"]),
        ("/out/a-string-is-not-a-list.png", []),
        ({"/out/a.png": 1}, []),
        (None, []),
    ],
    ids=["too-many", "too-long", "not-strings", "a-string", "a-dict", "none"],
)
def test_a_results_outputs_are_stored_bounded_whatever_it_says(store, outputs, stored):
    # The store does not trust a result: a render decides what its renderer parses.
    job_id = submit(store)
    attempt = dispatch(store, job_id, 0)
    assert store.record_result(attempt, dict(FINISHED, outputs=outputs)) == "finished"
    assert store.get_task(job_id, 0).outputs == stored


def test_job_finishes_when_its_last_task_does(store):
    job_id = submit(store, 1, 2)
    first, second = dispatch(store, job_id, 0), dispatch(store, job_id, 1)
    store.record_result(first, FINISHED)
    assert store.get_job(job_id).finished_at is None
    store.record_result(second, FINISHED)
    job = store.get_job(job_id)
    assert job.status == "finished"
    assert job.finished_at is not None
    assert store.runnable_jobs() == []


def test_mark_dispatched_only_takes_a_queued_task(store):
    job_id = submit(store)
    task = store.get_task(job_id, 0)
    assert store.mark_dispatched(task.id, "a1", 0, "alpha")
    assert not store.mark_dispatched(task.id, "a2", 1, "beta")
    task = store.get_task(job_id, 0)
    assert (task.attempt_id, task.computer, task.attempts) == ("a1", "alpha", 1)
    assert counts_of(store, job_id).running == 1


def test_mark_dispatched_refuses_a_task_of_a_job_stopped_since_the_decision(store):
    """The dispatcher decides on a snapshot; a stop committed in between must win, or a task
    starts after its job was stopped (the race behind issue 10's flaky stop test)."""
    job_id = submit(store)
    task = store.get_task(job_id, 0)
    store.set_job_control(job_id, "stopped")
    assert not store.mark_dispatched(task.id, "a1", 0, "alpha")
    assert store.get_task(job_id, 0).state == TaskState.QUEUED
    store.set_job_control(job_id, "active")
    assert store.mark_dispatched(task.id, "a1", 0, "alpha")
    assert counts_of(store, job_id).running == 1


def test_mark_dispatched_refuses_a_host_blocked_for_the_job_since_the_decision(store):
    job_id = submit(store)
    task = store.get_task(job_id, 0)
    store.block_host(job_id, "alpha")
    assert not store.mark_dispatched(task.id, "a1", 0, "alpha")
    assert store.mark_dispatched(task.id, "a1", 1, "beta")


def test_stale_result_of_a_requeued_attempt_is_ignored(store):
    job_id = submit(store)
    lost = dispatch(store, job_id, 0)
    store.requeue_attempts([lost], "engine 0 on alpha was lost", lost=True)
    assert store.record_result(lost, FINISHED) is None
    task = store.get_task(job_id, 0)
    assert task.state == TaskState.QUEUED
    assert task.lost == 1
    assert counts_of(store, job_id) == Counts(total=4, queued=4)


def test_a_frame_is_never_counted_finished_twice(store):
    job_id = submit(store)
    lost = dispatch(store, job_id, 0)
    store.requeue_attempts([lost], "engine lost", lost=True)
    again = dispatch(store, job_id, 0, engine=1, computer="beta")
    assert store.record_result(again, FINISHED) == "finished"
    # The first engine comes back from the dead and delivers; then the second delivers twice.
    assert store.record_result(lost, FINISHED) is None
    assert store.record_result(again, FINISHED) is None
    assert store.record_result(again, failed()) is None
    assert counts_of(store, job_id) == Counts(total=4, queued=3, finished=1)
    job = store.get_job(job_id)
    assert job.timed_tasks == 1
    assert store.get_task(job_id, 0).computer == "beta"


def test_mark_dispatched_many_claims_each_task_as_mark_dispatched_would(store):
    """One round of the dispatcher's sends, in one call: each claim is taken or refused on its
    own, in order, by the rules of mark_dispatched."""
    job_id = submit(store)
    stopped = submit(store, 1, 2)
    store.set_job_control(stopped, "stopped")
    store.block_host(job_id, "beta")
    tasks = [store.get_task(job_id, index) for index in range(4)]
    claims = [
        Claim(tasks[0].id, "a0", 0, "alpha", "/logs/0.a0.log"),
        Claim(tasks[0].id, "a0-again", 1, "alpha"),  # taken by the claim before it
        Claim(store.get_task(stopped, 0).id, "s0", 2, "alpha"),  # its job is stopped
        Claim(tasks[1].id, "a1", 3, "beta"),  # beta is blocked for the job
        Claim(tasks[2].id, "a2", 4, "alpha"),
    ]
    assert store.mark_dispatched_many(claims) == [True, False, False, False, True]
    assert store.mark_dispatched_many([]) == []
    first, third = store.get_task(job_id, 0), store.get_task(job_id, 2)
    assert (first.state, first.attempt_id, first.engine_id, first.attempts) == (
        TaskState.DISPATCHED,
        "a0",
        0,
        1,
    )
    assert first.log_path == "/logs/0.a0.log"
    assert (third.state, third.attempt_id, third.engine_id) == (TaskState.DISPATCHED, "a2", 4)
    assert store.get_task(job_id, 1).state == TaskState.QUEUED
    assert counts_of(store, job_id) == Counts(total=4, queued=2, running=2)
    assert counts_of(store, stopped) == Counts(total=2, queued=2)


def test_record_results_records_each_result_as_record_result_would(store):
    """The results collected in one dispatcher round, in one call: each is recorded, retried
    or ignored as stale on its own, and a duplicate later in the same call is stale too."""
    job_id = submit(store, retries=1)
    done, broken, lost, last = (dispatch(store, job_id, index) for index in range(4))
    store.requeue_attempts([lost], "engine lost", lost=True)
    states = store.record_results(
        [(done, FINISHED), (broken, failed("exit code 2: no")), (lost, FINISHED), (done, failed())]
    )
    assert states == ["finished", "queued", None, None]
    assert store.record_results([]) == []
    assert store.get_task(job_id, 0).state == TaskState.FINISHED
    retried = store.get_task(job_id, 1)
    assert (retried.state, retried.failures, retried.reason) == (
        TaskState.QUEUED,
        1,
        "exit code 2: no",
    )
    assert store.host_failures(job_id) == {"alpha": 1}
    assert counts_of(store, job_id) == Counts(total=4, queued=2, running=1, finished=1)
    assert store.record_results([(last, FINISHED)]) == ["finished"]
    assert store.get_job(job_id).timed_tasks == 2


def test_progress_of_a_stale_attempt_is_ignored(store):
    job_id = submit(store)
    lost = dispatch(store, job_id, 0)
    store.requeue_attempts([lost], "engine lost", lost=True)
    store.mark_running(lost, 0.5, "half")
    task = store.get_task(job_id, 0)
    assert (task.state, task.progress) == (TaskState.QUEUED, 0.0)


def test_failed_task_is_retried_then_ends_in_error_after_retries_plus_one_failures(store):
    job_id = submit(store, 1, 1, retries=2)
    for attempt in (1, 2):
        assert (
            store.record_result(dispatch(store, job_id, 0), failed(f"exit code 1: try {attempt}"))
            == "queued"
        )
        task = store.get_task(job_id, 0)
        assert (task.state, task.failures, task.attempts) == (TaskState.QUEUED, attempt, attempt)
        assert task.reason == f"exit code 1: try {attempt}"
        assert task.attempt_id is None
        assert counts_of(store, job_id) == Counts(total=1, queued=1)
    assert store.record_result(dispatch(store, job_id, 0), failed("exit code 1: try 3")) == "error"
    task = store.get_task(job_id, 0)
    assert (task.state, task.failures, task.attempts) == (TaskState.ERROR, 3, 3)
    assert task.reason == "exit code 1: try 3 (failed 3 times)"
    assert counts_of(store, job_id) == Counts(total=1, error=1)
    assert store.get_job(job_id).status == "error"
    assert store.host_failures(job_id) == {"alpha": 3}
    assert [e.kind for e in store.events(job_id=job_id)].count("task.failed") == 3


def test_retries_zero_means_one_attempt(store):
    job_id = submit(store, 1, 1, retries=0)
    assert store.record_result(dispatch(store, job_id, 0), failed()) == "error"


def test_failure_without_a_reason_names_the_exit_code(store):
    job_id = submit(store, 1, 1, retries=0)
    store.record_result(dispatch(store, job_id, 0), {"status": "failed", "exit_code": 139})
    assert store.get_task(job_id, 0).reason == "exit code 139 (failed 1 time)"


def test_a_task_lost_too_often_ends_in_error(store):
    store.max_lost = 2
    job_id = submit(store, 1, 1)
    assert store.requeue_attempts([dispatch(store, job_id, 0)], "engine lost", lost=True) == 1
    assert store.get_task(job_id, 0).state == TaskState.QUEUED
    store.requeue_attempts([dispatch(store, job_id, 0)], "engine lost", lost=True)
    task = store.get_task(job_id, 0)
    assert task.state == TaskState.ERROR
    assert task.reason == "engine lost (2 times: the task may crash its engine)"
    assert counts_of(store, job_id) == Counts(total=1, error=1)


def test_fail_task_turns_only_a_queued_task_into_an_error(store):
    job_id = submit(store, 1, 2)
    attempt = dispatch(store, job_id, 1)
    store.fail_task(store.get_task(job_id, 0).id, "no slave can ever run it")
    store.fail_task(store.get_task(job_id, 1).id, "no slave can ever run it")
    assert store.get_task(job_id, 0).state == TaskState.ERROR
    assert store.get_task(job_id, 0).reason == "no slave can ever run it"
    assert store.get_task(job_id, 1).attempt_id == attempt
    assert counts_of(store, job_id) == Counts(total=2, running=1, error=1)


# -- master restart ----------------------------------------------------------------------------------


def test_requeue_all_active_puts_every_dispatched_and_running_task_back(store):
    one, two = submit(store, 1, 3), submit(store, 1, 2)
    a = dispatch(store, one, 0)
    b = dispatch(store, one, 1, engine=1)
    store.mark_running(b, 0.5, "half")
    c = dispatch(store, two, 0, engine=2)
    done = dispatch(store, two, 1, engine=3)
    store.record_result(done, FINISHED)
    assert store.requeue_all_active("master restarted") == 3
    assert store.active_dispatches() == []
    assert counts_of(store, one) == Counts(total=3, queued=3)
    assert counts_of(store, two) == Counts(total=2, queued=1, finished=1)
    for job_id, index in ((one, 0), (one, 1), (two, 0)):
        task = store.get_task(job_id, index)
        assert (task.state, task.attempt_id, task.lost, task.progress) == (
            TaskState.QUEUED,
            None,
            0,
            0.0,
        )
        assert task.reason == "master restarted"
    for attempt in (a, b, c):
        assert store.record_result(attempt, FINISHED) is None
    assert store.requeue_all_active("again") == 0


def test_store_survives_reopening(sqlite_store, tmp_path):
    store = sqlite_store
    job_id = submit(store)
    attempt = dispatch(store, job_id, 0)
    store.close()
    reopened = SQLiteStore(tmp_path / "db" / "drqueue.sqlite")
    try:
        assert [d.attempt_id for d in reopened.active_dispatches()] == [attempt]
        assert counts_of(reopened, job_id) == Counts(total=4, queued=3, running=1)
    finally:
        reopened.close()


# -- user actions -----------------------------------------------------------------------------------


def test_kill_tasks_takes_running_tasks_back_to_queued(store):
    job_id = submit(store, 1, 3)
    a, b = dispatch(store, job_id, 0), dispatch(store, job_id, 1, engine=1)
    store.record_result(b, FINISHED)
    c = dispatch(store, job_id, 2, engine=2)
    killed = store.kill_tasks(job_id, actor="wrangler")
    assert sorted(d.attempt_id for d in killed) == sorted([a, c])
    assert {d.engine_id for d in killed} == {0, 2}
    task = store.get_task(job_id, 0)
    assert (task.state, task.attempt_id, task.reason) == (
        TaskState.QUEUED,
        None,
        "killed by wrangler",
    )
    assert counts_of(store, job_id) == Counts(total=3, queued=2, finished=1)
    assert store.record_result(a, failed("killed")) is None
    assert store.get_task(job_id, 0).failures == 0, "a kill is not a failure"


def test_kill_one_task(store):
    job_id = submit(store, 1, 2)
    a, b = dispatch(store, job_id, 0), dispatch(store, job_id, 1, engine=1)
    assert [d.attempt_id for d in store.kill_tasks(job_id, index=1)] == [b]
    assert store.get_task(job_id, 0).attempt_id == a
    assert counts_of(store, job_id) == Counts(total=2, queued=1, running=1)
    assert store.kill_tasks(job_id, index=1) == []
    with pytest.raises(NotFound, match="job .* has no task 7"):
        store.kill_tasks(job_id, index=7)


def test_stop_and_continue_change_the_control_and_the_runnable_jobs(store):
    job_id = submit(store)
    assert [j.id for j in store.runnable_jobs()] == [job_id]
    store.set_job_control(job_id, "stopped", actor="ann")
    assert store.get_job(job_id).status == "stopped"
    assert store.runnable_jobs() == []
    store.set_job_control(job_id, "active", actor="ann")
    assert store.get_job(job_id).status == "queued"
    assert [j.id for j in store.runnable_jobs()] == [job_id]


def test_priority_change(store):
    job_id = submit(store)
    store.set_job_priority(job_id, 90)
    assert store.get_job(job_id).spec.priority == 90
    with pytest.raises(InvalidJob):
        store.set_job_priority(job_id, 10**7)


def test_rerun_requeues_everything_and_forgets_failures(store):
    job_id = submit(store, 1, 3, retries=0)
    store.record_result(dispatch(store, job_id, 0), FINISHED)
    store.record_result(dispatch(store, job_id, 1), failed())
    running = dispatch(store, job_id, 2)
    was_active = store.requeue_tasks(job_id, which="all")
    assert [d.attempt_id for d in was_active] == [running]
    assert counts_of(store, job_id) == Counts(total=3, queued=3)
    assert all(t.failures == 0 and t.attempt_id is None for t in store.list_tasks(job_id))
    assert store.host_failures(job_id) == {}
    assert store.record_result(running, FINISHED) is None


def test_requeue_failed_takes_only_error_and_cancelled_tasks(store):
    job_id = submit(store, 1, 3, retries=0)
    store.record_result(dispatch(store, job_id, 0), FINISHED)
    store.record_result(dispatch(store, job_id, 1), failed())
    running = dispatch(store, job_id, 2)
    assert store.requeue_tasks(job_id, which="failed") == []
    states = [t.state for t in store.list_tasks(job_id)]
    assert states == [TaskState.FINISHED, TaskState.QUEUED, TaskState.DISPATCHED]
    assert store.get_task(job_id, 2).attempt_id == running


def test_requeue_one_task(store):
    job_id = submit(store, 1, 2)
    store.record_result(dispatch(store, job_id, 0), FINISHED)
    store.requeue_tasks(job_id, which="one", index=0)
    assert store.get_task(job_id, 0).state == TaskState.QUEUED
    assert counts_of(store, job_id) == Counts(total=2, queued=2)
    with pytest.raises(NotFound):
        store.requeue_tasks(job_id, which="one", index=9)


def test_delete_is_refused_while_tasks_run(store):
    job_id = submit(store)
    attempt = dispatch(store, job_id, 0)
    with pytest.raises(Conflict, match=f"job {job_id} has 1 running tasks"):
        store.delete_job(job_id)
    assert counts_of(store, job_id) == Counts(total=4, queued=3, running=1)
    active = store.delete_job(job_id, force=True, actor="ann")
    assert [d.attempt_id for d in active] == [attempt]
    assert store.job_ids() == set()
    with pytest.raises(NotFound):
        store.get_job(job_id)
    assert store.record_result(attempt, FINISHED) is None
    assert store.active_dispatches() == []


def test_delete_of_an_idle_job_needs_no_force(store):
    job_id = submit(store)
    assert store.delete_job(job_id) == []
    assert store.job_ids() == set()
    with pytest.raises(NotFound):
        store.delete_job(job_id)


def test_delete_is_refused_for_a_dependency_unless_forced(store):
    first = submit(store)
    second = submit(store, after=[first])
    assert store.get_job(second).waiting_for == [first]
    assert store.get_job(second).status == "waiting"
    with pytest.raises(Conflict, match=f"dependency of job {second}"):
        store.delete_job(first)
    store.delete_job(first, force=True)
    assert store.job_ids() == {second}


def test_task_for_frame(store):
    job_id = store.create_job(
        JobSpec("shell", -5, 15, step=5, block_size=2, params={"cmd": "true"}),
        split_frames(-5, 15, 5, 2),
    )
    assert store.task_for_frame(job_id, -5).index == 0
    assert store.task_for_frame(job_id, 5).index == 1
    assert store.task_for_frame(job_id, 15).index == 2
    for frame in (-10, 1, 20):
        with pytest.raises(NotFound):
            store.task_for_frame(job_id, frame)


# -- integrity, backup, schema ----------------------------------------------------------------------


def test_integrity_check_recounts_drifted_counts(sqlite_store, tmp_path):
    store = sqlite_store
    job_id = submit(store, 1, 4)
    store.record_result(dispatch(store, job_id, 0), FINISHED)
    dispatch(store, job_id, 1)
    assert store.check_integrity() == []
    raw = sqlite3.connect(tmp_path / "db" / "drqueue.sqlite")
    raw.execute(
        "UPDATE jobs SET n_finished = 3, n_queued = 0, n_running = 7 WHERE id = ?", (job_id,)
    )
    raw.commit()
    raw.close()
    assert store.get_job(job_id).counts == Counts(total=4, queued=0, running=7, finished=3)
    assert store.check_integrity() == [f"recounted the tasks of job {job_id}"]
    assert counts_of(store, job_id) == Counts(total=4, queued=2, running=1, finished=1)
    assert store.check_integrity() == []


def test_integrity_check_repairs_impossible_states(sqlite_store, tmp_path):
    store = sqlite_store
    job_id = submit(store, 1, 2)
    raw = sqlite3.connect(tmp_path / "db" / "drqueue.sqlite")
    raw.execute("UPDATE tasks SET state = 'bogus' WHERE job_id = ? AND idx = 1", (job_id,))
    raw.commit()
    raw.close()
    assert store.check_integrity() == ["requeued 1 tasks in impossible states"]
    assert store.get_task(job_id, 1).state == TaskState.QUEUED
    assert counts_of(store, job_id) == Counts(total=2, queued=2)


def test_backup_is_a_readable_consistent_copy(sqlite_store, tmp_path):
    store = sqlite_store
    job_id = submit(store, 1, 3, name="backed-up")
    store.record_result(dispatch(store, job_id, 0), FINISHED)
    copy_path = tmp_path / "backup.sqlite"
    store.backup(str(copy_path))
    submit(store, name="after the backup")
    copy = SQLiteStore(copy_path)
    try:
        assert copy.job_ids() == {job_id}
        job = copy.get_job(job_id)
        assert job.spec.name == "backed-up"
        assert counts_of(copy, job_id) == Counts(total=3, queued=2, finished=1)
        assert copy.check_integrity() == []
    finally:
        copy.close()


# -- failure classes (drqueue.failures) ---------------------------------------------------------------


def classified_failure(klass: str, action: str, **more) -> dict:
    result = failed("exit code 1: MemoryError")
    result.update(failure_class=klass, failure_detail="MemoryError", failure_action=action)
    return {**result, **more}


def test_an_out_of_memory_retry_stores_the_memory_it_needs_and_counts_no_failure(store):
    job_id = submit(store, 1, 2, retries=0)
    attempt = dispatch(store, job_id, 0)
    result = classified_failure("oom", "retry-bigger", min_ram_mb=5120)
    assert store.record_result(attempt, result) == "queued"
    task = store.get_task(job_id, 0)
    assert (task.failure_class, task.failure_detail, task.min_ram_mb) == (
        "oom",
        "MemoryError",
        5120,
    )
    assert (task.failures, store.host_failures(job_id)) == (0, {})
    [event] = store.events(kind="task.failed")
    assert event.message == "task 0 failed on alpha (oom): exit code 1: MemoryError"
    # A new attempt forgets the last one's class, not the memory the task needs.
    assert store.record_result(dispatch(store, job_id, 0, computer="big"), FINISHED) == "finished"
    task = store.get_task(job_id, 0)
    assert (task.failure_class, task.failure_detail, task.min_ram_mb) == (None, None, 5120)


def test_a_licence_backoff_counts_no_failure_and_a_missing_asset_ends_the_task_at_once(store):
    job_id = submit(store, 1, 2, retries=3)
    licence = classified_failure("licence", "backoff")
    assert store.record_result(dispatch(store, job_id, 0), licence) == "queued"
    assert (store.get_task(job_id, 0).failures, store.host_failures(job_id)) == (0, {})
    missing = classified_failure("missing-asset", "fail", failure_detail="/p/tex/wood.png")
    assert store.record_result(dispatch(store, job_id, 1), missing) == "error"
    task = store.get_task(job_id, 1)
    assert (task.state, task.failure_class, task.failure_detail) == (
        TaskState.ERROR,
        "missing-asset",
        "/p/tex/wood.png",
    )
    assert store.host_failures(job_id) == {}
    # A result that names no action is today's rule: retried, and the host's failure.
    assert store.record_result(dispatch(store, job_id, 0), failed()) == "queued"
    assert store.host_failures(job_id) == {"alpha": 1}
    assert store.get_task(job_id, 0).failure_class is None


def test_a_jobs_failure_actions_are_stored_with_it(store):
    job_id = submit(store, on_failure={"oom": "retry", "licence": "fail"})
    assert store.get_job(job_id).spec.on_failure == {"oom": "retry", "licence": "fail"}


def as_schema_2(path) -> None:
    """Turn a closed SQLite store back into schema 2: without issue 15's columns and index."""
    raw = sqlite3.connect(path)
    raw.execute("DROP INDEX tasks_job_rank")
    for table, column in (
        ("jobs", "after_frames"),
        ("jobs", "task_order"),
        ("jobs", "first_frame_check"),
        ("jobs", "on_failure"),
        ("tasks", "rank"),
        ("tasks", "failure_class"),
        ("tasks", "failure_detail"),
        ("tasks", "min_ram_mb"),
    ):
        raw.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    raw.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()


def test_a_schema_2_store_gains_the_failure_fields_and_keeps_its_jobs(sqlite_store, tmp_path):
    store = sqlite_store
    job_id = submit(store, 1, 2)
    store.record_result(dispatch(store, job_id, 0), FINISHED)
    store.close()
    path = tmp_path / "db" / "drqueue.sqlite"
    as_schema_2(path)
    reopened = SQLiteStore(path)
    try:
        assert reopened.get_job(job_id).spec.on_failure == {}
        assert reopened.get_task(job_id, 0).state == TaskState.FINISHED
        attempt = dispatch(reopened, job_id, 1)
        reopened.record_result(attempt, classified_failure("oom", "retry-bigger", min_ram_mb=9))
        assert reopened.get_task(job_id, 1).min_ram_mb == 9
    finally:
        reopened.close()


def test_store_with_a_newer_schema_is_refused(sqlite_store, tmp_path):
    store = sqlite_store
    store.close()
    path = tmp_path / "db" / "drqueue.sqlite"
    raw = sqlite3.connect(path)
    raw.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
    )
    raw.commit()
    raw.close()
    with pytest.raises(
        StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than .* upgrade DrQueue"
    ):
        SQLiteStore(path)


def test_new_store_records_the_current_schema_version(sqlite_store, tmp_path):
    raw = sqlite3.connect(tmp_path / "db" / "drqueue.sqlite")
    (version,) = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    raw.close()
    assert int(version) == SCHEMA_VERSION


# -- computers and events -------------------------------------------------------------------------------


def test_upsert_computer_keeps_enabled_and_pools(store):
    store.upsert_computer({"name": "alpha", "os": "linux", "cores": 8, "pools": ["gpu"]})
    store.update_computer("alpha", enabled=False)
    store.upsert_computer({"name": "alpha", "os": "linux", "cores": 16, "pools": []})
    computer = store.get_computer("alpha")
    assert (computer.cores, computer.enabled, computer.pools) == (16, False, ["gpu"])
    store.update_computer("alpha", enabled=True, max_tasks=None, actor="wendy")
    changed = [(e.message, e.computer, e.actor) for e in store.events(kind="computer.changed")]
    assert changed == [
        ("computer alpha disabled", "alpha", ""),
        ("computer alpha enabled, task limit removed", "alpha", "wendy"),
    ]
    with pytest.raises(NotFound, match="no computer 'nope'"):
        store.get_computer("nope")


def test_a_computer_read_alone_has_its_own_pools_only(store):
    """get_computer reads only that computer's memberships (registering 4,000 slaves read every
    membership of the farm for each one); it must still say the same as list_computers."""
    store.upsert_computer({"name": "alpha", "pools": ["lit", "fx"]})
    store.upsert_computer({"name": "beta", "pools": ["fx", "comp"]})
    store.upsert_computer({"name": "gamma", "pools": []})
    alone = {name: store.get_computer(name).pools for name in ("alpha", "beta", "gamma")}
    assert alone == {"alpha": ["fx", "lit"], "beta": ["comp", "fx"], "gamma": []}
    assert {c.name: c.pools for c in store.list_computers()} == alone


def test_events_page_back_with_before_id_past_the_newest_page(store):
    job_id = submit(store)
    for n in range(25):
        store.add_event("test.note", f"note {n}", job_id=job_id if n % 2 else None)
    everything = store.events(limit=10_000)
    assert len(everything) == 26 and [e.id for e in everything] == sorted(e.id for e in everything)

    newest = store.events(limit=10)
    assert newest == everything[-10:]  # the newest page, oldest first
    pages, before = [], None
    while page := store.events(before_id=before, limit=10):
        pages.insert(0, page)
        before = page[0].id
    assert [e for page in pages for e in page] == everything

    middle = everything[10].id
    assert store.events(before_id=middle, limit=3) == everything[7:10]
    assert store.events(since_id=everything[4].id, before_id=middle) == everything[5:10]
    assert store.events(before_id=everything[0].id) == []

    job_events = store.events(job_id=job_id, limit=10_000)
    assert [e.kind for e in job_events][:1] == ["job.submitted"] and len(job_events) == 13
    assert store.events(job_id=job_id, before_id=job_events[5].id, limit=2) == job_events[3:5]


# -- concurrency, scale, order and paging (every backend) -----------------------------------------


_CLAIMER = """
import json, sys, uuid
sys.path.insert(0, {tests!r})
from store_reopen import reopen
store = reopen({how!r})
claimed = []
while True:
    tasks = store.next_queued({job_id}, 3)
    if not tasks:
        break
    for task in tasks:
        if store.mark_dispatched(task.id, uuid.uuid4().hex, {engine}, "host{engine}"):
            claimed.append(task.id)
print(json.dumps(claimed))
"""


def test_concurrent_claimers_in_several_processes_never_claim_a_task_twice(store, tmp_path):
    """Claimers race for the same queued tasks (each reads the same first three): every task
    is claimed exactly once, and the counts agree."""
    import json
    import subprocess
    import sys
    import threading
    from pathlib import Path

    from store_reopen import how_to_reopen

    job_id = submit(store, 1, 150)
    how = how_to_reopen(store)
    claims: list[list[int]] = []
    if how is None:  # the memory store lives in this process: claim from threads

        def claim(engine: int) -> None:
            mine = []
            while tasks := store.next_queued(job_id, 3):
                for task in tasks:
                    if store.mark_dispatched(task.id, uuid.uuid4().hex, engine, f"host{engine}"):
                        mine.append(task.id)
            claims.append(mine)

        threads = [threading.Thread(target=claim, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    else:
        tests = str(Path(__file__).resolve().parents[1])
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _CLAIMER.format(tests=tests, how=how, job_id=job_id, engine=n),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(4)
        ]
        for proc in procs:
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0
            claims.append(json.loads(out))
    every = [task_id for mine in claims for task_id in mine]
    assert len(every) == len(set(every)) == 150, "a task was claimed twice, or not at all"
    assert counts_of(store, job_id) == Counts(total=150, running=150)


def test_a_100000_task_job(store):
    """(On MongoDB a slow test, see conftest.SLOW_ON_MONGO: the test server takes a minute.)"""
    spec = JobSpec("shell", 1, 100_000, params={"cmd": "true"})
    job_id = store.create_job(spec, split_frames(1, 100_000, 1, 1))
    assert store.get_job(job_id).counts == Counts(total=100_000, queued=100_000)
    page = store.list_tasks(job_id, offset=99_990, limit=20)
    assert [t.index for t in page] == list(range(99_990, 100_000))
    assert [t.index for t in store.next_queued(job_id, 3)] == [0, 1, 2]
    assert store.task_for_frame(job_id, 100_000).index == 99_999
    dispatch(store, job_id, 50_000)
    running = store.list_tasks(job_id, state="dispatched")
    assert [t.index for t in running] == [50_000]
    assert counts_of(store, job_id) == Counts(total=100_000, queued=99_999, running=1)
    assert [d.task_id for d in store.delete_job(job_id, force=True)] == [running[0].id]
    assert store.job_ids() == set()
    assert store.check_integrity() == []


def test_pages_of_tasks_and_jobs(store):
    job_id = submit(store, 1, 10)
    for index in (2, 5, 7):
        dispatch(store, job_id, index)
    assert [t.index for t in store.list_tasks(job_id, offset=3, limit=4)] == [3, 4, 5, 6]
    assert [t.index for t in store.list_tasks(job_id, state="queued", offset=2, limit=3)] == [
        3,
        4,
        6,
    ]
    assert store.list_tasks(job_id, offset=10) == []
    assert store.list_tasks(job_id, limit=0) == []
    ids = [submit(store, 1, 1) for _ in range(4)]
    assert [job.id for job in store.list_jobs(limit=2)] == ids[-2:]
    assert [job.id for job in store.list_jobs()] == [job_id, *ids]


def test_runnable_jobs_order_by_priority_then_fair_share_then_submit_time(store):
    """What the dispatcher's plan reads from the store orders jobs as the design says."""
    from drqueue.master.matching import Slot, plan

    store.upsert_computer(
        {"name": "alpha", "cores": 8, "ram_mb": 8000, "slots": 4, "renderers": ["shell"]}
    )
    computers = {c.name: c for c in store.list_computers()}
    early_ann = submit(store, 1, 2, owner="ann", priority=50)
    late_bob = submit(store, 1, 2, owner="bob", priority=50)
    urgent = submit(store, 1, 1, owner="ann", priority=10)
    store.set_job_priority(urgent, 90)
    slots = [Slot(n, "alpha", n) for n in range(4)]
    order = [a.job.id for a in plan(slots, store.runnable_jobs(), computers)]
    assert order[0] == urgent
    assert order[1:3] == [early_ann, late_bob] or order[1:3] == [late_bob, early_ann]
    assert order[1] == early_ann  # same priority, neither served yet: the earlier submit
    assert order[2] == late_bob  # then fair share: bob before ann's second task


def test_dependencies_wait_until_every_task_of_the_dependency_finished(store):
    first = submit(store, 1, 2, retries=0)
    second = submit(store, 1, 1, after=[first])
    assert store.get_job(second).waiting_for == [first]
    a = dispatch(store, first, 0)
    store.record_result(a, {"status": "finished"})
    assert store.get_job(second).waiting_for == [first]
    b = dispatch(store, first, 1)
    store.record_result(b, {"status": "failed", "exit_code": 1})
    assert store.get_job(second).waiting_for == [first]  # an error is not done
    store.requeue_tasks(first, which="failed")
    c = dispatch(store, first, 1)
    store.record_result(c, {"status": "finished"})
    assert store.get_job(second).waiting_for == []
    assert [j.id for j in store.runnable_jobs()] == [second]


# -- the web UI's reads: pages of jobs, job counts, frame grids, thumbnails, the frame chart --------


def a_farm_of_every_status(store: Store) -> dict[str, int]:
    """Jobs of many owners, names, renderers, pools and statuses; their ids by what they are."""
    store.create_pool("gpu")
    jobs = {}
    jobs["finished"] = submit(store, 1, 2, name="Shot A", owner="ann", priority=10)
    for index in (0, 1):
        store.record_result(dispatch(store, jobs["finished"], index), FINISHED | {"seconds": 4})
    jobs["queued"] = submit(
        store, 1, 3, name="shot b", owner="bob", priority=50, requirements=_pools("gpu")
    )
    jobs["error"] = submit(
        store, 1, 1, name="Comp", owner="ann", retries=0, requirements=_pools("gpu")
    )
    store.record_result(dispatch(store, jobs["error"], 0), failed())
    jobs["stopped"] = submit(store, 1, 2, name="ÉTÉ render", owner="carl", priority=70)
    store.set_job_control(jobs["stopped"], "stopped")
    jobs["waiting"] = submit(store, 1, 1, name="waits for b", owner="bob", after=[jobs["queued"]])
    jobs["running"] = submit(store, 1, 4, name="running", owner="ann", priority=70)
    store.record_result(dispatch(store, jobs["running"], 0), FINISHED | {"seconds": 10})
    dispatch(store, jobs["running"], 1)
    jobs["stopping"] = submit(store, 1, 3, name="stopping", owner="dora")
    dispatch(store, jobs["stopping"], 2)
    store.set_job_control(jobs["stopping"], "stopped")
    return jobs


def _pools(*pools: str):
    from drqueue.models import Requirements

    return Requirements(pools=list(pools))


def test_a_page_of_jobs_is_filtered_sorted_and_counted_as_jobquery_says(store):
    from drqueue.store.jobquery import SORTS, JobQuery, page_of

    jobs = a_farm_of_every_status(store)
    every = store.list_jobs()
    assert {job.id: job.status for job in every} == {v: k for k, v in jobs.items()}
    queries = [JobQuery(sort=key, descending=desc) for key in SORTS for desc in (False, True)]
    queries += [
        JobQuery(owner="ann"),
        JobQuery(owner="ann", sort="priority", descending=True, offset=1, limit=1),
        JobQuery(pool="gpu"),
        JobQuery(renderer="shell", status="queued"),
        JobQuery(renderer="blender"),
        JobQuery(name_contains="été"),
        JobQuery(name_contains="SHOT", sort="name"),
        JobQuery(ids=frozenset({jobs["error"], jobs["waiting"], 999})),
        JobQuery(ids=frozenset()),
        JobQuery(offset=2, limit=3, descending=True),
        JobQuery(offset=50, limit=3),
        JobQuery(limit=0),
    ]
    queries += [JobQuery(status=status) for status in jobs]
    for query in queries:
        page = store.page_jobs(query)
        want = page_of(every, query)
        assert ([j.id for j in page.jobs], page.total) == ([j.id for j in want.jobs], want.total), (
            query
        )
        assert [j.status for j in page.jobs] == [j.status for j in want.jobs]
    # and by hand, so that jobquery itself is held to what the API promises
    assert store.page_jobs(JobQuery(status="waiting")).total == 1
    assert [j.id for j in store.page_jobs(JobQuery(name_contains="été")).jobs] == [jobs["stopped"]]
    assert {j.id for j in store.page_jobs(JobQuery(pool="gpu")).jobs} == {
        jobs["queued"],
        jobs["error"],
    }
    by_eta = [j.id for j in store.page_jobs(JobQuery(sort="eta")).jobs]
    assert by_eta[:3] == sorted([jobs["finished"], jobs["error"]]) + [jobs["running"]]
    newest = store.page_jobs(JobQuery(descending=True, limit=2))
    assert [j.id for j in newest.jobs] == sorted(jobs.values())[-2:][::-1]
    assert newest.total == len(jobs)


def test_job_status_counts_name_every_status(store):
    from collections import Counter

    from drqueue.store.jobquery import STATUSES

    a_farm_of_every_status(store)
    counts = store.job_status_counts()
    assert set(counts) == set(STATUSES)
    assert counts == dict.fromkeys(STATUSES, 0) | Counter(j.status for j in store.list_jobs())


def test_active_keeps_the_jobs_that_have_not_ended(store):
    from drqueue.store.jobquery import ACTIVE_STATUSES, JobQuery, page_of

    jobs = a_farm_of_every_status(store)  # finished and error jobs among them
    active = sorted(jobs[status] for status in ACTIVE_STATUSES)
    page = store.page_jobs(JobQuery(active=True))
    assert ([j.id for j in page.jobs], page.total) == (active, len(active))
    assert all(j.status in ACTIVE_STATUSES for j in page.jobs)
    newest = store.page_jobs(JobQuery(active=True, descending=True, limit=2))
    assert ([j.id for j in newest.jobs], newest.total) == (active[::-1][:2], len(active))
    anns = store.page_jobs(JobQuery(active=True, owner="ann"))
    assert [j.id for j in anns.jobs] == [jobs["running"]]
    assert store.page_jobs(JobQuery(active=True, status="finished")).total == 0
    reference = page_of(store.list_jobs(), JobQuery(active=True))
    assert [j.id for j in reference.jobs] == active


def test_data_version_changes_with_each_write_and_only_then(store):
    """None where the backend cannot tell; otherwise a write by any thread changes it."""
    job_id = submit(store, 1, 3)
    before = store.data_version()
    if before is None:
        pytest.skip("this backend does not tell its data version")
    store.list_jobs()
    store.page_jobs(JobQuery(active=True))
    assert store.data_version() == before
    writes = [
        lambda n: dispatch(store, job_id, n),
        lambda n: store.set_job_priority(job_id, 60 + n),
        lambda n: submit(store, 1, 1 + n),
    ]
    for write in writes:
        seen = store.data_version()
        thread = threading.Thread(target=write, args=(0,))
        thread.start()
        thread.join()
        assert store.data_version() != seen
        seen = store.data_version()
        write(1)  # and from this thread
        assert store.data_version() != seen


def test_task_states_are_by_index(store):
    job_id = submit(store, 1, 5)
    store.record_result(dispatch(store, job_id, 3), FINISHED)
    dispatch(store, job_id, 1)
    states = store.task_states(job_id)
    assert states == [TaskState(t.state) for t in store.list_tasks(job_id)]
    assert [str(s) for s in states] == ["queued", "dispatched", "queued", "finished", "queued"]
    with pytest.raises(NotFound):
        store.task_states(job_id + 100)


def test_last_finished_task_is_the_one_that_ended_last(store):
    job_id = submit(store, 1, 4)
    assert store.last_finished_task(job_id) is None
    store.record_result(dispatch(store, job_id, 2), FINISHED)
    store.record_result(dispatch(store, job_id, 0), FINISHED)
    dispatch(store, job_id, 3)
    last = store.last_finished_task(job_id)
    assert last is not None and last.index == 0 and last.outputs == FINISHED["outputs"]
    with pytest.raises(NotFound):
        store.last_finished_task(job_id + 100)


def test_frames_finished_are_summed_by_hour_of_their_end(store):
    job_id = submit(store, 1, 5, block_size=2)  # tasks of 2, 2 and 1 frames
    before = time.time() - 1
    for index in (0, 2):
        store.record_result(dispatch(store, job_id, index), FINISHED)
    after = time.time() + 1
    ended = {t.index: t.ended_at for t in store.list_tasks(job_id, state="finished")}
    hours: dict[int, int] = {}
    for index, frames in ((0, 2), (2, 1)):
        hours[int(ended[index] // 3600)] = hours.get(int(ended[index] // 3600), 0) + frames
    assert store.frames_finished(before, after) == hours
    assert store.frames_finished(after, after + 10) == {}
    assert store.frames_finished(ended[0], after) == {int(ended[2] // 3600): 1}  # since excluded
    store.requeue_tasks(job_id, which="one", index=2)
    assert sum(store.frames_finished(before, after).values()) == 2  # no longer finished


def test_events_filter_by_kind_its_family_and_actor(store):
    job_id = submit(store, owner="ann")
    store.set_job_control(job_id, "stopped", actor="bob")
    store.set_job_control(job_id, "active", actor="ann")
    store.add_event("jobs.other", "not of the job family", actor="bob")
    store.add_event("job", "the bare kind", actor="carl")
    kinds = [e.kind for e in store.events(kind="job")]
    assert "jobs.other" not in kinds and "job" in kinds and "job.submitted" in kinds
    assert len(kinds) == 4
    assert [e.kind for e in store.events(kind="job.submitted")] == ["job.submitted"]
    assert [e.message for e in store.events(actor="bob")][-1] == "not of the job family"
    assert len(store.events(actor="bob")) == 2
    assert len(store.events(kind="job", actor="ann", job_id=job_id)) == 2
    assert store.events(kind="nothing") == []


def test_attention_keeps_errors_blocked_hosts_and_dead_end_dependencies(store):
    from drqueue.store.jobquery import JobQuery, page_of

    partly = submit(store, 1, 2, retries=0, owner="ann")
    store.record_result(dispatch(store, partly, 0), failed())  # one task in error, one queued
    broken = submit(store, 1, 1, retries=0, owner="ann")
    store.record_result(dispatch(store, broken, 0), failed())  # ended in error
    blocked = submit(store, owner="bob")
    store.block_host(blocked, "alpha")
    waits_for_broken = submit(store, 1, 1, after=[broken], owner="bob")
    stopped = submit(store, 1, 1)
    store.set_job_control(stopped, "stopped")
    waits_for_stopped = submit(store, 1, 1, after=[stopped])
    doomed = submit(store, 1, 1)
    waits_for_deleted = submit(store, 1, 1, after=[doomed], owner="bob")
    store.delete_job(doomed, force=True)
    fine_dependency = submit(store, 1, 2)
    waits_for_fine = submit(store, 1, 1, after=[fine_dependency])
    waits_for_waiting = submit(store, 1, 1, after=[waits_for_fine])
    retried = submit(store, 1, 1, retries=3)
    store.record_result(dispatch(store, retried, 0), failed())  # failed once, queued again
    # A chain: a comp waits for a render that waits for the stopped job, and an encode for it.
    render = submit(store, 1, 1, after=[stopped])
    comp = submit(store, 1, 1, after=[fine_dependency, render])
    encode = submit(store, 1, 1, after=[comp])
    wanted = [partly, broken, blocked, waits_for_broken, waits_for_stopped, waits_for_deleted]
    wanted += [render, comp, encode]
    page = store.page_jobs(JobQuery(attention=True))
    assert ([j.id for j in page.jobs], page.total) == (sorted(wanted), len(wanted))
    assert waits_for_fine not in [j.id for j in page.jobs] and stopped not in wanted
    assert waits_for_waiting not in [j.id for j in page.jobs]
    bobs = store.page_jobs(JobQuery(attention=True, owner="bob", descending=True))
    assert [j.id for j in bobs.jobs] == sorted([blocked, waits_for_broken, waits_for_deleted])[::-1]
    reference = page_of(store.list_jobs(), JobQuery(attention=True))
    assert [j.id for j in reference.jobs] == sorted(wanted)


# -- what a change tells about its job; the outbox of mail and webhooks --------------------------------


def news(store: Store, job_id: int) -> list[tuple[str, int | None]]:
    return [
        (e.kind, e.task_index)
        for e in store.events(job_id=job_id)
        if e.kind in ("task.first-frame", "job.finished", "job.error")
    ]


def test_first_frame_and_end_are_events_once_each_and_again_after_a_rerun(store):
    job_id = submit(store, 1, 3)
    attempts = [dispatch(store, job_id, index) for index in range(3)]
    store.record_result(attempts[1], FINISHED)
    store.record_result(attempts[0], FINISHED)
    assert news(store, job_id) == [("task.first-frame", 1)]
    store.record_result(attempts[2], FINISHED)
    assert news(store, job_id) == [("task.first-frame", 1), ("job.finished", None)]
    store.requeue_tasks(job_id, which="all")
    attempts = [dispatch(store, job_id, index) for index in range(3)]
    for attempt in attempts:
        store.record_result(attempt, FINISHED)
    assert news(store, job_id)[2:] == [("task.first-frame", 0), ("job.finished", None)]


def test_a_job_that_ends_with_a_task_in_error_is_job_error_once(store):
    job_id = submit(store, 1, 2, retries=0)
    first, second = dispatch(store, job_id, 0), dispatch(store, job_id, 1)
    store.record_result(first, failed())
    assert news(store, job_id) == []
    store.record_result(second, FINISHED)
    assert news(store, job_id) == [("task.first-frame", 1), ("job.error", None)]
    (end,) = store.events(job_id=job_id, kind="job.error")
    assert end.message == "ended in error: 1 of 2 tasks in error"
    store.requeue_tasks(job_id, which="failed")  # reopens; not a second end
    assert news(store, job_id)[-1] == ("job.error", None)
    assert store.get_job(job_id).finished_at is None


def test_queued_tasks_failed_at_once_end_the_job_in_error(store):
    job_id = submit(store, 1, 3)
    assert store.fail_queued_tasks(job_id, "blocked on every host") == 3
    assert news(store, job_id) == [("job.error", None)]
    assert [e.kind for e in store.events(job_id=job_id)][-2:] == ["job.error", "task.error"]


def notice(key: str, channel: str = "email", *, due_at: float, job_id: int | None = None):
    from drqueue.store.base import Notice

    return Notice(
        key=key,
        channel=channel,
        target="ann@example.com",
        payload={"to": ["ann@example.com"], "subject": "ü"},
        event_id=1,
        job_id=job_id,
        created_at=due_at,
        due_at=due_at,
    )


def test_the_outbox_holds_notices_until_sent_and_each_key_once(store):
    job_id = submit(store, 1, 1)
    assert store.notify_cursor() is None
    now = time.time()
    store.enqueue_notices(
        [notice("1:email", due_at=now, job_id=job_id), notice("1:webhook", "webhook", due_at=now)],
        7,
    )
    assert store.notify_cursor() == 7
    # Read again (a notifier stopped before its cursor moved): nothing is added twice.
    store.enqueue_notices([notice("1:email", due_at=now + 5, job_id=job_id)], 8)
    assert store.notify_cursor() == 8
    (mail,) = store.due_notices("email", now)
    assert (mail.key, mail.payload, mail.attempts, mail.job_id) == (
        "1:email",
        {"to": ["ann@example.com"], "subject": "ü"},
        0,
        job_id,
    )
    assert [n.key for n in store.due_notices("webhook", now)] == ["1:webhook"]
    assert store.due_notices("email", now - 1) == []
    store.finish_notice(mail, ("email.sent", "email to ann@example.com sent"))
    assert store.due_notices("email", now + 3600) == []
    (sent,) = store.events(job_id=job_id, kind="email")
    assert (sent.kind, sent.message) == ("email.sent", "email to ann@example.com sent")
    store.enqueue_notices([notice("1:email", due_at=now, job_id=job_id)], 9)  # sent: stays so
    assert store.due_notices("email", now + 3600) == []


def test_a_failed_notice_is_due_again_later_and_counts_its_attempts(store):
    now = time.time()
    store.enqueue_notices([notice("2:email", due_at=now)], 2)
    (first,) = store.due_notices("email", now)
    store.retry_notice(first, now + 30, "ConnectionRefusedError", ("email.failed", "refused"))
    assert store.due_notices("email", now + 29) == []
    (again,) = store.due_notices("email", now + 30)
    assert (again.attempts, again.last_error, again.due_at) == (
        1,
        "ConnectionRefusedError",
        now + 30,
    )
    store.finish_notice(again, ("email.gave-up", "given up"))
    assert store.due_notices("email", now + 1e9) == []
    assert [e.kind for e in store.events(kind="email")] == ["email.failed", "email.gave-up"]


# -- the order of a job's tasks and frame-by-frame dependencies (issue 15) -------------------------


def queued_order(store: Store, job_id: int, **options) -> list[int]:
    return [task.index for task in store.next_queued(job_id, 1000, **options)]


def test_next_queued_follows_the_jobs_order(store):
    sequential = submit(store, 1, 9)
    reverse = submit(store, 1, 9, order="reverse")
    preview = submit(store, 1, 9, order="preview")
    assert queued_order(store, sequential) == list(range(9))
    assert queued_order(store, reverse) == list(range(8, -1, -1))
    assert queued_order(store, preview) == [0, 8, 4, 2, 6, 1, 3, 5, 7]
    assert [t.index for t in store.next_queued(preview, 3)] == [0, 8, 4]
    job = store.get_job(preview)
    assert (job.spec.order, reverse, store.get_job(reverse).spec.order) == (
        "preview",
        reverse,
        "reverse",
    )
    # A dispatched task leaves the order; a requeued one takes its place again.
    attempt = dispatch(store, preview, 8)
    assert queued_order(store, preview)[:3] == [0, 4, 2]
    store.requeue_attempts([attempt], "engine lost", lost=False)
    assert queued_order(store, preview)[:3] == [0, 8, 4]


def test_next_queued_with_ready_skips_the_tasks_it_refuses_and_reads_on(store):
    job_id = submit(store, 1, 10, block_size=2, order="reverse")  # 9-10, 7-8 ... 1-2
    seen = []

    def ready(block: FrameBlock) -> bool:
        seen.append(block.start)
        return block.start in (3, 7)

    tasks = store.next_queued(job_id, 5, ready=ready)
    assert [(t.index, t.block, t.state) for t in tasks] == [
        (3, FrameBlock(7, 8), TaskState.QUEUED),
        (1, FrameBlock(3, 4), TaskState.QUEUED),
    ]
    assert seen == [9, 7, 5, 3, 1]
    assert [t.index for t in store.next_queued(job_id, 1, ready=ready)] == [3]


def test_frame_dependency_and_order_are_stored_with_the_job(store):
    render = submit(store, 1, 10)
    comp = submit(store, 1, 10, after_frames=[render], order="preview", first_frame_check=True)
    spec = store.get_job(comp).spec
    assert (spec.after_frames, spec.after, spec.order, spec.first_frame_check) == (
        [render],
        [],
        "preview",
        True,
    )
    assert store.get_job(comp).status == "queued"  # frame dependencies never make it "waiting"
    listed = {job.id: job for job in store.list_jobs()}
    assert listed[comp].spec.after_frames == [render]


def test_create_job_refuses_frames_of_a_job_that_does_not_exist(store):
    with pytest.raises(InvalidJob, match="frames of job 99 \\(after_frames\\), which does not"):
        submit(store, after_frames=[99])
    assert store.job_ids() == set()


def test_create_job_refuses_frames_that_share_no_frame_with_the_upstream_job(store):
    render = submit(store, 1, 10)
    with pytest.raises(InvalidJob, match="frames 11-20 \\(step 1\\) share no frame with job"):
        submit(store, 11, 20, after_frames=[render])
    assert store.job_ids() == {render}
    submit(store, 10, 20, after_frames=[render])  # one frame in common is enough


def test_a_job_others_wait_for_frame_by_frame_is_not_deleted_unless_forced(store):
    render = submit(store, 1, 4)
    comp = submit(store, 1, 4, after_frames=[render])
    with pytest.raises(Conflict, match=f"dependency of job {comp}"):
        store.delete_job(render)
    store.delete_job(render, force=True)
    assert store.job_ids() == {comp}


def test_hold_tasks_sets_the_reason_of_queued_tasks_only(store):
    job_id = submit(store, 1, 3)
    attempt = dispatch(store, job_id, 1)
    store.hold_tasks(job_id, {0: "held: task 0 of job 9 ended in error", 1: "not this one"})
    assert store.get_task(job_id, 0).reason == "held: task 0 of job 9 ended in error"
    assert store.get_task(job_id, 1).reason is None
    store.record_result(attempt, FINISHED)
    store.hold_tasks(job_id, {0: None})
    assert store.get_task(job_id, 0).reason is None
    store.hold_tasks(job_id, {2: "held"})
    dispatch(store, job_id, 2)
    assert store.get_task(job_id, 2).reason is None  # a dispatch clears it


def test_a_schema_2_store_opens_with_its_jobs_in_sequential_order(tmp_path):
    """The migration to schema 3 (issue 15): old jobs keep their fields and run by index."""
    path = tmp_path / "old.sqlite"
    old = SQLiteStore(path)
    job_id = submit(old, 1, 5)
    old.close()
    as_schema_2(path)
    store = SQLiteStore(path)
    try:
        spec = store.get_job(job_id).spec
        assert (spec.after_frames, spec.order, spec.first_frame_check) == ([], "sequential", False)
        assert queued_order(store, job_id) == [0, 1, 2, 3, 4]
        preview = submit(store, 1, 5, order="preview", after_frames=[job_id])
        assert queued_order(store, preview) == [0, 4, 2, 1, 3]
    finally:
        store.close()
