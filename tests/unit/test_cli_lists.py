"""`drqueue jobs` and `drqueue tasks` through click's CliRunner against the real API over HTTP:
which jobs and tasks each option lists (the stored ones, written through the store), one page
at a time, and what stderr says of the next page."""

from __future__ import annotations

import json
import uuid

import pytest
from _live_api import live_api
from click.testing import CliRunner

from drqueue.cli.main import JOBS_SHOWN, TASKS_SHOWN, cli
from drqueue.models import JobSpec, split_frames


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with live_api(tmp_path_factory.mktemp("cli-lists")) as live:
        yield live


@pytest.fixture(scope="module")
def farm(api):
    """60 queued jobs of ann, then one finished and one in error (bob), and a stopped one:
    their ids by what they are."""
    store = api.store
    jobs = {"queued": [submit(store, f"q{i}", "ann") for i in range(60)]}
    jobs["finished"] = submit(store, "done", "bob")
    finish(store, jobs["finished"], {"status": "finished", "exit_code": 0})
    jobs["error"] = submit(store, "broken", "bob", retries=0)
    finish(store, jobs["error"], {"status": "failed", "exit_code": 1, "reason": "boom"})
    jobs["stopped"] = submit(store, "held", "bob")
    store.set_job_control(jobs["stopped"], "stopped")
    jobs["big"] = submit(store, "big", "carl", frames=250)
    return jobs


def submit(store, name: str, owner: str, *, frames: int = 1, retries: int = 3) -> int:
    spec = JobSpec(
        renderer="shell", start=1, end=frames, name=name, owner=owner, retries=retries,
        params={"cmd": "true"},
    )  # fmt: skip
    return store.create_job(spec, split_frames(1, frames))


def finish(store, job_id: int, result: dict) -> None:
    task = store.get_task(job_id, 0)
    attempt = uuid.uuid4().hex
    assert store.mark_dispatched(task.id, attempt, 0, "alpha")
    store.record_result(attempt, result)


def drqueue(api, *args: str):
    result = CliRunner().invoke(cli, list(args), env=api.env(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def listed_ids(result) -> list[int]:
    """The job or task ids of a table, in its order (the first column of each row)."""
    return [int(line.split()[0]) for line in result.stdout.splitlines()[1:] if line.strip()]


def test_jobs_lists_a_page_of_the_active_jobs_newest_first_and_says_how_to_see_the_next(api, farm):
    active = sorted([*farm["queued"], farm["stopped"], farm["big"]], reverse=True)
    first = drqueue(api, "jobs")
    assert listed_ids(first) == active[:JOBS_SHOWN]
    assert first.stderr.strip() == (
        f"active jobs 1–{JOBS_SHOWN} of {len(active)} — next: drqueue jobs --offset {JOBS_SHOWN}"
    )
    rest = drqueue(api, "jobs", "--offset", str(JOBS_SHOWN))
    assert listed_ids(rest) == active[JOBS_SHOWN:]
    assert rest.stderr.strip() == f"active jobs {JOBS_SHOWN + 1}–{len(active)} of {len(active)}"
    past = drqueue(api, "jobs", "--offset", "1000")
    assert past.stdout.strip() == f"no active jobs past the first {len(active)}"


def test_jobs_all_state_and_owner_list_ended_jobs_too(api, farm):
    every = drqueue(api, "jobs", "--all", "--limit", "500")
    assert farm["finished"] in listed_ids(every) and farm["error"] in listed_ids(every)
    assert len(listed_ids(every)) == 64
    errors = drqueue(api, "jobs", "--state", "error")
    assert listed_ids(errors) == [farm["error"]]
    bobs = drqueue(api, "jobs", "--owner", "bob")
    assert listed_ids(bobs) == [farm["stopped"]]  # bob's active one
    assert listed_ids(drqueue(api, "jobs", "--owner", "bob", "--all")) == [
        farm["stopped"], farm["error"], farm["finished"],
    ]  # fmt: skip
    two = drqueue(api, "jobs", "--all", "--limit", "2", "--offset", "2")
    assert listed_ids(two) == [farm["error"], farm["finished"]]
    assert two.stderr.strip() == "jobs 3–4 of 64 — next: drqueue jobs --all --limit 2 --offset 4"


def test_jobs_json_is_the_page_alone_on_stdout(api, farm):
    result = drqueue(api, "jobs", "--json", "--limit", "3")
    data = json.loads(result.stdout)
    assert [job["id"] for job in data] == [farm["big"], farm["stopped"], max(farm["queued"])]
    assert "env" not in data[0] and data[0]["counts"]["total"] == 250
    assert "next: drqueue jobs --limit 3 --offset 3" in result.stderr


def test_no_active_jobs_says_so_and_where_the_others_are(tmp_path):
    with live_api(tmp_path) as api:
        assert drqueue(api, "jobs").stdout.strip() == "no active jobs (--all shows ended ones)"


@pytest.mark.parametrize("bad", [["--limit", "0"], ["--limit", "501"], ["--state", "asleep"]])
def test_jobs_refuses_a_bad_option_in_one_line(api, bad):
    result = CliRunner().invoke(cli, ["jobs", *bad], env=api.env())
    assert result.exit_code == 2 and "Invalid value" in result.output


def test_tasks_lists_its_first_page_and_says_how_to_see_the_next(api, farm):
    big = farm["big"]
    first = drqueue(api, "tasks", str(big))
    assert listed_ids(first) == list(range(TASKS_SHOWN))
    assert first.stderr.strip() == (
        f"tasks 1–{TASKS_SHOWN} of 250 — next: drqueue tasks {big} --offset {TASKS_SHOWN}"
    )
    last = drqueue(api, "tasks", str(big), "--offset", "210")
    assert listed_ids(last) == list(range(210, 250)) and last.stderr == ""
    ends = drqueue(api, "tasks", str(big), "--offset", str(250 - TASKS_SHOWN))  # a full page
    assert listed_ids(ends) == list(range(250 - TASKS_SHOWN, 250))
    assert ends.stderr.strip() == f"tasks {251 - TASKS_SHOWN}–250 of 250"  # and no next page
    every = drqueue(api, "tasks", str(big), "--all", "--offset", "10")
    assert listed_ids(every) == list(range(10, 250)) and every.stderr == ""
    some = drqueue(api, "tasks", str(big), "--state", "queued", "--limit", "5", "--json")
    assert [t["index"] for t in json.loads(some.stdout)] == [0, 1, 2, 3, 4]
    assert some.stderr.strip() == (
        f"tasks 1–5 — next: drqueue tasks {big} --state queued --limit 5 --offset 5"
    )


def test_tasks_says_so_when_no_task_matches(api, farm):
    big = farm["big"]
    none = drqueue(api, "tasks", str(big), "--state", "running")
    assert none.stdout == "" and none.stderr.strip() == f"job {big} has no running tasks"
    past = drqueue(api, "tasks", str(big), "--offset", "900")
    assert past.stdout == "" and past.stderr.strip() == f"job {big} has no tasks from task 900"
