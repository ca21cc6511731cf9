"""``drqueue.Client``: the Python API to a master, and the CLI's only way to reach it.

    >>> import drqueue
    >>> farm = drqueue.Client()                     # DRQUEUE_MASTER / DRQUEUE_TOKEN, or the local master
    >>> job = farm.submit("blender", "/proj/shot.blend", start=1, end=250, block_size=5)
    >>> farm.job(job["id"])["status"]

Every method returns plain JSON data (dicts and lists) as the HTTP API
documents it; errors raise the DrQueueError the master named.
"""

from __future__ import annotations

import getpass
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from drqueue import errors
from drqueue.config import Config, load_config

#: Times Client.submit sends a submit that got no answer (the same Idempotency-Key each time).
SUBMIT_ATTEMPTS = 4
#: Tasks one GET asks for: the API's largest page (drqueue.master.api.MAX_PAGE).
TASKS_PAGE = 10_000
#: Bytes of a log asked for at a time (the master's most, api.LOG_CHUNK_BYTES).
LOG_PAGE_BYTES = 1 << 20


def _segment(name: str) -> str:
    """*name* as one URL path segment, so that it reaches the API as typed.

    Every character but letters, digits and ``_.-~`` is percent-encoded, so ``?``, ``#``, ``%``
    and spaces stay in the name ('gpu?old' is not the pool 'gpu' with a query).  '.' and '..'
    are encoded too, as URL normalization would remove them as segments.  '/' is refused: the
    server decodes ``%2F`` before routing, so it would split the name, and names never hold it.
    """
    text = str(name)
    if "/" in text:
        raise errors.NotFound(f"no such name {text!r}: names never hold '/'")
    if text in (".", ".."):
        return text.replace(".", "%2E")
    return quote(text, safe="")


