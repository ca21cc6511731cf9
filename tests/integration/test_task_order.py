"""--order and --first-frame-check on a real farm (issue 15, part 3).

One master and two slaves, real processes, shared by the module: ``one`` (one slot), where
the order tests run alone (``--hosts one``), so the order tasks start in is well defined;
and ``two`` (one slot), which the first-frame-check tests also use, so that a second task
could start beside the checked one if the check let it.
"""

from __future__ import annotations

import pytest
from farm import Farm, wait_for

from drqueue.models import preview_order


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    farm = Farm(tmp_path_factory.mktemp("order"))
    farm.start_master()
    farm.add_slave("one", slots=1)
    farm.add_slave("two", slots=1)
    farm.wait_engines(2)
    yield farm
    farm.stop()


def submit(farm: Farm, cmd: str, frames: int, **options) -> int:
    requirements = {"hosts": options.pop("hosts")} if "hosts" in options else {}
    job = farm.client.submit(
        "shell",
        None,
        start=1,
        end=frames,
        params={"cmd": cmd},
        requirements=requirements,
        owner="ann",
        **options,
    )
    return job["id"]


def start_order(farm: Farm, job_id: int) -> list[int]:
    tasks = farm.client.tasks(job_id)
    return [t["index"] for t in sorted(tasks, key=lambda t: t["started_at"])]


@pytest.mark.parametrize(
    ("order", "expected"),
    [("preview", preview_order(9)), ("reverse", list(range(8, -1, -1)))],
)
def test_tasks_start_in_the_order_asked_for(farm, order, expected):
    job_id = submit(farm, "true", 9, order=order, hosts=["one"])
    job = farm.wait_job(job_id)
    assert job["status"] == "finished" and job["order"] == order
    assert start_order(farm, job_id) == expected


def test_sequential_stays_the_default(farm):
    job_id = submit(farm, "true", 5, hosts=["one"])
    job = farm.wait_job(job_id)
    assert (job["status"], job["order"]) == ("finished", "sequential")
    assert start_order(farm, job_id) == [0, 1, 2, 3, 4]


def test_a_failed_first_frame_check_stops_the_job_with_its_reason_and_runs_nothing_else(farm):
    # Frame 1 (the first of the preview order) fails; every other frame would succeed.
    job_id = submit(
        farm,
        "sh -c 'test {frame} -ne 1'",
        6,
        order="preview",
        first_frame_check=True,
        retries=0,
    )
    job = wait_for(
        lambda: (job := farm.client.job(job_id))["status"] == "stopped" and job,
        60,
        0.2,
        f"job {job_id} to be stopped by its first frame check",
    )
    assert job["control"] == "stopped"
    events = farm.client.events(job_id, kind="job.first-frame-failed")
    assert len(events) == 1
    assert events[0]["message"].startswith("first frame check failed, job stopped: task 0 error:")
    assert "exit code 1" in events[0]["message"]
    tasks = farm.client.tasks(job_id)
    assert [(t["index"], t["state"]) for t in tasks if t["attempts"]] == [(0, "error")]
    assert {t["state"] for t in tasks[1:]} == {"queued"}


def test_a_passed_first_frame_check_lets_the_rest_run_after_it(farm):
    job_id = submit(farm, "true", 6, order="reverse", first_frame_check=True)
    job = farm.wait_job(job_id)
    assert job["status"] == "finished", farm.client.tasks(job_id)
    tasks = {t["index"]: t for t in farm.client.tasks(job_id)}
    check = tasks.pop(5)  # the first task of the reverse order
    assert all(t["started_at"] >= check["ended_at"] for t in tasks.values())
    assert farm.client.events(job_id, kind="job.first-frame-failed") == []
