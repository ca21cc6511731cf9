"""Web sessions: a token logs a browser in, the HttpOnly cookie then stands for it, a write by
cookie needs the session's CSRF token, logout and revocation end it, and a one-time login link
works once, for ten minutes.

The real app over a real SQLite store, in process (Starlette's TestClient keeps the cookie as a
browser would); the sessions' clock is the one seam a test turns (``Sessions(clock=...)``).
"""

from __future__ import annotations

from _api import AUTH, TOKEN, in_process_api

from drqueue.master.sessions import CODE_SECONDS, COOKIE, Sessions
from drqueue.master.tokens import create_token, revoke_tokens

JOB = {"renderer": "shell", "start": 1, "end": 2, "params": {"cmd": "true"}}


def log_in(http, token: str = TOKEN) -> dict:
    answer = http.post("/api/v1/session", json={"token": token})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_token_opens_a_session_whose_cookie_is_httponly_and_strict(tmp_path):
    with in_process_api(tmp_path) as (http, _):
        answer = http.post("/api/v1/session", json={"token": TOKEN})
        assert answer.status_code == 200
        session = answer.json()
        assert session["name"] == "admin" and session["role"] == "admin"
        assert len(session["csrf"]) >= 40
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP here: a Secure cookie would never come back
        assert http.get("/api/v1/session").json() == session
        assert http.get("/api/v1/jobs").status_code == 200  # the cookie alone reads


def test_under_tls_the_cookie_is_secure(tmp_path):
    with in_process_api(tmp_path, tls_cert="/etc/cert.pem") as (http, _):
        cookie = http.post("/api/v1/session", json={"token": TOKEN}).headers["set-cookie"]
        assert "Secure" in cookie


def test_a_wrong_token_is_401_and_a_slave_token_403(tmp_path):
    with in_process_api(tmp_path) as (http, _):
        for body in ({"token": "nope"}, {"token": ""}, {}):
            wrong = http.post("/api/v1/session", json=body)
            assert wrong.status_code == 401, body
            assert wrong.json()["error"] == "AuthError" and "\n" not in wrong.json()["detail"]
            assert "set-cookie" not in wrong.headers
        from drqueue.config import Config

        slave = create_token(Config(root=tmp_path), "slave", "render01")
        refused = http.post("/api/v1/session", json={"token": slave})
        assert refused.status_code == 403 and "slave token" in refused.json()["detail"]
        assert http.get("/api/v1/session").status_code == 401


def test_an_artist_session_has_the_artist_role_and_name(tmp_path):
    from drqueue.config import Config

    with in_process_api(tmp_path) as (http, _):
        ann = create_token(Config(root=tmp_path), "artist", "ann")
        assert log_in(http, ann) | {"csrf": ""} == {"name": "ann", "role": "artist", "csrf": ""}
        admin_only = http.post(
            "/api/v1/pools",
            json={"name": "gpu"},
            headers={"X-CSRF-Token": http.get("/api/v1/session").json()["csrf"]},
        )
        assert admin_only.status_code == 403


