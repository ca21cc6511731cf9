"""Talking to a DrQueue master over its HTTP API, with Python's standard library only.

Blender's Python has no ``httpx`` and no ``drqueue`` package, so the add-on carries this small
client of its own; it imports nothing of Blender either, so plain Python tests it against a
real master (tests/unit/test_blender_addon_farm.py).  What it does:

* :func:`job_body` turns the scene's settings into the body of ``POST /api/v1/jobs`` (the
  rules of the body are the master's: ``drqueue.models.JobIn``, docs/api.md);
* :func:`submit_job` sends it with an ``Idempotency-Key``, again with the same key when no
  answer came (the master then answers the job it made, so a submit is never made twice);
* :func:`get_job` reads ``GET /api/v1/jobs/ID`` for the panel's Watch area, and
  :func:`job_progress` says in one line how far the job is.

Every failure is a :class:`FarmError` carrying one line to show the artist: the master's own
``detail`` for its errors (``{"detail": ..., "error": ...}``), or what stopped the request.
Defaults: :data:`TIMEOUT` seconds per request, :data:`SUBMIT_ATTEMPTS` attempts.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The master never redirects: a redirect (a proxy, a hostile server) is an error, so the
    token is never sent on to another address (urllib's default keeps the header)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, PLR0913
        raise urllib.error.HTTPError(
            req.full_url, code, f"the master answered a redirect to {newurl}", headers, fp
        )


_OPENER = urllib.request.build_opener(_NoRedirects)

#: Seconds a request may take, connecting and reading (a busy master may take seconds); the
#: Submit button waits at most about SUBMIT_ATTEMPTS times this when no answer comes at all.
TIMEOUT = 10.0
#: How many times a submit is sent (with the same Idempotency-Key) when no answer came.
SUBMIT_ATTEMPTS = 3
#: The master a blank URL means: DRQUEUE_MASTER, else a master on this machine.
DEFAULT_MASTER = "http://127.0.0.1:7680"
#: Blender's image formats (``image_settings.file_format``) by the name ``blender -F`` takes,
#: where the two differ; the others are the same in both.
FORMAT_NAMES = {"TARGA": "TGA", "TARGA_RAW": "RAWTGA", "JPEG2000": "JP2"}
#: Movie formats: a farm renders one file per frame, and a movie cannot be cut into blocks.
MOVIE_FORMATS = ("FFMPEG", "AVI_JPEG", "AVI_RAW")
#: The notify events a job may ask for (the job's ``notify: {"on": [...]}``), in this order.
NOTIFY_EVENTS = ("finished", "error", "first-frame")
#: Job states after which nothing more happens without a person.
END_STATES = ("finished", "error", "cancelled")


class FarmError(Exception):
    """A request the master refused or could not answer; ``str()`` is one line for the artist.

    ``answered`` is False when no answer came (unreachable, timed out, busy): the submit may
    have been made, so a retry must send the same Idempotency-Key."""

    def __init__(self, message: str, *, status: int | None = None, answered: bool = True):
        super().__init__(message)
        self.status = status
        self.answered = answered


@dataclass
class JobSettings:
    """What the DrQueue panel and the scene say about the job to submit."""

    blend_file: str
    scene_name: str
    start: int
    end: int
    step: int
    output: str
    file_format: str
    block_size: int = 1
    priority: int = 50
    pool: str = ""
    notify_on: list[str] = field(default_factory=list)
    name: str = ""
    owner: str = ""


def master_url(configured: str) -> str:
    """The master to talk to: the add-on's setting, else DRQUEUE_MASTER, else this machine."""
    url = (configured or os.environ.get("DRQUEUE_MASTER") or DEFAULT_MASTER).strip()
    return url.rstrip("/")


def api_token(configured: str) -> str:
    """The token to send: the add-on's setting, else DRQUEUE_TOKEN."""
    return (configured or os.environ.get("DRQUEUE_TOKEN") or "").strip()


def render_format(file_format: str) -> str:
    """The ``format`` param of the blender renderer for Blender's *file_format*; a movie
    format is refused, since every frame must be a file of its own."""
    if file_format in MOVIE_FORMATS:
        raise FarmError(
            f"the output format is the movie format {file_format}: a farm renders one image "
            "per frame, so choose an image format in Output Properties → Output"
        )
    return FORMAT_NAMES.get(file_format, file_format)


