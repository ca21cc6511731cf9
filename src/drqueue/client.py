"""``drqueue.Client``: the Python API to a master, and the CLI's only way to reach it.

    >>> import drqueue
    >>> farm = drqueue.Client()                     # DRQUEUE_MASTER / DRQUEUE_TOKEN, or the local master
    >>> job = farm.submit("blender", "/proj/shot.blend", start=1, end=250, block_size=5)
    >>> farm.wait(job).status                       # a progress bar in a terminal
    'finished'

Every method answers the typed objects of :mod:`drqueue.api_types` (``Job``, ``Task``,
``Computer``, ``Pool``, ``Event``...), each with the JSON it was read from as ``.raw``; an
error answer raises the :mod:`drqueue.errors` class the master named (``JobNotFound``,
``Forbidden``, ``InvalidJob``...), any 401 ``Unauthorized``, and no answer at all
``MasterUnreachable``.  The token is sent in a header and never appears in an error or a repr.
"""

from __future__ import annotations

import getpass
import json
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx

from drqueue import errors
from drqueue.api_types import (
    APIObject,
    Computer,
    Deleted,
    Event,
    FarmCounters,
    FrameGrid,
    Health,
    HeartbeatAnswer,
    Job,
    LoginLink,
    Pool,
    PoolCreated,
    PoolMember,
    Preview,
    RendererInfo,
    Submitted,
    Task,
)
from drqueue.config import Config, load_config
from drqueue.models import JobIn, JobSpec, parse_job
from drqueue.waiting import stalled_by, terminal_console, wait_for_end

#: Times Client.submit sends a submit that got no answer (the same Idempotency-Key each time).
SUBMIT_ATTEMPTS = 4
#: Jobs Client.job_page asks for by default, and the most a page holds
#: (drqueue.master.api.jobs.JOBS_PAGE_MAX).
JOBS_PAGE = 100
JOBS_PAGE_MAX = 500
#: A job's statuses (drqueue.store.jobquery.STATUSES), the values of job_page's *state*.
JOB_STATUSES = (
    "queued",
    "running",
    "waiting",
    "stopping",
    "stopped",
    "finished",
    "error",
    "cancelled",
)
#: Tasks one GET asks for: the API's largest page (drqueue.master.api.MAX_PAGE).
TASKS_PAGE = 10_000
#: Bytes of a log asked for at a time (the master's most, api.LOG_CHUNK_BYTES).
LOG_PAGE_BYTES = 1 << 20
#: Seconds between two attempts to reopen a broken live stream (its own ``retry:``).
RECONNECT_SECONDS = 2.0
#: Seconds Client.watch keeps reopening the stream of a master that is gone, by default.
WATCH_RECONNECT_SECONDS = 60.0
#: Seconds of silence after which the live stream is taken as broken (it sends a farm message
#: every 2 s and a keep-alive after 15 s without one).
STREAM_SILENCE_SECONDS = 45.0
#: The error raised for an error answer whose ``error`` names no class of drqueue.errors
#: (an older master, or a proxy in front of it), by its status.
ERROR_BY_STATUS: dict[int, type[errors.DrQueueError]] = {
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.RequestTooLarge,
    422: errors.InvalidRequest,
    503: errors.StoreBusy,
}


class JobPage(NamedTuple):
    """One page of jobs (:meth:`Client.job_page`) and how many jobs matched in all."""

    jobs: list[Job]
    total: int


class LogChunk(NamedTuple):
    """A piece of a task's log: its bytes, where it starts, and the whole log's size."""

    data: bytes
    offset: int
    size: int


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


