"""Roles: artist tokens control only their own jobs; admin tokens control everything."""

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
