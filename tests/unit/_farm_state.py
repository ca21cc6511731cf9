"""A farm with a bit of everything, in any store, and all that a store answers about it.

For the tests of moving a farm between stores (test_store_transfer.py, test_cli_store_transfer.py):
:func:`build_farm` fills a store through the Store interface, and :func:`assert_same_farm`
compares two stores object by object.  Import it as ``from _farm_state import ...``: pytest
puts tests/unit on sys.path.
"""

from __future__ import annotations

import time
from typing import Any

from drqueue.models import JobSpec, Requirements, split_frames
from drqueue.store import Store


def submit(store: Store, start: int, end: int, **options: Any) -> int:
    key = options.pop("idempotency_key", None)
    spec = JobSpec("shell", start, end, params={"cmd": "true"}, **options)
    return store.create_job(spec, split_frames(start, end), actor="ann", idempotency_key=key)


def dispatch(store: Store, job_id: int, computer: str, attempt: str) -> None:
    task = store.next_queued(job_id, 1)[0]
    assert store.mark_dispatched(task.id, attempt, 7, computer, f"/logs/{attempt}.log")


def result(status: str, **more: Any) -> dict[str, Any]:
    return {
        "status": status,
        "exit_code": 0 if status == "finished" else 3,
        "seconds": 2.5,
        "started_at": time.time() - 2,
        "peak_rss_kb": 123_456,
        "cpu_seconds": 2.25,
        "tail": f"the last lines of a {status} render\n",
        "outputs": ["/out/frame_0001.png"] if status == "finished" else [],
        **more,
    }


def build_farm(store: Store) -> dict[str, int]:
    """Pools, computers (one disabled), and jobs finished, in error, stopped, and one that
    depends on two others with tasks queued after failures, lost, dispatched and running, a
    host blocked for it and a waiting reason; the events all that wrote, and one more."""
    store.create_pool("gpu", "the GPU boxes", actor="admin")
    store.create_pool("empty")
    store.upsert_computer(
        {
            "name": "r01",
            "hostname": "r01.lan",
            "os": "linux",
            "arch": "x86_64",
            "cores": 16,
            "ram_mb": 64_000,
            "free_ram_mb": 30_000,
            "load": 0.5,
            "gpus": 1,
            "renderers": ["blender", "shell"],
            "slots": 2,
            "pools": ["gpu", "declared"],
        }
    )
    store.upsert_computer({"name": "r02", "cores": 4, "slots": 1})
    store.update_computer("r02", enabled=False, max_tasks=1, actor="admin")
    store.set_pool_member("gpu", "r02", True, actor="admin")

    done = submit(
        store,
        1,
        2,
        name="finished one",
        owner="ann",
        env={"SECRET": "s3cret", "UNICODE": "ünï €"},
        timeout=60.0,
        requirements=Requirements(os="linux", min_ram_gb=1.5, pools=["gpu"], hosts=["r0*"]),
        notify={"email": "ann@example.com"},
        idempotency_key="take-1",
    )
    for attempt in ("d0", "d1"):
        dispatch(store, done, "r01", attempt)
        store.mark_running(attempt, 0.5, "half way")
        store.record_result(attempt, result("finished"))

    failed = submit(store, -3, -1, name="fails", owner="bob", retries=0, priority=90)
    dispatch(store, failed, "r02", "f0")
    store.record_result("f0", result("failed", reason="blender crashed"))
    store.fail_queued_tasks(failed, "no host can run it")

    stopped = submit(store, 10, 14, name="stopped", max_parallel=2, block_size=1)
    store.set_job_control(stopped, "stopped", actor="bob")

    waiting = submit(store, 1, 8, name="after two", owner="ann", after=[done, failed], retries=3)
    dispatch(store, waiting, "r01", "w0")
    store.record_result("w0", result("failed"))  # queued again, one failure
    dispatch(store, waiting, "r01", "w1")
    store.requeue_attempts(["w1"], "engine lost", lost=True)  # queued again, lost once
    dispatch(store, waiting, "r01", "w2")  # dispatched
    dispatch(store, waiting, "r01", "w3")
    store.mark_running("w3", 0.25, "rendering")  # running
    store.block_host(waiting, "r02")
    store.set_job_waiting_reason({waiting: "waits for job 1 and job 2"})
    # Frame by frame after the stopped job, in preview order, its first frame checked (issue 15).
    comp = submit(
        store, 10, 16, name="comp", after_frames=[stopped], order="preview", first_frame_check=True
    )
    store.set_job_priority(waiting, -5, actor="admin")

    store.add_event("note", "a wrangler's note", computer="r01", actor="admin")
    return {"done": done, "failed": failed, "stopped": stopped, "waiting": waiting, "comp": comp}


def farm_of(store: Store) -> dict[str, Any]:
    """Everything a store answers about its farm, through the Store interface."""
    jobs = store.list_jobs()
    return {
        "jobs": [store.get_job(job.id) for job in jobs],
        "listed jobs": jobs,
        "tasks": {job.id: store.list_tasks(job.id) for job in jobs},
        "host failures": {job.id: store.host_failures(job.id) for job in jobs},
        "blocked hosts": store.blocked_hosts(),
        "computers": store.list_computers(),
        "pools": store.list_pools(),
        "events": store.events(limit=1_000_000),
        "on engines": sorted(store.active_dispatches(), key=lambda d: d.task_id),
        "runnable": sorted(job.id for job in store.runnable_jobs()),
        "idempotency key": store.job_by_key("ann", "take-1"),
        "dispatch order": {
            job.id: [task.index for task in store.next_queued(job.id, 1000)] for job in jobs
        },
    }


def assert_same_farm(one: Store, other: Store) -> None:
    mine, theirs = farm_of(one), farm_of(other)
    for part, objects in mine.items():
        if isinstance(objects, list):
            assert len(objects) == len(theirs[part]), part
            for a, b in zip(objects, theirs[part], strict=True):
                assert a == b, part
        elif isinstance(objects, dict):
            assert objects.keys() == theirs[part].keys(), part
            for key in objects:
                assert objects[key] == theirs[part][key], f"{part} of {key}"
        else:
            assert objects == theirs[part], part
