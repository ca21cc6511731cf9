"""The web UI's files: the page shell at ``/``, ``/jobs``, ``/jobs/ID``, ``/submit``,
``/computers``, ``/events`` and ``/login`` (one ``index.html``: the page picks its view from the
path), and its assets under ``/static/``, from the package's ``drqueue/web/static/``.

They need no token (all data comes from the API, which does), and every answer carries
:data:`SECURITY_HEADERS`: a Content-Security-Policy that allows this origin's scripts, styles,
images and connections only (no inline script or style, no framing), ``nosniff`` and no
referrer.  An asset is served only if it is a regular file under the static folder, reached by
plain names (no ``..``, no hidden name) without following a symlink.

:class:`WebUI` is an ASGI middleware in front of the API rather than routes of it: the pages are
not part of the API (not in its OpenAPI description, not under its token rule), and anything
that is not a page or an asset goes on to the API untouched.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Any

from drqueue.master.api.files import open_under, read_at

#: The package's folder of the UI's files.
STATIC_DIR = Path(__file__).resolve().parents[2] / "web" / "static"

#: The paths that answer the page shell.
PAGES = re.compile(r"^/(?:jobs(?:/\d{1,19})?|submit|computers|events|login)?/?$")

SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
        b"script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)

#: Content types by file suffix; anything else is application/octet-stream.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".map": "application/json",
}

#: The largest asset served, in bytes (the UI's files are a few hundred KiB in all).
MAX_ASSET_BYTES = 8 << 20

#: A part of an asset's name: no hidden file, no separator.
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class WebUI:
    """Serve the page shell and the static assets; pass every other request to *app*.

    The folder is ``app.state.web_static`` when the wrapped app sets it (tests use their own),
    else :data:`STATIC_DIR`."""

    def __init__(self, app: Any, *, static_dir: Path | None = None):
        self.app = app
        self.static_dir = static_dir

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        missing = False
        if PAGES.match(path):
            name = "index.html"
        elif path.startswith("/static/"):
            name = path[len("/static/") :]
        elif not path.startswith(("/api/", "/openapi.json")) and b"text/html" in dict(
            scope["headers"]
        ).get(b"accept", b""):
            # A browser's address of no page: the UI says so in its own page, with a 404.
            name, missing = "index.html", True
        else:
            await self.app(scope, receive, send)
            return
        await self._answer(scope, send, self._folder(scope), name, missing=missing)

    def _folder(self, scope: dict[str, Any]) -> Path:
        app = scope.get("app")
        state = getattr(app, "state", None)
        return getattr(state, "web_static", None) or self.static_dir or STATIC_DIR

    async def _answer(
        self, scope: dict[str, Any], send: Any, folder: Path, name: str, *, missing: bool = False
    ) -> None:
        found = read_asset(folder, name)
        if found is None:
            body = b"not found"
            status, headers = 404, [(b"content-type", b"text/plain; charset=utf-8")]
        else:
            data, etag = found
            matched = not missing and dict(scope["headers"]).get(b"if-none-match") == etag
            status = 404 if missing else 304 if matched else 200
            body = b"" if matched else data
            content_type = CONTENT_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
            headers = [
                (b"content-type", content_type.encode()),
                (b"etag", etag),
                (b"cache-control", b"no-cache"),
            ]
        headers += [*SECURITY_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )


def read_asset(folder: Path, name: str) -> tuple[bytes, bytes] | None:
    """(bytes, ETag) of the regular file *name* (``a.js``, ``vendor/b.js``) under *folder*, or
    None.  Each part of the name must be a plain name, opened without following a symlink."""
    parts = name.split("/")
    if not all(_ASSET_NAME.match(part) for part in parts):
        return None
    try:
        fd = open_under(folder, parts)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ASSET_BYTES:
            return None
        data = read_at(fd, 0, MAX_ASSET_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    etag = b'"' + hashlib.sha256(data).hexdigest()[:20].encode() + b'"'
    return data, etag
