"""Names with URL characters, through the CLI and drqueue.Client against the real API over HTTP.

A name is one URL path segment: '?', '#', '%', spaces and dots must reach the API as typed, so
that `drqueue pool delete 'gpu?old'` deletes that pool and never the pool 'gpu' (issue 10, 3b).

The API no longer lets such names be created (models.PathName: pools and computers are
[A-Za-z0-9._-]), but a store written before that rule may hold them, so the tests put them in
the store directly and check that every route that names them in its path reaches them alone.
"""

from __future__ import annotations

import pytest
from _live_api import TOKEN, live_api
from click.testing import CliRunner

from drqueue.cli.main import cli
from drqueue.client import Client
from drqueue.errors import DrQueueError, NotFound

#: Each name next to the name its unquoted URL would have reached instead.
TRICKY = [
    ("gpu?old", "gpu"),
    ("gpu#2", "gpu"),
    ("gpu%3Fold", "gpu?old"),
    ("gpu 2", "gpu"),
    ("100%", "gpu"),
    ("..", "gpu"),
    (".", "gpu"),
    ("%2E%2E", ".."),
    ("gpu&x=1", "gpu"),
    ("é ünï", "gpu"),
]


@pytest.fixture
def api(tmp_path):
    with live_api(tmp_path) as live:
        yield live


@pytest.fixture
def client(api):
    with Client(api.url, TOKEN) as c:
        yield c


def drqueue(api, *args: str):
    return CliRunner().invoke(cli, list(args), env=api.env(), catch_exceptions=False)


@pytest.mark.parametrize(("name", "other"), TRICKY)
def test_pool_delete_deletes_the_pool_named_and_no_other(api, client, name, other):
    for pool in {name, other, "gpu"}:
        api.store.create_pool(pool)
    result = drqueue(api, "pool", "delete", name)
    assert result.exit_code == 0, result.output
    assert {p["name"] for p in client.pools()} == {other, "gpu"} - {name}


@pytest.mark.parametrize(("name", "other"), TRICKY)
def test_pool_members_and_computers_with_url_characters(api, client, name, other):
    for computer in (name, other):
        api.store.upsert_computer({"name": computer, "os": "linux", "cores": 4})
        api.store.create_pool(computer)
        api.store.set_pool_member(computer, computer, True)
    assert client.computer(name)["pools"] == [name]
    assert drqueue(api, "computer", "disable", name).exit_code == 0
    assert drqueue(api, "computer", "limit", name, "--max-tasks", "3").exit_code == 0
    shown = client.computer(name)
    assert (shown["name"], shown["enabled"], shown["max_tasks"]) == (name, False, 3)
    assert client.computer(other)["enabled"] and client.computer(other)["max_tasks"] is None
    assert drqueue(api, "pool", "remove", name, name).exit_code == 0
    assert client.computer(name)["pools"] == []
    assert client.computer(other)["pools"] == [other]


def test_the_api_refuses_to_create_a_name_that_needs_quoting(api):
    result = drqueue(api, "pool", "create", "gpu?old")
    assert result.exit_code != 0
    assert "gpu?old" in result.output or "name" in result.output


def test_a_name_with_a_slash_is_refused_by_the_client_without_a_request(api, client):
    # The server decodes %2F before routing, so 'gpu/members/alpha' would reach another route.
    client.create_pool("gpu")
    api.store.upsert_computer({"name": "alpha", "os": "linux", "cores": 4})
    client.pool_member("gpu", "alpha", True)
    with pytest.raises(NotFound, match="names never hold '/'"):
        client.delete_pool("gpu/members/alpha")
    result = drqueue(api, "pool", "delete", "gpu/members/alpha")
    assert result.exit_code == 1 and "names never hold '/'" in result.output
    assert client.computer("alpha")["pools"] == ["gpu"]


def test_an_unknown_action_is_one_segment_too(client):
    job = client.submit("fractal", None, start=1, end=1, params={"output": "/tmp/x_####.png"})
    with pytest.raises(DrQueueError, match="Input should be 'stop'"):
        client.job_action(job["id"], "stop?x=1")
    assert client.job(job["id"])["control"] == "active"
