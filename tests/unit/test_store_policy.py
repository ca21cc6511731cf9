"""The farm's rules apart from any database (drqueue.store.policy), and the Store interface
declaring everything its callers use."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from drqueue.errors import Conflict
from drqueue.models import TRANSITIONS, Counts, TaskState
from drqueue.store import Store, policy
from drqueue.store.memory import MemoryStore
from drqueue.store.sqlite import SQLiteStore

SRC = Path(__file__).resolve().parents[2] / "src" / "drqueue"


# -- the transition check and the counters -----------------------------------------------------------


def test_every_task_state_has_a_counter_and_is_in_the_transition_table():
    """A state no counter counts (as the unused FAILED was) would vanish from every job."""
    assert set(policy.COUNTER) == set(TaskState) == set(TRANSITIONS)
    assert set(policy.COUNTER.values()) == set(policy.COUNTERS)
    assert tuple(f for f in Counts.__slots__ if f != "total") == policy.COUNTERS


@pytest.mark.parametrize("old", list(TaskState), ids=str)
@pytest.mark.parametrize("new", list(TaskState), ids=str)
def test_move_allows_exactly_the_transition_table_and_moves_the_counters(old, new):
    if old != new and new not in TRANSITIONS[old]:
        with pytest.raises(ValueError, match=f"illegal task transition {old} -> {new}"):
            policy.move(old, new)
        return
    effect = policy.move(old, new)
    counts = Counts(total=1)
    setattr(counts, policy.COUNTER[old], 1)
    if effect.counters:
        down, up = effect.counters
        setattr(counts, down, getattr(counts, down) - 1)
        setattr(counts, up, getattr(counts, up) + 1)
    assert counts == policy.count([new])
    assert effect.may_end == (new in (TaskState.FINISHED, TaskState.ERROR, TaskState.CANCELLED))
    assert effect.reopens == (new == TaskState.QUEUED)


def test_count_tells_each_state_and_ignores_an_impossible_one():
    states = ["queued", "dispatched", "running", "finished", "error", "cancelled", "bogus"]
    assert policy.count(states) == Counts(
        total=7, queued=1, running=2, finished=1, error=1, cancelled=1
    )


def test_a_job_ends_when_every_task_ended_and_a_dependency_only_when_all_finished():
    assert policy.job_ended(Counts(total=3, finished=1, error=1, cancelled=1))
    assert not policy.job_ended(Counts(total=3, finished=2, running=1))
    assert policy.dependency_done(Counts(total=2, finished=2))
    assert not policy.dependency_done(Counts(total=2, finished=1, error=1))
    assert policy.waiting_for([3, 1, 2], {1}) == [3, 2]
    assert policy.waiting_for([], {1}) == []


# -- the next state ---------------------------------------------------------------------------------


def test_a_failure_is_retried_while_retries_last_then_is_an_error_saying_how_often():
    assert policy.after_failure(failures=2, retries=2, reason="boom") == (TaskState.QUEUED, "boom")
    assert policy.after_failure(failures=3, retries=2, reason="boom") == (
        TaskState.ERROR,
        "boom (failed 3 times)",
    )
    assert policy.after_failure(failures=1, retries=0, reason="boom").reason == (
        "boom (failed 1 time)"
    )
    assert policy.failure_reason({"exit_code": 139}) == "exit code 139"
    assert policy.failure_reason({"reason": "x" * 5000}) == "x" * policy.REASON_CHARS


def test_a_loss_requeues_until_max_lost_counted_losses():
    assert policy.after_loss(times_lost=4, counted=True, max_lost=5, reason="lost").state == (
        TaskState.QUEUED
    )
    assert policy.after_loss(times_lost=5, counted=True, max_lost=5, reason="lost") == (
        TaskState.ERROR,
        "lost (5 times: the task may crash its engine)",
    )
    # A loss not held against the task (a master restart, a task queued behind) never errs.
    assert policy.after_loss(times_lost=9, counted=False, max_lost=5, reason="r").state == (
        TaskState.QUEUED
    )


def test_delete_is_refused_while_tasks_run_or_others_depend_unless_forced():
    with pytest.raises(Conflict, match="job 4 has 2 running tasks"):
        policy.check_delete(4, running=2, dependants=[7], force=False)
    with pytest.raises(Conflict, match="job 4 is a dependency of job 7"):
        policy.check_delete(4, running=0, dependants=[7], force=False)
    policy.check_delete(4, running=2, dependants=[7], force=True)
    policy.check_delete(4, running=0, dependants=[], force=False)


def test_requeue_takes_all_but_queued_or_only_error_and_cancelled():
    assert policy.REQUEUE_TAKES["all"] == frozenset(TaskState) - {TaskState.QUEUED}
    assert policy.REQUEUE_TAKES["failed"] == {TaskState.ERROR, TaskState.CANCELLED}


def test_dispatch_only_of_a_queued_task_of_an_active_job_on_an_unblocked_host():
    assert policy.may_dispatch(state=TaskState.QUEUED, control="active", host_blocked=False)
    assert not policy.may_dispatch(state=TaskState.QUEUED, control="stopped", host_blocked=False)
    assert not policy.may_dispatch(state=TaskState.QUEUED, control="active", host_blocked=True)
    assert not policy.may_dispatch(state=TaskState.RUNNING, control="active", host_blocked=False)


# -- the interface declares what callers use ------------------------------------------------------------


def _store_attributes_used() -> set[str]:
    """Every attribute the master, CLI and client take of a variable named like a store."""
    used = set()
    for path in SRC.rglob("*.py"):
        if "store" in path.relative_to(SRC).parts[:1]:
            continue
        tree = ast.parse(path.read_text())
        # The CLI's click group is called store too: its decorators are no store.
        decorators = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef)
            for decorator in node.decorator_list
            for inner in ast.walk(decorator)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or id(node) in decorators:
                continue
            target = node.value
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name in ("store", "store_", "_store"):
                used.add(node.attr)
    return used


def test_the_store_interface_declares_every_attribute_its_callers_use():
    used = _store_attributes_used()
    assert {"mark_dispatched_many", "record_results", "max_lost"} <= used  # the scan finds them
    assert sorted(name for name in used if not hasattr(Store, name)) == []


def test_mark_dispatched_takes_the_log_path_in_the_interface_and_every_backend():
    for backend in (Store, SQLiteStore, MemoryStore):
        assert "log_path" in inspect.signature(backend.mark_dispatched).parameters


# -- the in-memory store -----------------------------------------------------------------------------


def test_memory_store_hands_out_copies_not_its_own_objects():
    from drqueue.models import JobSpec, split_frames

    store = MemoryStore()
    job_id = store.create_job(JobSpec("shell", 1, 2, params={"cmd": "true"}), split_frames(1, 2))
    task = store.get_task(job_id, 0)
    task.state = TaskState.FINISHED
    task.outputs.append("/x")
    store.get_job(job_id).counts.queued = 0
    assert store.get_task(job_id, 0).state == TaskState.QUEUED
    assert store.get_task(job_id, 0).outputs == []
    assert store.get_job(job_id).counts == Counts(total=2, queued=2)