def test_a_write_by_cookie_needs_the_sessions_csrf_token(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        csrf = log_in(http)["csrf"]
        for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
            refused = http.post("/api/v1/jobs", json=JOB, headers=headers)
            assert refused.status_code == 403, headers
            assert refused.json() == {
                "detail": "missing or wrong CSRF token: reload the page",
                "error": "Forbidden",
            }
        assert store.list_jobs() == []
        made = http.post("/api/v1/jobs", json=JOB, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201
        job_id = made.json()["id"]
        for method, path in (("PUT", f"/jobs/{job_id}/priority"), ("DELETE", f"/jobs/{job_id}")):
            answer = http.request(method, f"/api/v1{path}", json={"priority": 5})
            assert answer.status_code == 403, (method, path)
        assert http.get(f"/api/v1/jobs/{job_id}").status_code == 200  # reads need none


def test_a_bearer_token_needs_no_csrf_token_even_beside_a_cookie(tmp_path):
    with in_process_api(tmp_path) as (http, _):
        log_in(http)
        assert http.post("/api/v1/jobs", json=JOB, headers=AUTH).status_code == 201
        # a wrong bearer token is not rescued by the cookie
        wrong = http.post("/api/v1/jobs", json=JOB, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


def test_logout_ends_the_session_for_good(tmp_path):
    with in_process_api(tmp_path) as (http, _):
        csrf = log_in(http)["csrf"]
        cookie = http.cookies[COOKIE]
        assert http.delete("/api/v1/session").status_code == 403  # logout is a write: CSRF
        gone = http.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})
        assert gone.status_code == 204
        assert (
            f'{COOKIE}=""' in gone.headers["set-cookie"]
            or "Max-Age=0" in gone.headers["set-cookie"]
        )
        http.cookies.set(COOKIE, cookie)  # a browser that kept the old cookie
        assert http.get("/api/v1/session").status_code == 401
        assert http.get("/api/v1/jobs").status_code == 401
        assert (
            http.post("/api/v1/jobs", json=JOB, headers={"X-CSRF-Token": csrf}).status_code == 401
        )


def test_each_login_gets_a_new_session_and_ends_the_one_it_replaces(tmp_path):
    with in_process_api(tmp_path) as (http, _):
        first = log_in(http)
        first_cookie = http.cookies[COOKIE]
        second = log_in(http)
        assert http.cookies[COOKIE] != first_cookie and second["csrf"] != first["csrf"]
        http.cookies.set(COOKIE, first_cookie)
        assert http.get("/api/v1/session").status_code == 401


def test_revoking_the_token_ends_its_sessions(tmp_path):
    from drqueue.config import Config

    with in_process_api(tmp_path) as (http, _):
        ann = create_token(Config(root=tmp_path), "artist", "ann")
        log_in(http, ann)
        assert http.get("/api/v1/jobs").status_code == 200
        revoke_tokens(Config(root=tmp_path), "ann")
        assert http.get("/api/v1/jobs").status_code == 401


def test_a_session_unused_for_session_hours_expires(tmp_path):
    now = [1000.0]
    with in_process_api(tmp_path, session_hours=2) as (http, _):
        http.app.state.master.sessions = Sessions(idle_seconds=2 * 3600, clock=lambda: now[0])
        log_in(http)
        now[0] += 2 * 3600 - 1
        assert http.get("/api/v1/session").status_code == 200  # use keeps it alive
        now[0] += 2 * 3600 - 1
        assert http.get("/api/v1/session").status_code == 200
        now[0] += 2 * 3600 + 1
        expired = http.get("/api/v1/session")
        assert expired.status_code == 401 and "session ended" in expired.json()["detail"]


def test_a_login_link_works_once_as_the_admin(tmp_path):
    from drqueue.config import Config

    with in_process_api(tmp_path) as (http, _):
        link = http.post("/api/v1/session/link", headers=AUTH)
        assert link.status_code == 201
        assert link.json()["expires_in"] == CODE_SECONDS == 600
        url = link.json()["url"]
        assert url.startswith("http://testserver/login?code=")
        code = url.split("code=", 1)[1]
        session = http.post("/api/v1/session", json={"code": code}).json()
        assert (session["name"], session["role"]) == ("admin", "admin")
        http.cookies.clear()
        again = http.post("/api/v1/session", json={"code": code})
        assert again.status_code == 401 and "login link" in again.json()["detail"]
        assert http.post("/api/v1/session", json={"code": "made-up"}).status_code == 401
        ann = create_token(Config(root=tmp_path), "artist", "ann")
        refused = http.post("/api/v1/session/link", headers={"Authorization": f"Bearer {ann}"})
        assert refused.status_code == 403


def test_a_login_link_expires_after_ten_minutes(tmp_path):
    now = [5000.0]
    with in_process_api(tmp_path) as (http, _):
        http.app.state.master.sessions = Sessions(idle_seconds=3600, clock=lambda: now[0])
        fresh = http.post("/api/v1/session/link", headers=AUTH).json()["url"].split("code=")[1]
        stale = http.post("/api/v1/session/link", headers=AUTH).json()["url"].split("code=")[1]
        now[0] += CODE_SECONDS - 1
        assert http.post("/api/v1/session", json={"code": fresh}).status_code == 200
        now[0] += 2
        assert http.post("/api/v1/session", json={"code": stale}).status_code == 401


def test_a_login_link_dies_with_a_rotated_admin_token(tmp_path):
    from drqueue.config import Config
    from drqueue.master.tokens import rotate_admin_token

    with in_process_api(tmp_path) as (http, _):
        Config(root=tmp_path).ensure_token()
        http.app.state.master.tokens.admin_token = Config(root=tmp_path).api_token()
        admin = {"Authorization": f"Bearer {Config(root=tmp_path).api_token()}"}
        code = http.post("/api/v1/session/link", headers=admin).json()["url"].split("code=")[1]
        rotate_admin_token(Config(root=tmp_path))
        assert http.post("/api/v1/session", json={"code": code}).status_code == 401


def test_one_token_logging_in_without_end_pushes_out_only_its_own_sessions(tmp_path, monkeypatch):
    """An artist who logs in thousands of times (no cookie jar) once pushed every other
    browser's session out of the master's table, the admin's included."""
    from drqueue.config import Config
    from drqueue.master import sessions

    monkeypatch.setattr(sessions, "MAX_SESSIONS_PER_TOKEN", 5)
    with in_process_api(tmp_path) as (http, _):
        artist = create_token(Config(root=tmp_path), "artist", "mallory")
        admin = http.post("/api/v1/session", json={"token": TOKEN})
        admin_cookie = admin.cookies[COOKIE]
        http.cookies.clear()
        first = None
        for _ in range(sessions.MAX_SESSIONS_PER_TOKEN + 3):
            answer = http.post("/api/v1/session", json={"token": artist})
            first = first or answer.cookies[COOKIE]
            http.cookies.clear()
        assert len(http.app.state.master.sessions) == sessions.MAX_SESSIONS_PER_TOKEN + 1
        http.cookies.set(COOKIE, admin_cookie)
        assert http.get("/api/v1/session").status_code == 200
        http.cookies.set(COOKIE, first)
        assert http.get("/api/v1/session").status_code == 401
