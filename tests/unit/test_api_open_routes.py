"""What answers without a token: /api/v1/health and /openapi.json, nothing else.

FastAPI's /docs and /redoc pages load their scripts from a CDN (blank on a farm without
internet), so they are off; docs/api.md and docs/deploy.md say so.
"""

from __future__ import annotations

from _api import TOKEN, in_process_api

#: The only routes that need no token.
OPEN = {"/api/v1/health", "/openapi.json"}


def test_only_health_and_the_openapi_description_are_open(tmp_path):
    with in_process_api(tmp_path) as (http, _):
        assert http.get("/api/v1/health").status_code == 200
        spec = http.get("/openapi.json")
        assert spec.status_code == 200 and "/api/v1/jobs" in spec.json()["paths"]
        assert TOKEN not in spec.text
        for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert http.get(page).status_code == 404, page
        checked = 0
        for route in http.app.routes:
            path = getattr(route, "path", "")
            if path in OPEN:
                continue
            url = path.replace("{job_id}", "1").replace("{index}", "0").replace("{action}", "stop")
            url = url.replace("{name}", "x").replace("{computer}", "x")
            for method in getattr(route, "methods", {"GET"}) - {"HEAD", "OPTIONS"}:
                assert http.request(method, url, json={}).status_code == 401, (method, path)
                checked += 1
        assert checked >= 20


def test_the_openapi_description_says_which_routes_are_open(tmp_path):
    with in_process_api(tmp_path) as (http, _):
        description = http.get("/openapi.json").json()["info"]["description"]
        assert "/openapi.json" in description and "/docs" in description
