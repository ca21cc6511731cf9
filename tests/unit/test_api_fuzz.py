"""Bad input, fuzzed: generated job specs and API bodies are refused with a 4xx and change nothing.

The API runs in-process over a real SQLite store (no dispatcher: nothing here needs engines).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drqueue.config import Config
from drqueue.master.api import create_app
from drqueue.models import JobSpec, split_frames
from drqueue.store.sqlite import SQLiteStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def raw(body) -> str:
    """JSON as a careless client might send it: NaN and Infinity included."""
    return json.dumps(body, allow_nan=True)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    store = SQLiteStore(root / "db.sqlite")
    job_id = store.create_job(JobSpec("shell", 1, 4, params={"cmd": "true"}), split_frames(1, 4))
    config = Config(root=root)
    client = TestClient(create_app(store, None, config, TOKEN))
    yield client, store, root / "db.sqlite", job_id
    store.close()


def fingerprint(store: SQLiteStore, path: Path) -> str:
    """The bytes of the store: the main file and its write-ahead log."""
    digest = hashlib.sha256()
    for part in (path, path.with_name(path.name + "-wal")):
        if part.exists():
            digest.update(part.read_bytes())
    return digest.hexdigest()


def intlike(text: str) -> bool:
    """Whether the API may fairly read *text* as a number (pydantic's lax mode does)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


VALID = {"renderer": "shell", "start": 1, "end": 10, "params": {"cmd": "true"}}

bad_values = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=30),
    st.floats(allow_nan=True),
    st.integers(min_value=10**12, max_value=10**30),
    st.integers(max_value=-(10**12)),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)

#: (field, strategy of values that must be refused)
BAD_FIELDS = {
    "renderer": st.one_of(
        st.text(max_size=40).filter(lambda s: s not in ("shell", "fractal", "blender")),
        st.integers(),
        st.none(),
    ),
    "start": st.one_of(
        st.text(max_size=5).filter(lambda s: not intlike(s)),
        st.integers(min_value=10**10),
        st.floats(allow_nan=True).filter(
            lambda f: f != int(f) if f == f and abs(f) < 1e15 else True
        ),
    ),
    "end": st.integers(max_value=0),  # before start=1
    "step": st.one_of(st.integers(max_value=0), st.integers(min_value=10**10)),
    "block_size": st.one_of(
        st.integers(max_value=0),
        st.text(min_size=1, max_size=3).filter(lambda s: not intlike(s)),
    ),
    "retries": st.one_of(st.integers(max_value=-1), st.integers(min_value=101)),
    "priority": st.integers(min_value=1_000_001),
    "timeout": st.one_of(st.floats(max_value=0), st.floats(min_value=31 * 86400)),
    "env": st.one_of(
        st.lists(st.text(), min_size=1),
        st.dictionaries(
            st.text(min_size=1).filter(lambda s: not s.isidentifier() or not s.isascii()),
            st.text(max_size=3),
            min_size=1,
            max_size=2,
        ),
    ),
    "params": st.one_of(
        st.just({}),
        st.just({"cmd": ""}),
        st.just({"cmd": "'unclosed"}),
        st.dictionaries(
            st.text(min_size=1).filter(lambda s: s != "cmd"), st.integers(), min_size=1, max_size=2
        ),
    ),
    "requirements": st.one_of(
        st.just({"os": "beos"}),
        st.just({"min_ram_gb": -1}),
        st.just({"min_cores": -3}),
        st.just({"gpus": -1}),
        st.just({"nonsense": 1}),
    ),
    "after": st.one_of(
        st.lists(st.integers(min_value=10_000, max_value=2**62), min_size=1, max_size=3),
        st.just("1"),
    ),
    "scene": st.one_of(st.just("../../../etc/passwd\x00"), st.text(min_size=5000, max_size=5001)),
    "extra_field": bad_values,
}


@settings(
    max_examples=700, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_malformed_job_specs_are_refused_and_change_nothing(api, data):
    client, store, path, _ = api
    field = data.draw(st.sampled_from(sorted(BAD_FIELDS)))
    value = data.draw(BAD_FIELDS[field])
    body = dict(VALID, **{field: value})
    if field == "scene":
        body["renderer"] = "blender"
    before = fingerprint(store, path)
    response = client.post("/api/v1/jobs", content=raw(body), headers=AUTH)
    assert 400 <= response.status_code < 500, (body, response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    assert fingerprint(store, path) == before


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.one_of(bad_values, st.dictionaries(st.text(max_size=10), bad_values, max_size=5)))
def test_arbitrary_bodies_to_every_write_route_are_refused(api, body):
    client, store, path, job_id = api
    before = fingerprint(store, path)
    for method, url in (
        ("POST", "/api/v1/jobs"),
        ("PUT", f"/api/v1/jobs/{job_id}/priority"),
        ("POST", f"/api/v1/jobs/{job_id}/unblock"),
        ("POST", "/api/v1/pools/nope/members"),
        ("PUT", "/api/v1/computers/nope/limit"),
        ("POST", "/api/v1/pools"),
    ):
        response = client.request(method, url, content=raw(body), headers=AUTH)
        if response.status_code < 400:
            # Only a body that happens to be valid may pass; none of these may change the store.
            assert method == "POST" and url == "/api/v1/pools", (url, body)
            continue
        assert response.status_code < 500, (url, body, response.text)
    if not (isinstance(body, dict) and isinstance(body.get("name"), str)):
        assert fingerprint(store, path) == before


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    frame=st.one_of(st.text(max_size=20), st.integers(min_value=2**40)),
    job=st.one_of(st.integers(min_value=10**6, max_value=2**62), st.text(min_size=1, max_size=20)),
)
def test_log_requests_never_escape_or_crash(api, frame, job):
    client, store, path, job_id = api
    from urllib.parse import quote

    for url in (f"/api/v1/jobs/{job_id}/log", f"/api/v1/jobs/{quote(str(job), safe='')}/log"):
        response = client.get(url, params={"frame": frame}, headers=AUTH)
        assert 400 <= response.status_code < 500, (url, frame, response.text)


def test_path_traversal_in_log_and_ids_is_refused(api):
    client, _, _, job_id = api
    for url, params in (
        (f"/api/v1/jobs/{job_id}/log", {"frame": "../../etc/passwd"}),
        ("/api/v1/jobs/..%2F..%2Fetc%2Fpasswd/log", {"frame": 1}),
        ("/api/v1/computers/..%2F..%2Fetc", {}),
    ):
        response = client.get(url, params=params, headers=AUTH)
        assert response.status_code in (404, 422), (url, response.text)
        assert "root:" not in response.text


def test_every_route_but_health_needs_the_token(api):
    client, _, _, job_id = api
    assert client.get("/api/v1/health").status_code == 200
    checked = 0
    for route in client.app.routes:
        path = getattr(route, "path", "")
        if not path.startswith("/api/v1") or path == "/api/v1/health":
            continue
        url = (
            path.replace("{job_id}", str(job_id))
            .replace("{index}", "0")
            .replace("{name}", "x")
            .replace("{computer}", "x")
            .replace("{action}", "stop")
        )
        for method in route.methods - {"HEAD", "OPTIONS"}:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                response = client.request(method, url, headers=headers, json={})
                assert response.status_code == 401, (method, url, headers, response.status_code)
            checked += 1
    assert checked >= 20


def test_openapi_describes_the_api(api):
    client, *_ = api
    spec = client.get("/openapi.json").json()
    assert "/api/v1/jobs" in spec["paths"]
    assert "post" in spec["paths"]["/api/v1/jobs"]