def job_body(settings: JobSettings) -> dict[str, Any]:
    """The body of ``POST /api/v1/jobs`` that renders *settings* with the blender renderer."""
    if not settings.output.strip():
        raise FarmError(
            "the scene has no output path: set one in Output Properties → Output "
            "(e.g. //render/frame_####), the farm writes the frames there"
        )
    unknown = [event for event in settings.notify_on if event not in NOTIFY_EVENTS]
    if unknown:
        raise FarmError(f"unknown notify event {unknown[0]!r}: one of {', '.join(NOTIFY_EVENTS)}")
    body: dict[str, Any] = {
        "renderer": "blender",
        "scene": settings.blend_file,
        "start": settings.start,
        "end": settings.end,
        "step": settings.step,
        "block_size": settings.block_size,
        "priority": settings.priority,
        "name": settings.name,
        "owner": settings.owner,
        "params": {
            "output": settings.output,
            "format": render_format(settings.file_format),
            "scene_name": settings.scene_name,
        },
    }
    if settings.pool.strip():
        body["requirements"] = {"pools": [settings.pool.strip()]}
    if settings.notify_on:
        # Sent only when asked for: a master without notifications may refuse the field.
        body["notify"] = {"on": [event for event in NOTIFY_EVENTS if event in settings.notify_on]}
    return body


class PendingSubmits:
    """The Idempotency-Key of each submit that got no answer, by what it submitted.

    Pressing Submit again with the same job after "master unreachable" sends the same key,
    so if the first submit did reach the master, the master answers with that job instead
    of making a second one.  A submit that was answered (made, or refused) forgets its key:
    the next press is a new job."""

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}

    @staticmethod
    def _fingerprint(master: str, body: dict[str, Any]) -> str:
        text = json.dumps([master, body], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def key(self, master: str, body: dict[str, Any]) -> str:
        """The key to send: the unanswered submit's key for this body, else a new one."""
        return self._keys.get(self._fingerprint(master, body)) or secrets.token_urlsafe(24)

    def unanswered(self, master: str, body: dict[str, Any], key: str) -> None:
        self._keys[self._fingerprint(master, body)] = key

    def answered(self, master: str, body: dict[str, Any]) -> None:
        self._keys.pop(self._fingerprint(master, body), None)


def submit_job(
    master: str,
    token: str,
    body: dict[str, Any],
    *,
    key: str,
    timeout: float = TIMEOUT,
    attempts: int = SUBMIT_ATTEMPTS,
) -> dict[str, Any]:
    """``POST /api/v1/jobs``: the master's ``{"id", "tasks"}``.  Sent again with the same
    *key*, up to *attempts* times, while no answer comes or the master is busy (503)."""
    for attempt in range(1, attempts + 1):
        try:
            return _request("POST", master, "/jobs", token, body, {"Idempotency-Key": key}, timeout)
        except FarmError as exc:
            if (exc.answered and exc.status != 503) or attempt == attempts:
                raise
            time.sleep(min(2.0, 0.5 * attempt))
    raise AssertionError("unreachable")


def get_job(master: str, token: str, job_id: int, *, timeout: float = TIMEOUT) -> dict[str, Any]:
    """``GET /api/v1/jobs/ID``: the job as the master shows it."""
    return _request("GET", master, f"/jobs/{int(job_id)}", token, None, {}, timeout)


def job_progress(job: dict[str, Any]) -> tuple[float, str]:
    """How far *job* is, 0 to 1, and one line for the panel: ``running: 2/4 tasks done``."""
    counts = job.get("counts") or {}
    total = counts.get("total") or 0
    done = counts.get("finished") or 0
    parts = [f"{done}/{total} tasks done"]
    for state in ("running", "error"):
        if counts.get(state):
            parts.append(f"{counts[state]} {state}")
    line = f"{job.get('status', '?')}: {', '.join(parts)}"
    if job.get("waiting_reason") and job.get("status") not in END_STATES:
        line += f" ({job['waiting_reason']})"
    return (done / total if total else 0.0), line


def _request(
    method: str,
    master: str,
    path: str,
    token: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    timeout: float,
) -> dict[str, Any]:
    if not token:
        raise FarmError(
            "no DrQueue token: set one in Preferences → Add-ons → DrQueue Submit "
            "(made on the master with `drqueue token create --role artist --owner NAME`)"
        )
    url = f"{master}/api/v1{path}"
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            **({} if body is None else {"Content-Type": "application/json"}),
            **headers,
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            return json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise _refusal(exc) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # URLError: refused, unknown host, TLS; OSError: a time-out or a dropped connection;
        # ValueError: a URL urllib cannot use, or an answer that is not JSON.
        reason = getattr(exc, "reason", None) or exc
        raise FarmError(
            f"cannot reach the DrQueue master at {master}: {reason}", answered=False
        ) from None


def _refusal(exc: urllib.error.HTTPError) -> FarmError:
    """The master's one-line ``detail`` of an error answer (a proxy's page gives its status)."""
    try:
        detail = str(json.loads(exc.read()).get("detail") or "")
    except (ValueError, AttributeError, OSError):
        detail = ""
    detail = " ".join(detail.split()) or f"HTTP {exc.code} {exc.reason}"
    if exc.code == 401:
        detail += " (the DrQueue token is set in Preferences → Add-ons → DrQueue Submit)"
    return FarmError(detail, status=exc.code, answered=exc.code != 503)
