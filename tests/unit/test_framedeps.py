"""FrameGate (drqueue.master.framedeps) over a real store: which tasks of a job that waits for
another's frames, or checks its first frame, may run; and why the others are held."""

from __future__ import annotations

import time
import uuid

import pytest

from drqueue.master import framedeps
from drqueue.master.framedeps import FrameGate
from drqueue.models import JobSpec, TaskState, split_frames
from drqueue.store import Store

FINISHED = {"status": "finished", "exit_code": 0, "tail": "ok"}


@pytest.fixture()
def store(any_store) -> Store:
    return any_store


def submit(store: Store, start: int, end: int, block_size: int = 1, **options) -> int:
    spec = JobSpec("shell", start, end, block_size=block_size, params={"cmd": "true"}, **options)
    return store.create_job(spec, split_frames(start, end, 1, block_size))


def run(store: Store, job_id: int, index: int, result: dict | None = None) -> None:
    task = store.get_task(job_id, index)
    attempt = uuid.uuid4().hex
    assert store.mark_dispatched(task.id, attempt, 0, "alpha")
    store.record_result(attempt, result or FINISHED)


def ready(store: Store, job_id: int, limit: int = 100) -> list[int]:
    gate = FrameGate(store)
    return [task.index for task in gate.ready_tasks(store.get_job(job_id), limit)]


def test_a_comp_task_waits_for_the_render_tasks_of_its_frames_whatever_the_blocks(store):
    render = submit(store, 1, 12, block_size=3)  # 1-3, 4-6, 7-9, 10-12
    comp = submit(store, 1, 12, block_size=2, after_frames=[render])  # 1-2, 3-4 ... 11-12
    assert ready(store, comp) == []
    run(store, render, 0)  # frames 1-3
    assert ready(store, comp) == [0]  # 1-2; 3-4 still needs 4
    run(store, render, 2)  # frames 7-9
    assert ready(store, comp) == [0, 3]  # 7-8; 9-10 needs 10
    run(store, render, 1)
    assert ready(store, comp) == [0, 1, 2, 3]
    assert ready(store, comp, limit=2) == [0, 1]


def test_frames_the_render_does_not_have_wait_for_nothing(store):
    render = submit(store, 5, 8)
    comp = submit(store, 1, 10, after_frames=[render])
    assert ready(store, comp) == [0, 1, 2, 3, 8, 9]


def test_a_failed_render_frame_holds_only_its_comp_frame_with_a_reason(store):
    render = submit(store, 1, 4, retries=0)
    comp = submit(store, 1, 4, after_frames=[render])
    run(store, render, 0)
    run(store, render, 1, {"status": "failed", "exit_code": 1, "reason": "boom"})
    run(store, render, 2)
    run(store, render, 3)
    gate = FrameGate(store)
    job = store.get_job(comp)
    assert [t.index for t in gate.ready_tasks(job, 10)] == [0, 2, 3]
    reason, held = gate.holds(job)
    assert reason is None  # other tasks may run
    assert held == {1: f"held: task 1 of job {render} (its frames) ended in error"}
    for index in (0, 2, 3):
        run(store, comp, index)
    reason, held = gate.holds(store.get_job(comp))
    assert reason == (
        f"waiting for frames of job {render}: tasks 1 held "
        f"(held: task 1 of job {render} (its frames) ended in error)"
    )


def test_a_comp_waiting_for_frames_not_yet_rendered_says_so(store):
    render = submit(store, 1, 4)
    comp = submit(store, 1, 4, after_frames=[render])
    assert FrameGate(store).holds(store.get_job(comp)) == (
        f"waiting for frames of job {render}",
        {},
    )


def test_a_deleted_render_holds_every_comp_frame(store):
    render = submit(store, 1, 2)
    comp = submit(store, 1, 2, after_frames=[render])
    store.delete_job(render, force=True)
    gate = FrameGate(store)
    job = store.get_job(comp)
    assert gate.ready_tasks(job, 10) == []
    reason, held = gate.holds(job)
    assert held == {
        i: f"held: job {render}, whose frames it waits for, was deleted" for i in (0, 1)
    }
    assert reason.startswith(f"waiting for frames of job {render}: tasks 0, 1 held")


