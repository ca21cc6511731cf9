"""`drqueue submit --wait` returns for every end, against the real API over HTTP (no dispatcher:
the jobs' states are set through the API as a user would)."""

from __future__ import annotations

import io

import pytest
from _live_api import TOKEN, live_api
from click.testing import CliRunner
from rich.console import Console

from drqueue.cli.main import cli, wait_for_job
from drqueue.client import Client
from drqueue.waiting import end_of


@pytest.fixture
def api(tmp_path):
    with live_api(tmp_path) as live:
        yield live


@pytest.fixture
def client(api):
    with Client(api.url, TOKEN) as c:
        paths: list[str] = []
        c._http.event_hooks["request"].append(lambda request: paths.append(request.url.path))
        c.paths = paths  # type: ignore[attr-defined]
        yield c


def submit(client, after=()) -> int:
    return client.submit(
        "fractal", None, start=1, end=2, params={"output": "/tmp/f_####.png"}, after=list(after)
    )["id"]


def wait(client, job_id: int) -> tuple[int, str]:
    out = io.StringIO()
    status = wait_for_job(client, job_id, Console(file=out, width=300))
    return status, out.getvalue().strip().splitlines()[-1]


def test_wait_on_a_stopped_job_ends_with_status_1(client):
    job = submit(client)
    client.job_action(job, "stop")
    assert wait(client, job) == (
        1,
        f"job {job} stopped: 0/2 tasks finished, 0 in error; stopped: `drqueue job continue "
        f"{job}` to go on",
    )


def test_wait_on_a_job_whose_dependency_is_stopped_ends_with_the_reason(api, client):
    first = submit(client)
    client.job_action(first, "stop")
    result = CliRunner().invoke(
        cli,
        ["submit", "fractal", "-s", "1", "-e", "1", "--output", "/tmp/f_####.png"]
        + ["--after", str(first), "--wait"],
        env=api.env(),
    )
    assert result.exit_code == 1
    assert f"waiting for job {first} (stopped: continue it to go on)" in result.output


def test_wait_on_a_job_whose_dependency_was_deleted_ends_with_the_reason(client):
    first = submit(client)
    second = submit(client, after=[first])
    client.delete_job(first, force=True)
    status, line = wait(client, second)
    assert status == 1
    assert line.endswith(f"waiting for job {first} (deleted: it will never finish)")


def test_a_dependency_stalled_itself_stalls_its_dependants(client):
    first = submit(client)
    second = submit(client, after=[first])
    third = submit(client, after=[second])
    client.job_action(first, "stop")
    status, line = wait(client, third)
    assert status == 1
    assert line.endswith(
        f"waiting for job {second} (waits for job {first} (stopped: continue it to go on))"
    )


def test_wait_reads_the_jobs_counters_never_their_task_lists(client):
    first = submit(client)
    second = submit(client, after=[first])
    client.job_action(first, "stop")
    client.paths.clear()
    wait(client, second)
    assert set(client.paths) == {f"/api/v1/jobs/{second}", f"/api/v1/jobs/{first}"}


def test_wait_on_a_job_held_frame_by_frame_by_an_ended_upstream_ends_with_the_reason(api, client):
    """Its queued tasks wait for frames that ended in error upstream: nothing can go on without
    a wrangler (the reason is the dispatcher's, written here as it writes it)."""
    first = submit(client)
    api.store.fail_queued_tasks(first, "broken")  # as the dispatcher ends a job's tasks
    second = client.submit(
        "fractal", None, start=1, end=2, params={"output": "/tmp/f_####.png"}, after_frames=[first]
    )["id"]
    held = (
        f"waiting for frames of job {first}: tasks 0, 1 held (task 0 of job {first} ended in error)"
    )
    api.store.set_job_waiting_reason({second: held})
    assert wait(client, second) == (
        1,
        f"job {second} queued: 0/2 tasks finished, 0 in error; {held}",
    )
    # While the upstream may still render them, it waits.
    third = submit(client)
    fourth = client.submit(
        "fractal", None, start=1, end=2, params={"output": "/tmp/f_####.png"}, after_frames=[third]
    )["id"]
    api.store.set_job_waiting_reason({fourth: held.replace(str(first), str(third))})
    assert end_of(client, client.job(fourth)) is None


def test_wait_on_a_job_stopped_by_its_first_frame_check_says_to_requeue_then_continue(api, client):
    job = client.submit(
        "fractal",
        None,
        start=1,
        end=3,
        params={"output": "/tmp/f_####.png"},
        first_frame_check=True,
    )["id"]
    api.store.fail_task(client.task(job, 0).id, "boom")  # as its last retry ends in error
    client.job_action(job, "stop")  # as the dispatcher stops it
    status, line = wait(client, job)
    assert status == 1
    assert line.endswith(
        f"stopped: its first-frame check failed: fix it, then `drqueue job requeue-failed {job}` "
        f"and `drqueue job continue {job}`"
    )