def sse_messages(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Server-sent events as (event, data): ("open", {}) first, then each message whose data
    is a JSON object.  Comments (the keep-alives) and ``retry:`` lines are skipped."""
    yield "open", {}
    kind, data = "message", []
    for line in lines:
        if not line:
            payload = _json_object("\n".join(data)) if data else None
            if payload is not None:
                yield kind, payload
            kind, data = "message", []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            kind = value
        elif field == "data":
            data.append(value)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _worth_a_look(kind: str, data: dict[str, Any], last: int, job: int | None) -> bool:
    """Whether a live-stream message may mean events after *last* (of *job*, if one):
    a new event of the job, the stream opened (what happened while it was not), or the
    periodic farm message (an event the stream's first tick did not send)."""
    if kind == "log":
        return data.get("id", 0) > last and (job is None or data.get("job_id") == job)
    return kind in ("open", "farm")


def id_of(job: int | Job | Submitted) -> int:
    """The id of *job*: a job's id, or a Job or a submit's answer."""
    return int(job.id if isinstance(job, APIObject) else job)


def error_for(status: int, body: Any, text: str) -> errors.DrQueueError:
    """The DrQueueError an error answer stands for: any 401 is Unauthorized; otherwise the class
    its JSON ``error`` names, if drqueue.errors has it, else the class of its status."""
    detail, name = text.strip()[:300], ""
    if isinstance(body, dict):
        detail, name = str(body.get("detail", detail)), str(body.get("error", ""))
    cls = getattr(errors, name, None) if name.isidentifier() else None
    if status == 401 or not (isinstance(cls, type) and issubclass(cls, errors.DrQueueError)):
        cls = ERROR_BY_STATUS.get(status, errors.DrQueueError)
    return cls(detail)


def job_body(spec: str | JobSpec | JobIn | None, scene: str | None, fields: dict[str, Any]) -> dict:
    """The body of POST /jobs from what :meth:`Client.submit` was given: a renderer's name and
    fields, or a JobSpec (or JobIn) and fields that add to it.  *owner* defaults to the user
    running this, as the CLI's does."""
    if isinstance(spec, JobSpec):
        body = spec.to_body()
    elif isinstance(spec, JobIn):
        body = spec.model_dump(exclude_unset=True)
    else:
        body = {"renderer": spec} if spec is not None else {}
    if scene is not None:
        body["scene"] = scene
    body.update(fields)
    if not body.get("owner"):
        body["owner"] = getpass.getuser()
    return body


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

    def __repr__(self) -> str:
        return f"Client({self.url!r})"  # never the token

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
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise error_for(response.status_code, _json_or_none(response), response.text)
        return response

    def _unreachable(self, exc: Exception) -> errors.MasterUnreachable:
        return errors.MasterUnreachable(
            f"cannot reach the master at {self.url} ({type(exc).__name__}): is `drqueue master` "
            "running, and DRQUEUE_MASTER right?"
        )

    # -- jobs ----------------------------------------------------------------------------------

    def submit(
        self,
        spec: str | JobSpec | JobIn | None = None,
        scene: str | None = None,
        *,
        attempts: int = SUBMIT_ATTEMPTS,
        **fields: Any,
    ) -> Submitted:
        """Submit a job: a renderer's name and the fields of models.JobIn as keywords
        (``submit("shell", start=1, end=10, params={"cmd": "echo {frame}"})``), or a JobSpec,
        whose fields the keywords add to or replace.

        The fields are checked here first, by the API's own rule (models.parse_job): a wrong
        one raises InvalidJob with the message the master would answer, before any request.
        *owner* defaults to the user running this.  The submit carries a random
        Idempotency-Key, and is sent again with the same key, up to *attempts* times, when the
        master could not be reached, timed out or was busy: the master creates the job once,
        and answers a repeated key with the job it made.
        """
        body = job_body(spec, scene, fields)
        parse_job(body)
        headers = {"Idempotency-Key": secrets.token_urlsafe(24)}
        for attempt in range(1, attempts + 1):
            try:
                answer = self._request("POST", "/jobs", json=body, headers=headers)
                return Submitted.from_json(answer)
            except (errors.MasterUnreachable, errors.StoreBusy):
                if attempt == attempts:
                    raise
                time.sleep(min(2.0, 0.25 * 2**attempt))
        raise AssertionError("unreachable")

    def wait(
        self, job_id: int | Job | Submitted, *, progress: bool = True, interval: float = 0.5
    ) -> Job:
        """Wait until the job ends and answer it as it ended: finished, error, cancelled,
        stopped, or waiting for a dependency that cannot finish by itself (deleted, ended in
        error, stopped: :meth:`stalled_by` says which).  With *progress*, a rich progress bar
        shows on the terminal (stderr, else stdout); a script whose output is not a terminal
        gets none.  drqueue.waiting is the loop, the same as `drqueue submit --wait`'s."""
        console = terminal_console() if progress else None
        return wait_for_end(self, id_of(job_id), console=console, interval=interval).job

    def stalled_by(self, job_id: int | Job | Submitted) -> str | None:
        """Why a waiting job cannot go on by itself (``waiting for job 7 (stopped: continue it
        to go on)``), or None."""
        return stalled_by(self, job_id if isinstance(job_id, Job) else self.job(job_id))

    def watch(
        self,
        job_id: int | Job | Submitted | None = None,
        *,
        since: int | None = None,
        reconnect_for: float = WATCH_RECONNECT_SECONDS,
    ) -> Iterator[Event]:
        """The farm's events (of one *job* if given) as they happen, oldest first, for ever:
        break out of the loop when you have seen what you wait for.

        It starts after the newest event (after the event id *since*, if given).  It listens
        to the master's live stream (GET /stream) to know *when* to look, and reads the events
        themselves from GET /events since the last id it gave, so none is lost or repeated: not
        in a burst larger than the stream sends at once, not when the stream breaks.  A broken
        stream (the master restarted) is reopened every RECONNECT_SECONDS; MasterUnreachable
        after *reconnect_for* seconds without the master."""
        wanted = id_of(job_id) if job_id is not None else None
        # Read now, not at the first next(): the events start after this call.
        last = since if since is not None else self._newest_event_id(wanted)
        return self._events_after(last, wanted, reconnect_for)

    def _events_after(self, last: int, wanted: int | None, reconnect_for: float) -> Iterator[Event]:
        down_since: float | None = None
        while True:
            try:
                with self._live_stream() as messages:
                    down_since = None
                    for kind, data in messages:
                        if not _worth_a_look(kind, data, last, wanted):
                            continue
                        for event in self.all_events(wanted, since=last):
                            last = event.id
                            yield event
            except (errors.MasterUnreachable, errors.StoreBusy):
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > reconnect_for:
                    raise
            time.sleep(RECONNECT_SECONDS)

    def _newest_event_id(self, job: int | None) -> int:
        newest = self.events(job, limit=1)
        return newest[-1].id if newest else 0

    @contextmanager
    def _live_stream(self) -> Iterator[Iterator[tuple[str, dict[str, Any]]]]:
        """The live stream's messages as (event, data), the first ("open", {}) once it is
        open; MasterUnreachable when it cannot be opened, or breaks while it is read."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=STREAM_SILENCE_SECONDS)
        try:
            with self._http.stream("GET", "/stream", timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_for(response.status_code, _json_or_none(response), response.text)
                yield sse_messages(response.iter_lines())
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def jobs(self, owner: str | None = None) -> list[Job]:
        """The newest jobs (10,000 at most), oldest first; each without env and params."""
        data = self._request("GET", "/jobs", params={"owner": owner} if owner else None)
        return Job.list_from_json(data)

    def job_page(
        self,
        *,
        active: bool = False,
        state: str | None = None,
        owner: str | None = None,
        offset: int = 0,
        limit: int = JOBS_PAGE,
        sort: str = "id",
        descending: bool = True,
    ) -> JobPage:
        """One page of jobs, filtered and sorted by the master (newest first by default):
        *active* keeps the jobs that have not ended (queued, waiting, running, stopping,
        stopped), *state* one status, *owner* one owner's; *limit* at most the API's page
        (500).  Each job is as :meth:`jobs` lists it; ``total`` is how many matched."""
        params: dict[str, Any] = {
            "offset": offset,
            "limit": limit,
            "sort": sort,
            "order": "desc" if descending else "asc",
        }
        if active:
            params["active"] = "true"
        if state is not None:
            params["state"] = state
        if owner is not None:
            params["owner"] = owner
        response = self._send("GET", "/jobs", params=params)
        total = int(response.headers.get("x-total-count", 0))
        return JobPage(Job.list_from_json(response.json()), total)

    def job(self, job_id: int | Job | Submitted) -> Job:
        """One job, env and params included; JobNotFound if there is none."""
        return Job.from_json(self._request("GET", f"/jobs/{id_of(job_id)}"))

    def job_action(self, job_id: int | Job | Submitted, action: str) -> Job:
        """stop, continue, kill, rerun or requeue-failed; the job after it."""
        return Job.from_json(self._request("POST", f"/jobs/{id_of(job_id)}/{_segment(action)}"))

    def stop(self, job_id: int | Job | Submitted) -> Job:
        """No new tasks; the running ones finish."""
        return self.job_action(job_id, "stop")

    def kill(self, job_id: int | Job | Submitted) -> Job:
        """Stop the job and kill its running tasks (they go back to the queue)."""
        return self.job_action(job_id, "kill")

    def delete_job(self, job_id: int | Job | Submitted, force: bool = False) -> Deleted:
        answer = self._request("DELETE", f"/jobs/{id_of(job_id)}", params={"force": force})
        return Deleted.from_json(answer)

    def set_priority(self, job_id: int | Job | Submitted, priority: int) -> Job:
        answer = self._request(
            "PUT", f"/jobs/{id_of(job_id)}/priority", json={"priority": priority}
        )
        return Job.from_json(answer)

    def unblock(self, job_id: int | Job | Submitted, host: str) -> Job:
        answer = self._request("POST", f"/jobs/{id_of(job_id)}/unblock", json={"host": host})
        return Job.from_json(answer)

    def tasks(
        self,
        job_id: int | Job | Submitted,
        *,
        state: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Task]:
        """The job's tasks by index; *state* keeps one state, *offset*/*limit* take a page.

        With no *limit*, every task from *offset* on, read a page (the API's most) at a time."""
        path = f"/jobs/{id_of(job_id)}/tasks"
        params: dict[str, Any] = {"offset": offset}
        if state is not None:
            params["state"] = state
        if limit is not None:
            params["limit"] = limit
            return Task.list_from_json(self._request("GET", path, params=params))
        params["limit"] = TASKS_PAGE
        found: list[Task] = []
        while True:
            page = Task.list_from_json(self._request("GET", path, params=params))
            found += page
            if len(page) < TASKS_PAGE:
                return found
            params["offset"] += len(page)

    def task_action(self, job_id: int | Job | Submitted, index: int, action: str) -> Task:
        """requeue or kill one task; the task after it."""
        path = f"/jobs/{id_of(job_id)}/tasks/{int(index)}/{_segment(action)}"
        return Task.from_json(self._request("POST", path))

    def log(self, job_id: int | Job | Submitted, frame: int) -> str:
        """The whole log of the task that rendered *frame* (see log_chunks for a big one)."""
        return b"".join(self.log_chunks(job_id, frame)).decode("utf-8", "replace")

    def log_chunks(
        self, job_id: int | Job | Submitted, frame: int, *, offset: int = 0
    ) -> Iterator[bytes]:
        """The log of the task that rendered *frame*, from byte *offset*, in the pieces of at
        most LOG_PAGE_BYTES the master serves (it never sends a log whole)."""
        while True:
            response = self._send(
                "GET",
                f"/jobs/{id_of(job_id)}/log",
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
        job_id: int | Job | Submitted | None = None,
        *,
        since: int = 0,
        before: int | None = None,
        limit: int = 200,
        kind: str | None = None,
        actor: str | None = None,
    ) -> list[Event]:
        """The newest *limit* events with since < id < before (of one job if given), oldest first;
        *kind* keeps one kind (``task.failed``) or family (``email``), *actor* what one user did.

        To read a whole trail, page back: ``before=`` the first id of the previous page, until
        a page comes back shorter than *limit* (which :meth:`all_events` does)."""
        params: dict[str, int | str] = {"since": since, "limit": limit}
        if before is not None:
            params["before"] = before
        if kind:
            params["kind"] = kind
        if actor:
            params["actor"] = actor
        path = f"/jobs/{id_of(job_id)}/events" if job_id is not None else "/events"
        return Event.list_from_json(self._request("GET", path, params=params))

    def all_events(
        self, job_id: int | Job | Submitted | None = None, *, since: int = 0, page: int = 1000
    ) -> list[Event]:
        """Every event with id > since (of one job if given), oldest first, read *page* at a time."""
        pages: list[list[Event]] = []
        before = None
        while True:
            pages.append(self.events(job_id, since=since, before=before, limit=page))
            if len(pages[-1]) < page:
                return [event for chunk in reversed(pages) for event in chunk]
            before = pages[-1][0].id

    # -- farm ------------------------------------------------------------------------------------

    def login_link(self) -> LoginLink:
        """A one-time link that logs a browser in to the web UI as the master's admin
        (an admin token's right; the link works once, for 10 minutes)."""
        return LoginLink.from_json(self._request("POST", "/session/link"))

    def health(self) -> Health:
        return Health.from_json(self._request("GET", "/health"))

    def farm(self) -> FarmCounters:
        return FarmCounters.from_json(self._request("GET", "/farm"))

    def computers(self) -> list[Computer]:
        return Computer.list_from_json(self._request("GET", "/computers"))

    def computer(self, name: str) -> Computer:
        return Computer.from_json(self._request("GET", f"/computers/{_segment(name)}"))

    def computer_action(self, name: str, action: str) -> Computer:
        """enable or disable a computer; the computer after it."""
        path = f"/computers/{_segment(name)}/{_segment(action)}"
        return Computer.from_json(self._request("POST", path))

    def computer_limit(self, name: str, max_tasks: int | None) -> Computer:
        path = f"/computers/{_segment(name)}/limit"
        return Computer.from_json(self._request("PUT", path, json={"max_tasks": max_tasks}))

    def pools(self) -> list[Pool]:
        return Pool.list_from_json(self._request("GET", "/pools"))

    def create_pool(self, name: str, description: str = "") -> PoolCreated:
        body = {"name": name, "description": description}
        return PoolCreated.from_json(self._request("POST", "/pools", json=body))

    def delete_pool(self, name: str) -> Deleted:
        return Deleted.from_json(self._request("DELETE", f"/pools/{_segment(name)}"))

    def pool_member(self, pool: str, computer: str, member: bool) -> PoolMember:
        if member:
            path, body = f"/pools/{_segment(pool)}/members", {"computer": computer}
            return PoolMember.from_json(self._request("POST", path, json=body))
        path = f"/pools/{_segment(pool)}/members/{_segment(computer)}"
        return PoolMember.from_json(self._request("DELETE", path))

    def renderers(self) -> list[RendererInfo]:
        return RendererInfo.list_from_json(self._request("GET", "/renderers"))

    def heartbeat(self, slave: str, engines: list[str]) -> HeartbeatAnswer:
        path = f"/slaves/{_segment(slave)}/heartbeat"
        return HeartbeatAnswer.from_json(self._request("POST", path, json={"engines": engines}))

    def engine_connection(self) -> dict[str, Any]:
        """The controller's engine connection file, as ipyparallel wrote it (a slave's)."""
        return self._request("GET", "/farm/engine-connection")

    # -- what the desktop GUI (drqueue.gui) reads besides -----------------------------------------

    def task(self, job_id: int | Job | Submitted, index: int) -> Task:
        """One task of the job, by its index."""
        return Task.from_json(self._request("GET", f"/jobs/{id_of(job_id)}/tasks/{int(index)}"))

    def frames(self, job_id: int | Job | Submitted) -> FrameGrid:
        """The job's frame grid: one letter per task by index (FrameGrid says which)."""
        return FrameGrid.from_json(self._request("GET", f"/jobs/{id_of(job_id)}/frames"))

    def log_chunk(
        self,
        job_id: int | Job | Submitted,
        index: int,
        *,
        offset: int | None = None,
        limit: int = LOG_PAGE_BYTES,
    ) -> LogChunk:
        """One chunk of the log of task *index*: *limit* bytes from *offset*, or without one
        the last *limit* bytes.  A live tail asks again from offset + len(data)."""
        params: dict[str, int] = {"task": int(index), "limit": limit}
        if offset is not None:
            params["offset"] = offset
        response = self._send("GET", f"/jobs/{id_of(job_id)}/log", params=params)
        start = int(response.headers.get("X-Log-Offset", 0))
        return LogChunk(response.content, start, int(response.headers.get("X-Log-Size", 0)))

    def thumbnail(self, job_id: int | Job | Submitted, index: int | None = None) -> bytes:
        """A JPEG (at most 480 px) of the job's last rendered frame, or of task *index*'s;
        NotFound when it has none."""
        params = {"task": int(index)} if index is not None else None
        return self._send("GET", f"/jobs/{id_of(job_id)}/thumbnail", params=params).content

    def preview(self, body: dict[str, Any]) -> Preview:
        """What submitting *body* (the JSON of POST /jobs) would make, checked by the master as
        a submit is, with nothing stored: InvalidJob (or InvalidRequest) with its message."""
        return Preview.from_json(self._request("POST", "/jobs/preview", json=body))

    @contextmanager
    def live_stream(self) -> Iterator[Iterator[tuple[str, dict[str, Any]]]]:
        """The master's live stream (GET /stream) as (event, data) messages: ("open", {})
        first, then ``farm``, ``jobs`` and ``log`` (docs/api.md, "The live stream").
        MasterUnreachable when it cannot be opened or breaks; Unauthorized for a wrong token."""
        with self._live_stream() as messages:
            yield messages