def test_the_first_frame_check_runs_the_first_task_of_the_order_alone(store):
    job_id = submit(store, 1, 9, order="preview", first_frame_check=True)
    assert ready(store, job_id) == [0]
    task = store.get_task(job_id, 0)
    attempt = uuid.uuid4().hex
    assert store.mark_dispatched(task.id, attempt, 0, "alpha")
    assert ready(store, job_id) == []  # nothing beside it while it runs
    store.record_result(attempt, FINISHED)
    assert ready(store, job_id, 3) == [8, 4, 2]
    reverse = submit(store, 1, 3, order="reverse", first_frame_check=True)
    assert ready(store, reverse) == [2]


def test_a_failed_first_frame_check_is_reported_after_its_retries(store):
    job_id = submit(store, 1, 5, first_frame_check=True, retries=1)
    failure = {"status": "failed", "exit_code": 2, "reason": "exit code 2: no camera"}
    run(store, job_id, 0, failure)  # a retry left: it is queued again, and runs alone
    gate = FrameGate(store)
    assert gate.failed_check(store.get_job(job_id)) is None
    assert ready(store, job_id) == [0]
    run(store, job_id, 0, failure)
    job = store.get_job(job_id)
    assert store.get_task(job_id, 0).state == TaskState.ERROR
    assert gate.failed_check(job) == "task 0 error: exit code 2: no camera (failed 2 times)"
    assert gate.ready_tasks(job, 10) == []


def test_a_comp_behind_a_10000_task_render_is_searched_once_until_something_changes(
    store, request, monkeypatch
):
    """The cost of one decision for a job behind a 10,000-task render (docs/performance.md):
    a search reads on through every blocked task; while nothing changes it is not repeated.
    (A search longer than LONG_SEARCH_SECONDS is not repeated for a while even after a change:
    the next test; here every search counts as short, as on a quick store.)"""
    monkeypatch.setattr(framedeps, "LONG_SEARCH_SECONDS", 3600.0)
    render = submit(store, 1, 10_000)
    comp = submit(store, 1, 10_000, after_frames=[render])
    for index in range(9_990, 10_000):  # the last frames done, the rest not: a full scan
        run(store, render, index)
    gate = FrameGate(store)
    began = time.perf_counter()
    found = [task.index for task in gate.ready_tasks(store.get_job(comp), 4)]
    searched = time.perf_counter() - began
    assert found == [9_990, 9_991, 9_992, 9_993]
    for index in found:
        run(store, comp, index)
    for index in range(9_994, 10_000):
        run(store, comp, index)
    gate.new_round()
    assert gate.ready_tasks(store.get_job(comp), 4) == []  # the search that finds nothing
    gate.new_round()
    began = time.perf_counter()
    assert gate.ready_tasks(store.get_job(comp), 4) == []
    repeated = time.perf_counter() - began
    run(store, render, 0)  # a change: searched again, and found
    gate.new_round()
    assert [t.index for t in gate.ready_tasks(store.get_job(comp), 4)] == [0]
    print(
        f"\n{request.node.callspec.id}: a search of 10,000 tasks {searched * 1000:.1f} ms, "
        f"repeated with nothing changed {repeated * 1000:.2f} ms"
    )
    assert repeated < searched


class Clock:
    """framedeps' clock: each reading 0.1 s after the last, so a search takes 0.1 s."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        self.now += 0.1
        return self.now


def test_a_long_search_is_not_repeated_for_ten_times_its_length_even_after_a_change(
    any_store, monkeypatch
):
    """Hostile review: a job whose ready tasks lie deep in its queue (reverse order behind a
    sequential render) was searched through on every decision, as the render's counts kept
    changing.  A long search, found or not, now waits ten times its length."""
    clock = Clock()
    monkeypatch.setattr(framedeps, "time", clock)
    monkeypatch.setattr(framedeps, "LONG_SEARCH_SECONDS", 0.05)  # 0.1 s is long
    store = any_store
    render = submit(store, 1, 20)
    comp = submit(store, 1, 20, after_frames=[render])
    run(store, render, 0)
    gate = FrameGate(store)

    def ready() -> list[int]:
        gate.new_round()
        return [t.index for t in gate.ready_tasks(store.get_job(comp), 4)]

    assert ready() == [0]  # a search of 0.1 s: not repeated for 1 s
    run(store, render, 1)  # a change
    assert ready() == []
    clock.now += 1.0
    assert ready() == [0, 1]
