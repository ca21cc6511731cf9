"""The master's HTTP API (FastAPI): the only way clients reach the farm.

Every route but ``/api/v1/health`` and ``/openapi.json`` needs ``Authorization:
Bearer <token>``; tokens are compared in constant time.  Errors are JSON
``{"detail": "one line"}`` with a 4xx status.  The OpenAPI description is
served, without a token, at ``/openapi.json``: it describes the routes and holds
no data.  There is no ``/docs`` or ``/redoc`` page: FastAPI's pages load their
scripts from a CDN, so they would be blank on a farm without internet, and no
package we depend on ships the assets.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as FastPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

import drqueue
from drqueue.config import Config
from drqueue.errors import (
    AuthError,
    Conflict,
    DrQueueError,
    Forbidden,
    InvalidJob,
    NotFound,
    SceneNotFound,
)
from drqueue.master.body_limit import BodyLimit
from drqueue.master.dispatcher import Dispatcher
from drqueue.master.tokens import Identity, TokenBook
from drqueue.models import (
    ACTIVE_STATES,
    FRAME_LIMIT,
    MAX_ID,
    Computer,
    Job,
    JobIn,
    JobSpec,
    PathName,
    Priority,
    Task,
    gc_paused,
    split_frames,
    validation_message,
)
from drqueue.renderers import all_renderers, get_renderer
from drqueue.slave.runner import host_os
from drqueue.store.base import Store

#: The most items one answer of a list route holds (jobs, tasks, events, computers, pools):
#: a larger ``limit`` is a 422, and no ``limit`` means this many (docs/api.md, "Pages").
MAX_PAGE = 10_000

#: Ids and indexes in URL paths: what SQLite's INTEGER holds, so no id is a 500.
JobIdPath = Annotated[int, FastPath(ge=0, le=MAX_ID)]
IndexPath = Annotated[int, FastPath(ge=0, le=MAX_ID)]
#: A page size.
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
#: The Idempotency-Key header of POST /jobs: any printable token a client makes up.
IdempotencyKey = Annotated[
    str | None, Header(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]


class PriorityIn(BaseModel):
    model_config = ConfigDict(strict=True)
    priority: Priority


class LimitIn(BaseModel):
    model_config = ConfigDict(strict=True)
    max_tasks: int | None = Field(None, ge=0, le=10_000)


class PoolIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: PathName
    description: Annotated[str, Field(max_length=1000), AfterValidator(_printable_text)] = ""


class MemberIn(BaseModel):
    model_config = ConfigDict(strict=True)
    computer: PathName


class HostIn(BaseModel):
    model_config = ConfigDict(strict=True)
    host: PathName


class HeartbeatIn(BaseModel):
    engines: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=1024
    )


# -- serialisation ------------------------------------------------------------------------------


#: What another artist sees of each value of a job's env.
HIDDEN = "(hidden)"


def job_dict(job: Job, slots: int) -> dict[str, Any]:
    spec = job.spec
    return {
        "id": job.id,
        "name": spec.name,
        "owner": spec.owner,
        "renderer": spec.renderer,
        "scene": spec.scene,
        "start": spec.start,
        "end": spec.end,
        "step": spec.step,
        "block_size": spec.block_size,
        "priority": spec.priority,
        "retries": spec.retries,
        "timeout": spec.timeout,
        "env": spec.env,
        "params": spec.params,
        "requirements": spec.requirements.to_dict(),
        "after": spec.after,
        "max_parallel": spec.max_parallel,
        "status": job.status,
        "control": str(job.control),
        "counts": {
            "total": job.counts.total,
            "queued": job.counts.queued,
            "running": job.counts.running,
            "finished": job.counts.finished,
            "error": job.counts.error,
            "cancelled": job.counts.cancelled,
        },
        "submitted_at": job.submitted_at,
        "finished_at": job.finished_at,
        "eta_seconds": job.eta_seconds(slots),
        "waiting_for": job.waiting_for,
        "waiting_reason": job.waiting_reason,
        "blocked_hosts": job.blocked_hosts,
    }


class JSONBytesResponse(JSONResponse):
    """A JSON answer encoded by orjson, for the long lists the CLI and the web UI poll.

    Returning it from a route skips FastAPI's validation and serialization of the answer
    (pydantic copies every dict of a ``list[dict[str, Any]]`` before dumping it): GET /jobs of
    10,000 jobs took 90 ms of CPU instead of 135.  An integer beyond 64 bits (a job's params
    may hold one) is more than orjson encodes: such an answer is encoded as any other.
    """

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            # ASCII with escapes: a lone surrogate stored before the rule that refuses it must
            # not turn every listing into a 500.
            return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


def task_dict(task: Task) -> dict[str, Any]:
    return {
        "index": task.index,
        "id": task.id,
        "job_id": task.job_id,
        "start": task.block.start,
        "end": task.block.end,
        "step": task.block.step,
        "frames": len(task.block),
        "state": str(task.state),
        "attempts": task.attempts,
        "failures": task.failures,
        "lost": task.lost,
        "computer": task.computer,
        "engine_id": task.engine_id,
        "started_at": task.started_at,
        "ended_at": task.ended_at,
        "exit_code": task.exit_code,
        "peak_rss_kb": task.peak_rss_kb,
        "cpu_seconds": task.cpu_seconds,
        "progress": task.progress,
        "log_path": task.log_path,
        "tail": task.tail,
        "reason": task.reason,
        "outputs": task.outputs,
    }


def computer_dict(
    computer: Computer, online: bool, running: list[tuple[int, int, int]]
) -> dict[str, Any]:
    return {
        "name": computer.name,
        "hostname": computer.hostname,
        "os": computer.os,
        "arch": computer.arch,
        "cores": computer.cores,
        "ram_mb": computer.ram_mb,
        "free_ram_mb": computer.free_ram_mb,
        "load": computer.load,
        "gpus": computer.gpus,
        "pools": computer.pools,
        "renderers": computer.renderers,
        "enabled": computer.enabled,
        "max_tasks": computer.max_tasks,
        "slots": computer.slots,
        "online": online,
        "last_seen": computer.last_seen,
        "info_at": computer.info_at,
        "running": [
            {"job_id": job_id, "task_id": task_id, "task_index": task_index}
            for job_id, task_id, task_index in running
        ],
    }


def _printable_text(value: str) -> str:
    """Free text shown in a terminal (a pool's description): no control characters."""
    if any(not line.isprintable() for line in value.split("\n")):
        raise ValueError("must not hold control characters or escape codes")
    return value


def validate_job(body: JobIn, config: Config) -> JobSpec:
    """Turn a submission into a valid JobSpec, or raise a DrQueueError with a one-line reason.

    The field rules are JobIn's (models.py); here come the renderer's own (its params, and
    :meth:`Renderer.validate_job`, e.g. POV-Ray's frames), the farm's frame cap and the scene."""
    renderer = get_renderer(body.renderer)
    spec = body.to_spec()
    spec.renderer = renderer.name
    spec.params = renderer.validate_params(body.params)
    if renderer.needs_scene and not spec.scene:
        raise InvalidJob(f"renderer {renderer.name!r} needs a scene file")
    spec.validate(max_frames=config.max_frames_per_job)
    renderer.validate_job(spec)
    if spec.scene and body.check_scene:
        local = spec.scene
        if config.path_map:
            from drqueue.pathmap import map_path

            local = map_path(spec.scene, config.path_map, host_os())
        if not os.path.isfile(local):
            raise SceneNotFound(f"scene file {spec.scene} does not exist (as seen from the master)")
    return spec


def identified(request: Request, authorization: Annotated[str | None, Header()] = None) -> Identity:
    """The caller's identity if its bearer token is known (constant-time compare), else 401."""
    scheme, _, given = (authorization or "").partition(" ")
    identity = (
        request.app.state.tokens.identify(given.strip()) if scheme.lower() == "bearer" else None
    )
    if identity is None:
        raise AuthError("missing or wrong API token: set DRQUEUE_TOKEN to a token of this master")
    return identity


def authorised(identity: Annotated[Identity, Depends(identified)]) -> Identity:
    """An admin or artist token; a slave token is refused (403) here, so that every route but
    the two a slave needs (see :func:`slave_or_admin`) is closed to it, new routes included."""
    if identity.slave:
        raise Forbidden(
            f"{identity.name}: a slave token may only heartbeat and fetch the engine connection "
            "file: use an artist or admin token"
        )
    return identity


def slave_or_admin(identity: Annotated[Identity, Depends(identified)]) -> Identity:
    """Slave and admin tokens: the slave heartbeat and the engine connection file."""
    if not (identity.slave or identity.admin):
        raise Forbidden(
            f"{identity.name}'s {identity.role} token may not do this: it needs a slave or "
            "admin token"
        )
    return identity


def admin_only(identity: Annotated[Identity, Depends(authorised)]) -> Identity:
    """Admin tokens only: computers, pools and the farm's secrets."""
    if not identity.admin:
        raise Forbidden(
            f"{identity.name}'s {identity.role} token may not do this: it needs an admin token"
        )
    return identity


Auth = Annotated[Identity, Depends(authorised)]
Admin = Annotated[Identity, Depends(admin_only)]
SlaveOrAdmin = Annotated[Identity, Depends(slave_or_admin)]
#: Event ids in ``since``/``before``, bounded to what SQLite's INTEGER holds.
EventId = Annotated[int, Query(ge=0, le=2**63 - 1)]
TaskStateName = Literal["queued", "dispatched", "running", "finished", "error", "cancelled"]
OptionalEventId = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
#: How many events one request returns.
EventsLimit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


# -- files on the master, read for a client ------------------------------------------------------

#: The most bytes one answer reads from a file on the master (a log chunk, the engine file).
LOG_CHUNK_BYTES = 1 << 20


def open_inside(root: Path, path: Path, what: str) -> int:
    """A read-only descriptor of the regular file *path* inside the directory *root*.

    Renders write the logs, so a log may have been swapped for a symlink (to etc/token), a
    FIFO (which would block its reader), a device or a hard link to a file elsewhere.  So each
    component below *root* is opened with O_NOFOLLOW relative to its parent (a symlinked
    directory is refused as well as a symlinked file, and no check-then-open race remains),
    the file with O_NONBLOCK, and the descriptor (never the path) must be a regular file with
    one link.  *root* itself is the admin's and may be a symlink.  Raises NotFound for a
    missing file and Forbidden for any other.
    """
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = ()
    if not parts or any(part in ("..", ".") for part in parts):
        raise Forbidden(f"{what} ({path}) is not inside {root}: refused")
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    dir_fd = fd = -1
    try:
        dir_fd = os.open(root, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY)
        for part in parts[:-1]:
            below = os.open(part, flags | os.O_DIRECTORY, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = below
        fd = os.open(parts[-1], flags | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dir_fd)
        st = os.fstat(fd)
    except FileNotFoundError:
        if fd >= 0:
            os.close(fd)
        raise NotFound(f"{what} ({path}) is gone") from None
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        raise Forbidden(
            f"{what} ({path}) is refused: a symlink or unreadable path "
            f"({exc.strerror or exc}); only regular files inside {root} are served"
        ) from None
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        kind = "a hard link" if stat.S_ISREG(st.st_mode) else "not a regular file"
        raise Forbidden(f"{what} ({path}) is refused: it is {kind}")
    return fd


def read_at(fd: int, offset: int, length: int) -> bytes:
    """Up to *length* bytes of *fd* from *offset* (fewer at the end of the file)."""
    chunks: list[bytes] = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(chunks)


# -- the application -------------------------------------------------------------------------------


def create_app(store: Store, dispatcher: Dispatcher | None, config: Config, token: str) -> FastAPI:
    """The API application over *store*; *dispatcher* is None for a read-only test app."""
    app = FastAPI(
        title="DrQueue",
        version=drqueue.__version__,
        description=__doc__,
        docs_url=None,  # CDN-based pages: see the module docstring
        redoc_url=None,
        default_response_class=JSONBytesResponse,
    )
    app.state.tokens = TokenBook(config, token)

    @app.exception_handler(DrQueueError)
    async def drqueue_error(request: Request, exc: DrQueueError) -> JSONResponse:
        retry_after = getattr(exc, "retry_after", None)
        return JSONResponse(
            {"detail": str(exc), "error": type(exc).__name__},
            status_code=exc.status_code,
            headers={"Retry-After": str(retry_after)} if retry_after else None,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = validation_message(exc.errors())
        return JSONResponse({"detail": message, "error": "InvalidRequest"}, status_code=422)

    @app.exception_handler(OverflowError)
    async def number_too_large(request: Request, exc: OverflowError) -> JSONResponse:
        # The last guard of a class of defects: an int beyond SQLite's 64 bits that no
        # parameter bound caught is the caller's mistake, not the master's.
        return JSONResponse(
            {
                "detail": f"a number in the request is out of range (at most {MAX_ID})",
                "error": "InvalidRequest",
            },
            status_code=422,
        )

    app.add_middleware(BodyLimit, max_bytes=config.max_request_bytes)

    def wake() -> None:
        if dispatcher is not None:
            dispatcher.wake()

    def kill(dispatches) -> None:
        if dispatcher is not None:
            dispatcher.kill(dispatches)

    def slots() -> int:
        return dispatcher.slots_online() if dispatcher is not None else 0

    def job_out(job: Job) -> dict[str, Any]:
        """A job as JSON; its ETA counts the online slots that can run it.

        Only a job with timed tasks and tasks left has an ETA that depends on the slots, so
        only those ask the dispatcher (a list of 10,000 jobs would otherwise ask 10,000 times).
        """
        counts = job.counts
        needs_slots = dispatcher is not None and job.timed_tasks and counts.queued + counts.running
        return job_dict(job, dispatcher.usable_slots(job) if needs_slots else 0)

    def job_listed(job: Job) -> dict[str, Any]:
        """A job in a list: without its env and params, which may be large (a listing of
        10,000 jobs of 1 MiB each was 10 GB); GET /jobs/ID has them."""
        out = job_out(job)
        del out["env"], out["params"]
        return out

    def job_shown(job: Job, who: Identity) -> dict[str, Any]:
        """A job for *who*: another artist's job shows its env's names, not their values (a
        job's env may hold a licence server's password)."""
        out = job_out(job)
        if not who.admin and job.spec.owner != who.name:
            out["env"] = dict.fromkeys(job.spec.env, HIDDEN)
        return out

    def own(who: Identity, job_id: int) -> None:
        """Artists control only their own jobs; admins control all."""
        owner = store.get_job(job_id).spec.owner
        if not who.admin and owner != who.name:
            raise Forbidden(
                f"job {job_id} belongs to {owner!r}: {who.name}'s artist token may not change it"
            )

    v1 = "/api/v1"

    @app.get(f"{v1}/health")
    async def health() -> dict[str, Any]:
        # async: answered on the event loop, never queued behind busy worker threads
        return {"status": "ok", "version": drqueue.__version__}

    @app.get(f"{v1}/farm")
    def farm(_: Auth) -> dict[str, Any]:
        stats = dispatcher.stats if dispatcher else None
        return {
            "instance": dispatcher.instance_id if dispatcher else "",
            "engines": slots(),
            "dispatched": stats.dispatched if stats else 0,
            "prefetched": stats.prefetched if stats else 0,
            "finished": stats.finished if stats else 0,
            "failed": stats.failed if stats else 0,
            "stale": stats.stale if stats else 0,
            "lost": stats.lost if stats else 0,
            "aborts_confirmed": stats.aborts_confirmed if stats else 0,
            "store_writes_owed": stats.owed if stats else 0,
        }

    # jobs

    @app.post(f"{v1}/jobs", status_code=201)
    def submit(
        body: JobIn, who: Auth, response: Response, idempotency_key: IdempotencyKey = None
    ) -> dict[str, Any]:
        """Create a job (201); with an Idempotency-Key the owner used before, answer that
        job as the first submit did (200), so a client may resend a submit it lost."""
        owner = body.owner if who.admin else who.name  # an artist submits as themself
        if idempotency_key is not None:
            existing = store.job_by_key(owner, idempotency_key)
            if existing is not None:
                response.status_code = 200
                return {"id": existing, "tasks": store.get_job(existing).counts.total}
        renderer = get_renderer(body.renderer).name
        if not who.admin and not config.artist_may_submit(renderer):
            raise Forbidden(
                f"{who.name}'s {who.role} token may not submit {renderer} jobs: this farm's "
                f"artist_renderers allows {', '.join(config.artist_renderers) or 'none'}"
            )
        spec = validate_job(body, config)
        spec.owner = owner
        blocks = split_frames(spec.start, spec.end, spec.step, spec.block_size)
        try:
            job_id = store.create_job(spec, blocks, idempotency_key=idempotency_key)
        except Conflict:  # the same key, sent twice at once: the other request created it
            assert idempotency_key is not None
            existing = store.job_by_key(owner, idempotency_key)
            if existing is None:
                raise
            response.status_code = 200
            return {"id": existing, "tasks": store.get_job(existing).counts.total}
        wake()
        return {"id": job_id, "tasks": len(blocks)}

    @app.get(f"{v1}/jobs", response_class=JSONBytesResponse)
    def jobs(_: Auth, owner: str | None = None, limit: PageLimit = MAX_PAGE) -> JSONBytesResponse:
        """The newest *limit* jobs (of *owner* if given), oldest first, each as GET /jobs/ID."""
        with gc_paused():  # 10,000 jobs are some 100,000 new dicts, lists and objects
            return JSONBytesResponse(
                [job_listed(job) for job in store.list_jobs(owner=owner, limit=limit)]
            )

    @app.get(f"{v1}/jobs/{{job_id}}")
    def job(job_id: JobIdPath, who: Auth) -> dict[str, Any]:
        return job_shown(store.get_job(job_id), who)

    # Before /jobs/{job_id}/{action}, which would otherwise take "unblock" for its action.
    @app.post(f"{v1}/jobs/{{job_id}}/unblock")
    def unblock(job_id: JobIdPath, body: HostIn, who: Auth) -> dict[str, Any]:
        own(who, job_id)
        store.unblock_host(job_id, body.host, actor=who.name)
        wake()
        return job_out(store.get_job(job_id))

    @app.post(f"{v1}/jobs/{{job_id}}/{{action}}")
    def job_action(
        job_id: JobIdPath,
        action: Literal["stop", "continue", "kill", "rerun", "requeue-failed"],
        who: Auth,
    ) -> dict[str, Any]:
        own(who, job_id)
        if action == "stop":
            store.set_job_control(job_id, "stopped", actor=who.name)
        elif action == "continue":
            store.set_job_control(job_id, "active", actor=who.name)
        elif action == "kill":
            store.set_job_control(job_id, "stopped", actor=who.name)
            kill(store.kill_tasks(job_id, actor=who.name))
        elif action == "rerun":
            kill(store.requeue_tasks(job_id, which="all", actor=who.name))
            store.set_job_control(job_id, "active", actor=who.name)
        elif action == "requeue-failed":
            kill(store.requeue_tasks(job_id, which="failed", actor=who.name))
        wake()
        return job_out(store.get_job(job_id))

    @app.delete(f"{v1}/jobs/{{job_id}}")
    def delete(job_id: JobIdPath, who: Auth, force: bool = False) -> dict[str, Any]:
        own(who, job_id)
        kill(store.delete_job(job_id, force=force, actor=who.name))
        return {"deleted": job_id}

    @app.put(f"{v1}/jobs/{{job_id}}/priority")
    def priority(job_id: JobIdPath, body: PriorityIn, who: Auth) -> dict[str, Any]:
        own(who, job_id)
        store.set_job_priority(job_id, body.priority, actor=who.name)
        wake()
        return job_out(store.get_job(job_id))

    @app.get(f"{v1}/jobs/{{job_id}}/tasks")
    def tasks(
        job_id: JobIdPath,
        _: Auth,
        state: TaskStateName | None = None,
        offset: int = Query(0, ge=0, le=MAX_ID),
        limit: PageLimit = MAX_PAGE,
    ) -> list[dict[str, Any]]:
        """A page of the job's tasks by index (of one *state* if given): *limit* from *offset*."""
        return [
            task_dict(task)
            for task in store.list_tasks(job_id, state=state, offset=offset, limit=limit)
        ]

    @app.get(f"{v1}/jobs/{{job_id}}/tasks/{{index}}")
    def task(job_id: JobIdPath, index: IndexPath, _: Auth) -> dict[str, Any]:
        return task_dict(store.get_task(job_id, index))

    @app.post(f"{v1}/jobs/{{job_id}}/tasks/{{index}}/{{action}}")
    def task_action(
        job_id: JobIdPath, index: IndexPath, action: Literal["requeue", "kill"], who: Auth
    ) -> dict[str, Any]:
        own(who, job_id)
        if action == "requeue":
            kill(store.requeue_tasks(job_id, which="one", index=index, actor=who.name))
        else:
            task = store.get_task(job_id, index)
            if task.state not in ACTIVE_STATES:
                raise Conflict(
                    f"job {job_id} task {index} is {task.state}, not running: nothing to kill"
                )
            kill(store.kill_tasks(job_id, index=index, actor=who.name))
        wake()
        return task_dict(store.get_task(job_id, index))

    @app.get(f"{v1}/jobs/{{job_id}}/log", response_class=PlainTextResponse)
    def task_log(
        job_id: int,
        _: Auth,
        frame: int = Query(ge=-FRAME_LIMIT, le=FRAME_LIMIT),
        offset: int | None = Query(None, ge=0, le=2**63 - 1),
        limit: int = Query(LOG_CHUNK_BYTES, ge=1, le=LOG_CHUNK_BYTES),
        tail_bytes: int | None = Query(None, ge=1, le=LOG_CHUNK_BYTES),
    ) -> Response:
        """One chunk of the log of the task that rendered *frame*: up to *limit* bytes from
        *offset*, or without an offset the last *limit* (or *tail_bytes*) bytes.  The headers
        X-Log-Size and X-Log-Offset give the log's size and where the chunk starts.

        A sync route, so FastAPI runs it in its threadpool: the file I/O never holds the event
        loop, and open_inside() never blocks (a FIFO is refused, not read)."""
        found = store.task_for_frame(job_id, frame)
        if not found.log_path:
            raise NotFound(
                f"frame {frame} of job {job_id} has not run yet (task {found.index} is {found.state})"
            )
        what = f"the log of task {found.index}"
        fd = open_inside(config.logs_dir, Path(found.log_path), what)
        try:
            size = os.fstat(fd).st_size
            length = tail_bytes or limit
            start = max(0, size - length) if offset is None else min(offset, size)
            chunk = read_at(fd, start, min(length, size - start))
        finally:
            os.close(fd)
        return Response(
            chunk,
            media_type="text/plain; charset=utf-8",
            headers={"X-Log-Size": str(size), "X-Log-Offset": str(start)},
        )

    # Events: the newest `limit` with since < id < before, oldest first; page back with
    # before = the first id of the previous page.
    @app.get(f"{v1}/jobs/{{job_id}}/events")
    def job_events(
        job_id: JobIdPath,
        _: Auth,
        since: EventId = 0,
        before: OptionalEventId = None,
        limit: EventsLimit = 200,
    ) -> list[dict[str, Any]]:
        store.get_job(job_id)
        found = store.events(job_id=job_id, since_id=since, before_id=before, limit=limit)
        return [vars_of(e) for e in found]

    @app.get(f"{v1}/events")
    def events(
        _: Auth, since: EventId = 0, before: OptionalEventId = None, limit: EventsLimit = 200
    ) -> list[dict[str, Any]]:
        return [vars_of(e) for e in store.events(since_id=since, before_id=before, limit=limit)]

    # computers and pools

    def online_names() -> set[str]:
        if dispatcher is None:
            return set()
        return {e.slot.computer for e in list(dispatcher.engines.values()) if e.slot}

    def computer_out(computer: Computer) -> dict[str, Any]:
        running = dispatcher.running_by_computer() if dispatcher else {}
        return computer_dict(
            computer, computer.name in online_names(), running.get(computer.name, [])
        )

    @app.get(f"{v1}/computers")
    def computers(_: Auth, limit: PageLimit = MAX_PAGE) -> list[dict[str, Any]]:
        """The first *limit* computers by name."""
        return [computer_out(c) for c in store.list_computers()[:limit]]

    @app.get(f"{v1}/computers/{{name}}")
    def computer(name: str, _: Auth) -> dict[str, Any]:
        return computer_out(store.get_computer(name))

    @app.post(f"{v1}/computers/{{name}}/{{action}}")
    def computer_action(
        name: str, action: Literal["enable", "disable"], who: Admin
    ) -> dict[str, Any]:
        store.update_computer(name, enabled=action == "enable", actor=who.name)
        wake()
        return computer_out(store.get_computer(name))

    @app.put(f"{v1}/computers/{{name}}/limit")
    def computer_limit(name: str, body: LimitIn, who: Admin) -> dict[str, Any]:
        store.update_computer(name, max_tasks=body.max_tasks, actor=who.name)
        wake()
        return computer_out(store.get_computer(name))

    @app.get(f"{v1}/pools")
    def pools(_: Auth, limit: PageLimit = MAX_PAGE) -> list[dict[str, Any]]:
        """The first *limit* pools by name."""
        return store.list_pools()[:limit]

    @app.post(f"{v1}/pools", status_code=201)
    def create_pool(body: PoolIn, who: Admin) -> dict[str, Any]:
        store.create_pool(body.name, body.description, actor=who.name)
        return {"name": body.name}

    @app.delete(f"{v1}/pools/{{name}}")
    def delete_pool(name: str, who: Admin) -> dict[str, Any]:
        store.delete_pool(name, actor=who.name)
        wake()  # the dispatcher's cached pool membership is stale
        return {"deleted": name}

    @app.post(f"{v1}/pools/{{name}}/members")
    def add_member(name: str, body: MemberIn, who: Admin) -> dict[str, Any]:
        store.set_pool_member(name, body.computer, True, actor=who.name)
        wake()
        return {"pool": name, "computer": body.computer}

    @app.delete(f"{v1}/pools/{{name}}/members/{{computer}}")
    def remove_member(name: str, computer: str, who: Admin) -> dict[str, Any]:
        store.set_pool_member(name, computer, False, actor=who.name)
        wake()  # the dispatcher's cached pool membership is stale
        return {"pool": name, "computer": computer, "removed": True}

    # renderers and slaves

    @app.get(f"{v1}/renderers")
    def renderers(_: Auth) -> list[dict[str, Any]]:
        return [
            {
                "name": cls.name,
                "description": cls.description,
                "executable": cls.executable,
                "needs_scene": cls.needs_scene,
                "params": [
                    {
                        "name": p.name,
                        "type": p.type,
                        "default": p.default,
                        "help": p.help,
                        "required": p.required,
                        "choices": list(p.choices),
                    }
                    for p in cls.params
                ],
            }
            for cls in all_renderers().values()
        ]

    @app.post(f"{v1}/slaves/{{name}}/heartbeat")
    def heartbeat(name: str, body: HeartbeatIn, _: SlaveOrAdmin) -> dict[str, Any]:
        registered = dispatcher.engine_uuids() if dispatcher else frozenset()
        return {
            "instance": dispatcher.instance_id if dispatcher else "",
            "registered": [engine for engine in body.engines if engine in registered],
        }

    @app.get(f"{v1}/farm/engine-connection")
    def engine_connection(_: SlaveOrAdmin) -> dict[str, Any]:
        """The engine connection file, for `drqueue slave --master URL` on another machine."""
        try:
            fd = open_inside(
                config.engine_file.parent, config.engine_file, "the engine connection file"
            )
        except NotFound:
            raise NotFound(
                "the controller has not written its engine connection file yet"
            ) from None
        try:
            return json.loads(read_at(fd, 0, LOG_CHUNK_BYTES))
        finally:
            os.close(fd)

    return app


def vars_of(event) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at,
        "kind": event.kind,
        "message": event.message,
        "job_id": event.job_id,
        "task_index": event.task_index,
        "computer": event.computer,
        "actor": event.actor,
    }
