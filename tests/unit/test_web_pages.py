"""The web UI's files: the page shell at each page's path and the assets under /static/, with
no token, with the security headers the UI's contract names, and nothing else (no file outside
the static folder, no hidden one, no symlink).  The app in process, serving a placeholder shell
from a folder of the test's own (the real one is the front end's, in drqueue/web/static)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _api import AUTH, in_process_api

import drqueue
from drqueue.master.api.web import STATIC_DIR

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'"
)
SHELL = "<!doctype html><title>DrQueue</title><script type=module src=/static/app.js></script>"


@pytest.fixture()
def web(tmp_path):
    static = tmp_path / "static"
    (static / "vendor").mkdir(parents=True)
    (static / "index.html").write_text(SHELL)
    (static / "app.js").write_text("export const answer = 42;\n")
    (static / "app.css").write_text("body { margin: 0 }\n")
    (static / "vendor" / "lib.js").write_text("export {};\n")
    (static / ".secret").write_text("hidden")
    (tmp_path / "outside.js").write_text("outside")
    (static / "link.js").symlink_to(tmp_path / "outside.js")
    with in_process_api(tmp_path) as (http, store):
        http.app.state.web_static = static
        yield http


def secure(answer) -> None:
    assert answer.headers["content-security-policy"] == CSP
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    "path", ["/", "/jobs", "/jobs/12", "/submit", "/computers", "/events", "/login", "/jobs/"]
)
def test_every_page_is_the_shell_without_a_token(web, path):
    answer = web.get(path + ("?code=abc" if path == "/login" else ""))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.text == SHELL
    secure(answer)


@pytest.mark.parametrize(
    "path,kind",
    [
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/app.css", "text/css; charset=utf-8"),
        ("/static/vendor/lib.js", "text/javascript; charset=utf-8"),
        ("/static/index.html", "text/html; charset=utf-8"),
    ],
)
def test_assets_are_served_with_their_type_and_the_headers(web, path, kind):
    answer = web.get(path)
    assert answer.status_code == 200 and answer.headers["content-type"] == kind
    secure(answer)
    etag = answer.headers["etag"]
    again = web.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content
    assert web.head(path).status_code == 200 and not web.head(path).content


@pytest.mark.parametrize(
    "path",
    [
        "/static/.secret",
        "/static/link.js",
        "/static/missing.js",
        "/static/../outside.js",
        "/static/%2E%2E/outside.js",
        "/static/vendor/../../outside.js",
        "/static/",
        "/static/vendor",
        "/static//etc/passwd",
    ],
)
def test_nothing_but_the_static_folders_plain_files_is_served(web, path):
    answer = web.get(path)
    assert answer.status_code == 404, path
    assert "outside" not in answer.text and "hidden" not in answer.text


def test_other_paths_and_methods_go_to_the_api(web):
    assert web.get("/jobs/abc").status_code == 404
    assert web.get("/nothing").status_code == 404
    assert web.post("/").status_code in (404, 405)
    assert web.get("/api/v1/jobs").status_code == 401
    assert web.get("/api/v1/jobs", headers=AUTH).status_code == 200
    assert "/" not in web.get("/openapi.json").json()["paths"]


def test_the_ui_is_served_from_the_package_folder_that_ships_in_the_wheel():
    assert Path(drqueue.__file__).parent / "web" / "static" == STATIC_DIR
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"web/static/*"' in pyproject


def test_a_browser_asking_for_no_page_gets_the_ui_saying_so_with_a_404(web):
    """A mistyped address in a browser shows the UI's own "Nothing here" page, not raw JSON;
    a program (no text/html in Accept), the API and the OpenAPI description are answered as
    before."""
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in ("/nonsense", "/jobs/abc", "/static-ish/x"):
        answer = web.get(path, headers=html)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "/static/app.js" in answer.text  # the UI's page
    assert web.get("/nonsense").headers["content-type"].startswith("application/json")
    assert web.get("/api/v1/nothing", headers=html).json()["detail"]
    assert "paths" in web.get("/openapi.json", headers=html).json()
