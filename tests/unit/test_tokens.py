"""Roles: artist tokens control only their own jobs; admin tokens control everything."""

import json
import warnings

import pytest

from drqueue.config import Config
from drqueue.master.api import create_app
from drqueue.master.tokens import create_token
from drqueue.store.sqlite import SQLiteStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture()
def api(tmp_path):
    config = Config(root=tmp_path)
    admin = config.ensure_token()
    store = SQLiteStore(tmp_path / "db.sqlite")
    client = TestClient(create_app(store, None, config, admin))
    ann = create_token(config, "artist", "ann")
    bob = create_token(config, "artist", "bob")
    yield client, config, admin, ann, bob
    store.close()


def as_(token):
    return {"Authorization": f"Bearer {token}"}


def test_tokens_file_keeps_only_hashes_owner_readable(api):
    _, config, _, ann, _ = api
    path = config.etc_dir / "tokens.json"
    assert ann not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600


def test_artist_submits_as_themself_and_controls_only_own_jobs(api):
    client, _, admin, ann, bob = api
    body = {
        "renderer": "shell",
        "start": 1,
        "end": 2,
        "params": {"cmd": "true"},
        "owner": "mallory",
    }
    job = client.post("/api/v1/jobs", json=body, headers=as_(ann)).json()["id"]
    assert client.get(f"/api/v1/jobs/{job}", headers=as_(bob)).json()["owner"] == "ann"
    refused = client.post(f"/api/v1/jobs/{job}/stop", headers=as_(bob))
    assert refused.status_code == 403 and "belongs to 'ann'" in refused.json()["detail"]
    assert (
        client.put(
            f"/api/v1/jobs/{job}/priority", json={"priority": 99}, headers=as_(bob)
        ).status_code
        == 403
    )
    assert client.delete(f"/api/v1/jobs/{job}", headers=as_(bob)).status_code == 403
    assert client.post(f"/api/v1/jobs/{job}/stop", headers=as_(ann)).json()["status"] == "stopped"
    assert client.post(f"/api/v1/jobs/{job}/continue", headers=as_(admin)).status_code == 200


def test_only_admins_touch_pools_computers_and_farm_secrets(api):
    client, _, admin, ann, _ = api
    assert client.post("/api/v1/pools", json={"name": "gpu"}, headers=as_(ann)).status_code == 403
    assert client.get("/api/v1/farm/engine-connection", headers=as_(ann)).status_code == 403
    assert client.post("/api/v1/slaves/x/heartbeat", json={}, headers=as_(ann)).status_code == 403
    assert client.post("/api/v1/pools", json={"name": "gpu"}, headers=as_(admin)).status_code == 201
    assert client.get("/api/v1/pools", headers=as_(ann)).status_code == 200


def test_unknown_and_revoked_looking_tokens_get_401(api):
    client, *_ = api
    for token in ("", "nope", "Bearer", "x" * 5000):
        assert client.get("/api/v1/jobs", headers=as_(token)).status_code == 401


# -- slave tokens ------------------------------------------------------------------------------

#: The only routes a slave token opens: its heartbeat and the engine connection file.
SLAVE_ROUTES = {
    ("POST", "/api/v1/slaves/{name}/heartbeat"),
    ("GET", "/api/v1/farm/engine-connection"),
}


def route_url(path: str, job_id: int) -> str:
    return (
        path.replace("{job_id}", str(job_id))
        .replace("{index}", "0")
        .replace("{name}", "render01")
        .replace("{computer}", "render01")
        .replace("{action}", "stop")
    )


def test_a_slave_token_only_heartbeats_and_fetches_the_engine_file(api):
    client, config, admin, ann, _ = api
    slave = create_token(config, "slave", "render01")
    config.engine_file.write_text('{"key": "k"}')
    beat = client.post("/api/v1/slaves/render01/heartbeat", json={}, headers=as_(slave))
    assert beat.status_code == 200 and beat.json()["registered"] == []
    connection = client.get("/api/v1/farm/engine-connection", headers=as_(slave))
    assert connection.json() == {"key": "k"}

    job = client.post(
        "/api/v1/jobs",
        json={"renderer": "shell", "start": 1, "end": 1, "params": {"cmd": "true"}},
        headers=as_(ann),
    ).json()["id"]
    # Every other route, including any added later, answers 403 to it.
    checked = 0
    for route in client.app.routes:
        path = getattr(route, "path", "")
        if not path.startswith("/api/v1") or path == "/api/v1/health":
            continue
        for method in route.methods - {"HEAD", "OPTIONS"}:
            if (method, path) in SLAVE_ROUTES:
                continue
            response = client.request(method, route_url(path, job), headers=as_(slave), json={})
            assert response.status_code == 403, (method, path, response.text)
            assert "slave token may only heartbeat" in response.json()["detail"]
            checked += 1
    assert checked >= 20
    # Nothing the slave token tried changed the job.
    assert client.get(f"/api/v1/jobs/{job}", headers=as_(admin)).json()["status"] != "stopped"


def test_admin_tokens_still_work_for_slaves(api):
    client, config, admin, _, _ = api
    config.engine_file.write_text('{"key": "k"}')
    assert client.post("/api/v1/slaves/x/heartbeat", json={}, headers=as_(admin)).status_code == 200
    assert client.get("/api/v1/farm/engine-connection", headers=as_(admin)).status_code == 200


