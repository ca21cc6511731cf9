"""drqueue.Client answers typed objects and raises typed errors, each with the master's message
(issue 13, "The Python API"), against the real API over HTTP (no dispatcher: nothing runs)."""

from __future__ import annotations

import httpx
import pytest
from _live_api import TOKEN, live_api

import drqueue
from drqueue.config import Config
from drqueue.errors import AuthError, NotFound
from drqueue.master.tokens import create_token
from drqueue.models import JobSpec

SHELL = {"params": {"cmd": "true"}}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with live_api(tmp_path_factory.mktemp("typed")) as live:
        yield live


@pytest.fixture
def client(api):
    with drqueue.Client(api.url, TOKEN) as c:
        yield c


def test_a_submit_answers_a_typed_result_and_the_job_reads_by_attribute(client):
    answer = client.submit("shell", start=1, end=4, block_size=2, **SHELL)
    assert isinstance(answer, drqueue.Submitted) and answer.tasks == 2
    job = client.job(answer)
    assert isinstance(job, drqueue.Job)
    assert (job.id, job.status, job.counts.total, job.counts.queued) == (answer.id, "queued", 2, 2)
    assert job.params["cmd"] == "true" and job.requirements.pools == []
    tasks = client.tasks(job)
    assert [(t.index, t.start, t.end, t.state) for t in tasks] == [
        (0, 1, 2, "queued"),
        (1, 3, 4, "queued"),
    ]
    assert all(isinstance(t, drqueue.Task) for t in tasks)
    events = client.events(job)
    assert isinstance(events[0], drqueue.Event) and events[0].kind == "job.submitted"


def test_raw_keeps_the_json_and_keys_read_it_as_before(client, api):
    job = client.job(client.submit("shell", start=1, end=1, **SHELL))
    assert (
        job.raw
        == httpx.get(
            f"{api.url}/api/v1/jobs/{job.id}", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()
    )
    assert job["counts"]["total"] == 1 and job.get("waiting_reason") is None and "status" in job
    assert job.counts.raw is job.raw["counts"]


def test_the_job_id_keyword_of_the_dict_era_client_still_works(client):
    job = client.submit("shell", start=1, end=1, **SHELL)
    assert client.events(job_id=job.id)[0].job_id == job.id
    assert client.tasks(job_id=job)[0].job_id == job.id
    assert client.job(job_id=job.id).id == job.id


def test_keys_a_newer_master_adds_do_not_break_an_older_client():
    job = drqueue.Job.from_json(
        {"id": 1, "renderer": "shell", "start": 1, "end": 1, "status": "queued", "colour": "red"}
    )
    assert job.colour == "red" and job.counts.total == 0 and job.raw["colour"] == "red"


def test_a_jobspec_submits_as_keywords_do(client):
    spec = JobSpec(renderer="shell", start=1, end=3, name="from a spec", params={"cmd": "true"})
    job = client.job(client.submit(spec, priority=70))
    assert (job.name, job.priority, job.counts.total) == ("from a spec", 70, 3)


def test_a_missing_job_is_job_not_found_with_the_masters_message(client):
    with pytest.raises(drqueue.JobNotFound, match="^no job 999999$"):
        client.job(999999)
    with pytest.raises(NotFound):  # an existing except clause still catches it
        client.tasks(999999)


def test_a_wrong_token_is_unauthorized_and_never_shown(api):
    secret = "wrong-secret-token-42"
    with drqueue.Client(api.url, secret) as wrong:
        with pytest.raises(drqueue.Unauthorized) as caught:
            wrong.jobs()
        assert isinstance(caught.value, AuthError)
        assert "missing or wrong API token" in str(caught.value)
        assert secret not in str(caught.value) and secret not in repr(wrong)


def test_another_artists_job_is_forbidden_with_the_masters_message(client, api):
    job = client.submit("shell", start=1, end=1, owner="ann", **SHELL)
    bob = create_token(Config(root=api.root), "artist", "bob")
    with (
        drqueue.Client(api.url, bob) as other,
        pytest.raises(drqueue.Forbidden, match="belongs to 'ann'"),
    ):
        other.stop(job)


@pytest.mark.parametrize(
    "fields",
    [
        {"start": 5, "end": 1},
        {"start": 1, "end": 2, "priority": "high"},
        {"start": 1, "end": 2, "env": {"1BAD": "x"}},
        {"start": 1, "end": 2, "colour": "red"},
    ],
)
def test_a_bad_submit_is_refused_here_with_the_apis_own_message(client, api, fields):
    body = {"renderer": "shell", "owner": "me", **SHELL, **fields}
    server = httpx.post(
        f"{api.url}/api/v1/jobs", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()["detail"]
    sent: list[str] = []
    client._http.event_hooks["request"].append(lambda request: sent.append(request.url.path))
    with pytest.raises(drqueue.InvalidJob) as caught:
        client.submit("shell", owner="me", **SHELL, **fields)
    assert str(caught.value) == server
    assert sent == []  # refused before any request


def test_no_master_is_master_unreachable_without_the_token():
    with (
        drqueue.Client("http://127.0.0.1:9", "secret-token-77", timeout=2) as nowhere,
        pytest.raises(drqueue.MasterUnreachable) as caught,
    ):
        nowhere.health()
    assert "cannot reach the master at http://127.0.0.1:9" in str(caught.value)
    assert "secret-token-77" not in str(caught.value)