class Client:
    """A connection to one master's HTTP API."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        config: Config | None = None,
        timeout: float = 30.0,
    ):
        config = config or load_config()
        self.url = (url or config.master_url).rstrip("/")
        self.token = token if token is not None else config.api_token()
        verify: Any = True
        if self.url.startswith("https://") and config.tls_cert:
            verify = config.tls_cert
        self._http = httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"} if self.token else {},
            timeout=timeout,
            verify=verify,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer to one request; an error answer raises its named DrQueueError."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise errors.MasterUnreachable(
                f"cannot reach the master at {self.url} ({type(exc).__name__}): is `drqueue master` "
                "running, and DRQUEUE_MASTER right?"
            ) from None
        if response.status_code >= 400:
            try:
                body = response.json()
                detail, name = body.get("detail", response.text), body.get("error", "")
            except ValueError:
                detail, name = response.text.strip()[:300], ""
            if response.status_code == 401:
                raise errors.AuthError(str(detail))
            cls = getattr(errors, name, None)
            if not (isinstance(cls, type) and issubclass(cls, errors.DrQueueError)):
                cls = {403: errors.Forbidden, 404: errors.NotFound, 409: errors.Conflict}.get(
                    response.status_code, errors.DrQueueError
                )
            raise cls(str(detail))
        return response

    # -- jobs ----------------------------------------------------------------------------------

    def submit(
        self,
        renderer: str,
        scene: str | None = None,
        *,
        start: int,
        end: int,
        attempts: int = SUBMIT_ATTEMPTS,
        **options: Any,
    ) -> dict[str, Any]:
        """Submit a job; options are the fields of models.JobIn (step, block_size, ...).

        *owner* defaults to the user running this (as the CLI does).  The submit carries a
        random Idempotency-Key, and is sent again with the same key, up to *attempts* times,
        when the master could not be reached, timed out or was busy: the master creates the
        job once, and answers a repeated key with the job it made.
        """
        if not options.get("owner"):
            options["owner"] = getpass.getuser()
        body = {"renderer": renderer, "scene": scene, "start": start, "end": end, **options}
        headers = {"Idempotency-Key": secrets.token_urlsafe(24)}
        for attempt in range(1, attempts + 1):
            try:
                return self._request("POST", "/jobs", json=body, headers=headers)
            except (errors.MasterUnreachable, errors.StoreBusy):
                if attempt == attempts:
                    raise
                time.sleep(min(2.0, 0.25 * 2**attempt))
        raise AssertionError("unreachable")

    def jobs(self, owner: str | None = None) -> list[dict[str, Any]]:
        return self._request("GET", "/jobs", params={"owner": owner} if owner else None)

    def job(self, job_id: int) -> dict[str, Any]:
        return self._request("GET", f"/jobs/{int(job_id)}")

    def job_action(self, job_id: int, action: str) -> dict[str, Any]:
        """stop, continue, kill, rerun or requeue-failed."""
        return self._request("POST", f"/jobs/{int(job_id)}/{_segment(action)}")

    def delete_job(self, job_id: int, force: bool = False) -> dict[str, Any]:
        return self._request("DELETE", f"/jobs/{int(job_id)}", params={"force": force})

    def set_priority(self, job_id: int, priority: int) -> dict[str, Any]:
        return self._request("PUT", f"/jobs/{int(job_id)}/priority", json={"priority": priority})

    def unblock(self, job_id: int, host: str) -> dict[str, Any]:
        return self._request("POST", f"/jobs/{int(job_id)}/unblock", json={"host": host})

    def tasks(
        self, job_id: int, *, state: str | None = None, offset: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The job's tasks by index; *state* keeps one state, *offset*/*limit* take a page.

        With no *limit*, every task from *offset* on, read a page (the API's most) at a time."""
        params: dict[str, Any] = {"offset": offset}
        if state is not None:
            params["state"] = state
        if limit is not None:
            params["limit"] = limit
            return self._request("GET", f"/jobs/{int(job_id)}/tasks", params=params)
        params["limit"] = TASKS_PAGE
        found: list[dict[str, Any]] = []
        while True:
            page = self._request("GET", f"/jobs/{int(job_id)}/tasks", params=params)
            found += page
            if len(page) < TASKS_PAGE:
                return found
            params["offset"] += len(page)

    def task_action(self, job_id: int, index: int, action: str) -> dict[str, Any]:
        """requeue or kill one task."""
        return self._request("POST", f"/jobs/{int(job_id)}/tasks/{int(index)}/{_segment(action)}")

    def log(self, job_id: int, frame: int) -> str:
        """The whole log of the task that rendered *frame* (see log_chunks for a big one)."""
        return b"".join(self.log_chunks(job_id, frame)).decode("utf-8", "replace")

    def log_chunks(self, job_id: int, frame: int, *, offset: int = 0) -> Iterator[bytes]:
        """The log of the task that rendered *frame*, from byte *offset*, in the pieces of at
        most LOG_PAGE_BYTES the master serves (it never sends a log whole)."""
        while True:
            response = self._send(
                "GET",
                f"/jobs/{int(job_id)}/log",
                params={"frame": frame, "offset": offset, "limit": LOG_PAGE_BYTES},
            )
            chunk = response.content
            if chunk:
                yield chunk
            offset += len(chunk)
            if len(chunk) < LOG_PAGE_BYTES:
                return

    def events(
        self,
        job_id: int | None = None,
        *,
        since: int = 0,
        before: int | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """The newest *limit* events with since < id < before (of one job if given), oldest first.

        To read a whole trail, page back: ``before=`` the first id of the previous page, until
        a page comes back shorter than *limit* (which :meth:`all_events` does)."""
        params: dict[str, int] = {"since": since, "limit": limit}
        if before is not None:
            params["before"] = before
        path = f"/jobs/{int(job_id)}/events" if job_id is not None else "/events"
        return self._request("GET", path, params=params)

    def all_events(
        self, job_id: int | None = None, *, since: int = 0, page: int = 1000
    ) -> list[dict[str, Any]]:
        """Every event with id > since (of one job if given), oldest first, read *page* at a time."""
        pages: list[list[dict[str, Any]]] = []
        before = None
        while True:
            pages.append(self.events(job_id, since=since, before=before, limit=page))
            if len(pages[-1]) < page:
                return [event for chunk in reversed(pages) for event in chunk]
            before = pages[-1][0]["id"]

    # -- farm ------------------------------------------------------------------------------------

    def login_link(self) -> dict[str, Any]:
        """A one-time link that logs a browser in to the web UI as the master's admin:
        {"url", "expires_in"} (an admin token's right; the link works once, for 10 minutes)."""
        return self._request("POST", "/session/link")

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health")

    def farm(self) -> dict[str, Any]:
        return self._request("GET", "/farm")

    def computers(self) -> list[dict[str, Any]]:
        return self._request("GET", "/computers")

    def computer(self, name: str) -> dict[str, Any]:
        return self._request("GET", f"/computers/{_segment(name)}")

    def computer_action(self, name: str, action: str) -> dict[str, Any]:
        return self._request("POST", f"/computers/{_segment(name)}/{_segment(action)}")

    def computer_limit(self, name: str, max_tasks: int | None) -> dict[str, Any]:
        return self._request(
            "PUT", f"/computers/{_segment(name)}/limit", json={"max_tasks": max_tasks}
        )

    def pools(self) -> list[dict[str, Any]]:
        return self._request("GET", "/pools")

    def create_pool(self, name: str, description: str = "") -> dict[str, Any]:
        return self._request("POST", "/pools", json={"name": name, "description": description})

    def delete_pool(self, name: str) -> dict[str, Any]:
        return self._request("DELETE", f"/pools/{_segment(name)}")

    def pool_member(self, pool: str, computer: str, member: bool) -> dict[str, Any]:
        if member:
            return self._request(
                "POST", f"/pools/{_segment(pool)}/members", json={"computer": computer}
            )
        return self._request("DELETE", f"/pools/{_segment(pool)}/members/{_segment(computer)}")

    def renderers(self) -> list[dict[str, Any]]:
        return self._request("GET", "/renderers")

    def heartbeat(self, slave: str, engines: list[str]) -> dict[str, Any]:
        return self._request(
            "POST", f"/slaves/{_segment(slave)}/heartbeat", json={"engines": engines}
        )

    def engine_connection(self) -> dict[str, Any]:
        return self._request("GET", "/farm/engine-connection")