# -- revoking and rotating ------------------------------------------------------------------------


def cli(root, *args):
    from click.testing import CliRunner

    from drqueue.cli.main import cli as drqueue

    result = CliRunner().invoke(drqueue, list(args), env={"DRQUEUE_ROOT": str(root)})
    return result


def test_revoked_tokens_get_401_at_once_from_the_running_api(api):
    client, config, admin, ann, bob = api
    assert client.get("/api/v1/jobs", headers=as_(ann)).status_code == 200
    listed = cli(config.root, "token", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert ann not in listed.output and bob not in listed.output and admin not in listed.output
    ids = {row["name"]: row["id"] for row in json.loads(listed.output)}
    assert set(ids) == {"admin", "ann", "bob"}

    revoked = cli(config.root, "token", "revoke", ids["ann"])
    assert revoked.exit_code == 0 and "revoked artist token" in revoked.output
    assert client.get("/api/v1/jobs", headers=as_(ann)).status_code == 401
    assert client.get("/api/v1/jobs", headers=as_(bob)).status_code == 200

    assert cli(config.root, "token", "revoke", "bob").exit_code == 0  # by name
    assert client.get("/api/v1/jobs", headers=as_(bob)).status_code == 401

    unknown = cli(config.root, "token", "revoke", "nobody")
    assert unknown.exit_code == 1 and "no token has the id or name 'nobody'" in unknown.output
    master = cli(config.root, "token", "revoke", "admin")
    assert master.exit_code == 1 and "rotate-admin" in master.output
    assert client.get("/api/v1/jobs", headers=as_(admin)).status_code == 200


def test_a_rotated_admin_token_takes_effect_without_a_restart(api):
    client, config, admin, _, _ = api
    rotated = cli(config.root, "token", "rotate-admin")
    assert rotated.exit_code == 0, rotated.output
    new = rotated.output.strip()
    assert new != admin and config.token_file.read_text().strip() == new
    assert config.token_file.stat().st_mode & 0o777 == 0o600
    assert client.get("/api/v1/jobs", headers=as_(admin)).status_code == 401
    assert client.get("/api/v1/jobs", headers=as_(new)).status_code == 200


def test_a_broken_tokens_file_keeps_the_tokens_known_and_is_read_once(api, caplog):
    """A tokens.json that cannot be parsed (a bad hand edit) made every request a 500, each
    parsing it again; now the tokens known before stay, and it is read again once it changes."""
    client, config, admin, ann, bob = api
    assert client.get("/api/v1/jobs", headers=as_(ann)).status_code == 200
    path = config.etc_dir / "tokens.json"
    good = path.read_text()
    path.write_text(good[: len(good) // 2])  # cut short: not JSON
    with caplog.at_level("ERROR", logger="drqueue.master.tokens"):
        for _ in range(3):
            assert client.get("/api/v1/jobs", headers=as_(ann)).status_code == 200
            assert client.get("/api/v1/jobs", headers=as_("not-a-token")).status_code == 401
    assert len([r for r in caplog.records if "cannot be read" in r.getMessage()]) == 1
    assert client.get("/api/v1/jobs", headers=as_(admin)).status_code == 200
    path.write_text(
        json.dumps({"tokens": [e for e in json.loads(good)["tokens"] if e["owner"] != "ann"]})
    )
    assert client.get("/api/v1/jobs", headers=as_(ann)).status_code == 401  # fixed: read again
    assert client.get("/api/v1/jobs", headers=as_(bob)).status_code == 200


def test_token_create_makes_slave_tokens_by_name(api):
    client, config, *_ = api
    made = cli(config.root, "token", "create", "--role", "slave", "--name", "slaves")
    assert made.exit_code == 0, made.output
    token = made.output.strip()
    assert (
        client.post("/api/v1/slaves/r1/heartbeat", json={}, headers=as_(token)).status_code == 200
    )
    assert client.get("/api/v1/jobs", headers=as_(token)).status_code == 403
    rows = json.loads(cli(config.root, "token", "list", "--json").output)
    assert {"role": "slave", "name": "slaves"}.items() <= rows[-1].items()


def test_another_artists_job_shows_its_env_names_but_not_their_values(api):
    """A job's env may hold a licence server's password: only its owner and admins read it."""
    client, _, admin, ann, bob = api
    body = {
        "renderer": "shell",
        "start": 1,
        "end": 1,
        "params": {"cmd": "true"},
        "env": {"LICENSE_PASSWORD": "hunter2", "OCIO": "/proj/ocio"},
    }
    job_id = client.post("/api/v1/jobs", json=body, headers=as_(bob)).json()["id"]
    seen = {
        who: client.get(f"/api/v1/jobs/{job_id}", headers=as_(token)).json()["env"]
        for who, token in (("bob", bob), ("admin", admin), ("ann", ann))
    }
    assert seen["bob"] == seen["admin"] == body["env"]
    assert seen["ann"] == {"LICENSE_PASSWORD": "(hidden)", "OCIO": "(hidden)"}
    listing = client.get("/api/v1/jobs", headers=as_(ann)).text
    assert "hunter2" not in listing
