"""Jobs: submit (and its preview), the list and its pages, one job, control, the frame grid and
the thumbnail of the last rendered frame.

Every change is noted in ``m.changes`` after its store write, so the live stream sends the job
at its next tick.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from drqueue.api_types import Deleted, FrameGrid, Job, Preview, Submitted
from drqueue.config import Config
from drqueue.errors import Conflict, Forbidden, InvalidJob, InvalidRequest, SceneNotFound
from drqueue.master.api.deps import (
    AUTHED,
    MAX_PAGE,
    Auth,
    JobIdPath,
    MasterDep,
    answers,
)
from drqueue.master.api.shapes import JSONBytesResponse, json_bytes
from drqueue.master.jobpages import EncodedPage
from drqueue.master.thumbnails import thumbnail_of
from drqueue.master.tokens import Identity
from drqueue.models import (
    MAX_ID,
    JobIn,
    JobSpec,
    PathName,
    Priority,
    count_frames,
    gc_paused,
    notify_recipients,
    split_frames,
)
from drqueue.renderers import get_renderer
from drqueue.slave.runner import host_os
from drqueue.store.jobquery import SORTS, STATUSES, JobQuery

router = APIRouter(
    prefix="/api/v1", default_response_class=JSONBytesResponse, responses=answers(*AUTHED)
)

#: The Idempotency-Key header of POST /jobs: any printable token a client makes up.
IdempotencyKey = Annotated[
    str | None, Header(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]
#: The most jobs one page of the web UI's jobs table holds.
JOBS_PAGE_MAX = 500
#: Jobs in a page when the request names no limit.
JOBS_PAGE_DEFAULT = 100
#: Blocks a preview lists (the first ones).
PREVIEW_BLOCKS = 100
#: One letter per task state in GET /jobs/ID/frames.
STATE_LETTERS = {
    "queued": "q",
    "dispatched": "d",
    "running": "r",
    "finished": "f",
    "error": "e",
    "cancelled": "c",
}


class PriorityIn(BaseModel):
    model_config = ConfigDict(strict=True)
    priority: Priority


class HostIn(BaseModel):
    model_config = ConfigDict(strict=True)
    host: PathName


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


def submitted_spec(body: JobIn, who: Identity, config: Config) -> JobSpec:
    """What POST /jobs would store for *who*, with every check it makes (POST /jobs/preview
    makes the same, so the same body gets the same error from both)."""
    renderer = get_renderer(body.renderer).name
    if not who.admin and not config.artist_may_submit(renderer):
        raise Forbidden(
            f"{who.name}'s {who.role} token may not submit {renderer} jobs: this farm's "
            f"artist_renderers allows {', '.join(config.artist_renderers) or 'none'}"
        )
    spec = validate_job(body, config)
    spec.owner = body.owner if who.admin else who.name  # an artist submits as themself
    check_notify(spec, config)
    return spec


def check_notify(spec: JobSpec, config: Config) -> None:
    """InvalidJob for a ``notify`` that can never mail anyone: this master sends no mail
    (``smtp_host`` unset), or it names when to mail but has no recipient (no ``email``, and the
    owner has no address in ``mail_addresses``).  Accepted silently, such a job's mail was
    simply never sent."""
    if not spec.notify:
        return
    recipients = notify_recipients(spec.notify) or (
        [config.mail_addresses[spec.owner]] if spec.owner in config.mail_addresses else []
    )
    if not config.smtp_host and (recipients or spec.notify.get("on")):
        raise InvalidJob("notify: this master sends no mail (its smtp_host is not set)")
    if spec.notify.get("on") and not recipients:
        raise InvalidJob(
            f"notify: nobody would be mailed: give an address (--email, notify.email), or ask "
            f"an admin to add {spec.owner} to the master's mail_addresses"
        )


@router.post(
    "/jobs",
    status_code=201,
    response_model=Submitted,
    responses={
        200: {
            "model": Submitted,
            "description": "the job an earlier submit with this Idempotency-Key made",
        },
        **answers(400, 409, 413),
    },
)
def submit(
    body: JobIn, who: Auth, m: MasterDep, idempotency_key: IdempotencyKey = None
) -> JSONBytesResponse:
    """Create a job (201); with an Idempotency-Key the owner used before, answer that
    job as the first submit did (200), so a client may resend a submit it lost."""
    store = m.store
    owner = body.owner if who.admin else who.name
    if idempotency_key is not None:
        existing = store.job_by_key(owner, idempotency_key)
        if existing is not None:
            return submitted(existing, store.get_job(existing).counts.total, status=200)
    spec = submitted_spec(body, who, m.config)
    blocks = split_frames(spec.start, spec.end, spec.step, spec.block_size)
    try:
        job_id = store.create_job(spec, blocks, idempotency_key=idempotency_key)
    except Conflict:  # the same key, sent twice at once: the other request created it
        assert idempotency_key is not None
        existing = store.job_by_key(owner, idempotency_key)
        if existing is None:
            raise
        return submitted(existing, store.get_job(existing).counts.total, status=200)
    m.changed(job_id)
    return submitted(job_id, len(blocks), status=201)


def submitted(job_id: int, tasks: int, *, status: int) -> JSONBytesResponse:
    """The answer of a submit: 201 for a new job, 200 for the one a repeated key made."""
    return JSONBytesResponse({"id": job_id, "tasks": tasks}, status_code=status)


@router.post("/jobs/preview", response_model=Preview, responses=answers(400, 413))
def preview(body: JobIn, who: Auth, m: MasterDep) -> JSONBytesResponse:
    """What POST /jobs would make of this body, with the same checks and errors, storing
    nothing: how many tasks and frames, and the first PREVIEW_BLOCKS blocks [start, end, step]."""
    spec = submitted_spec(body, who, m.config)
    frames = count_frames(spec.start, spec.end, spec.step, spec.block_size)
    shown = min(frames, PREVIEW_BLOCKS * spec.block_size)
    first = split_frames(
        spec.start, spec.start + (shown - 1) * spec.step, spec.step, spec.block_size
    )
    return JSONBytesResponse(
        {
            "tasks": -(-frames // spec.block_size),
            "frames": frames,
            "blocks": [[block.start, block.end, block.step] for block in first],
        }
    )


@router.get(
    "/jobs",
    response_class=JSONBytesResponse,
    response_model=list[Job],
    responses={
        200: {
            "headers": {
                "X-Total-Count": {"description": "how many jobs matched (a paged request's)"}
            }
        }
    },
)
def jobs(
    request: Request,
    _: Auth,
    m: MasterDep,
    owner: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
    offset: Annotated[int | None, Query(ge=0, le=MAX_PAGE * 100)] = None,
    sort: Literal[SORTS] | None = None,  # type: ignore[valid-type]
    order: Literal["asc", "desc"] | None = None,
    state: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
    pool: Annotated[str | None, Query(max_length=100)] = None,
    renderer: Annotated[str | None, Query(max_length=100)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    attention: bool | None = None,
    active: bool | None = None,
) -> Response:
    """Without paging parameters: the newest *limit* jobs (of *owner* if given), oldest first,
    each as GET /jobs/ID lists it.  With any of offset, sort, order, state, pool, renderer, q,
    attention (only the jobs a wrangler should look at: jobquery.needs_attention) or active
    (only the jobs that have not ended: jobquery.ACTIVE_STATUSES): one page of at most
    JOBS_PAGE_MAX (the web UI's table, the CLI), sorted by *sort* (default id) in *order*
    (default desc), with the header X-Total-Count: how many jobs matched.

    Every answer is encoded once per change of the store for all who ask the same
    (drqueue.master.jobpages)."""
    filters = (offset, sort, order, state, pool, renderer, q, attention, active)
    paged = any(v is not None for v in filters)
    if paged and limit is not None and limit > JOBS_PAGE_MAX:
        raise InvalidRequest(f"limit: a page holds at most {JOBS_PAGE_MAX} jobs, not {limit}")
    # Read before the store: an answer built after it is at least that new.
    version = m.store.data_version()
    if version is not None:
        version = (version, m.eta_basis())

    def build() -> EncodedPage:
        if not paged:
            with gc_paused():  # 10,000 jobs are some 100,000 new dicts, lists and objects
                listed = m.store.list_jobs(owner=owner, limit=limit or MAX_PAGE)
                return EncodedPage(json_bytes([m.job_listed(job) for job in listed]), len(listed))
        page = m.store.page_jobs(
            JobQuery(
                owner=owner,
                status=state,
                pool=pool,
                renderer=renderer,
                name_contains=q,
                attention=bool(attention),
                active=bool(active),
                sort=sort or "id",
                descending=order != "asc",
                offset=offset or 0,
                limit=limit or JOBS_PAGE_DEFAULT,
            )
        )
        return EncodedPage(json_bytes([m.job_listed(job) for job in page.jobs]), page.total)

    key = (paged, owner, limit, *filters)
    answer = m.job_pages.get(key, version, build)
    headers = {"X-Total-Count": str(answer.total)} if paged else None
    return Response(answer.body, media_type="application/json", headers=headers)


@router.get("/jobs/{job_id}", response_model=Job, responses=answers(404))
def job(job_id: JobIdPath, who: Auth, m: MasterDep) -> JSONBytesResponse:
    return JSONBytesResponse(m.job_shown(m.job(job_id), who))


# Before /jobs/{job_id}/{action}, which would otherwise take "unblock" for its action.
@router.post("/jobs/{job_id}/unblock", response_model=Job, responses=answers(404, 413))
def unblock(job_id: JobIdPath, body: HostIn, who: Auth, m: MasterDep) -> JSONBytesResponse:
    m.own(who, job_id)
    m.store.unblock_host(job_id, body.host, actor=who.name)
    m.changed(job_id)
    return JSONBytesResponse(m.job_out(m.job(job_id)))


@router.post("/jobs/{job_id}/{action}", response_model=Job, responses=answers(404, 409))
def job_action(
    job_id: JobIdPath,
    action: Literal["stop", "continue", "kill", "rerun", "requeue-failed"],
    who: Auth,
    m: MasterDep,
) -> JSONBytesResponse:
    m.own(who, job_id)
    store = m.store
    if action == "stop":
        store.set_job_control(job_id, "stopped", actor=who.name)
    elif action == "continue":
        store.set_job_control(job_id, "active", actor=who.name)
    elif action == "kill":
        store.set_job_control(job_id, "stopped", actor=who.name)
        m.kill(store.kill_tasks(job_id, actor=who.name))
    elif action == "rerun":
        m.kill(store.requeue_tasks(job_id, which="all", actor=who.name))
        store.set_job_control(job_id, "active", actor=who.name)
    elif action == "requeue-failed":
        m.kill(store.requeue_tasks(job_id, which="failed", actor=who.name))
    m.changed(job_id)
    return JSONBytesResponse(m.job_out(m.job(job_id)))


@router.delete("/jobs/{job_id}", response_model=Deleted, responses=answers(404, 409))
def delete(job_id: JobIdPath, who: Auth, m: MasterDep, force: bool = False) -> JSONBytesResponse:
    """Delete a job; a job with tasks on engines is a 409 unless *force* (they are killed)."""
    m.own(who, job_id)
    m.kill(m.store.delete_job(job_id, force=force, actor=who.name))
    m.changes.note_deleted(job_id)
    return JSONBytesResponse({"deleted": job_id})


@router.put("/jobs/{job_id}/priority", response_model=Job, responses=answers(404, 413))
def priority(job_id: JobIdPath, body: PriorityIn, who: Auth, m: MasterDep) -> JSONBytesResponse:
    m.own(who, job_id)
    m.store.set_job_priority(job_id, body.priority, actor=who.name)
    m.changed(job_id)
    return JSONBytesResponse(m.job_out(m.job(job_id)))


@router.get("/jobs/{job_id}/frames", response_model=FrameGrid, responses=answers(404))
def frames(job_id: JobIdPath, _: Auth, m: MasterDep) -> JSONBytesResponse:
    """The frame grid: the job's range and one letter per task, by index (q queued,
    d dispatched, r running, f finished, e error, c cancelled).  Read from the store once per
    change of the job, however many pages ask (:mod:`drqueue.master.framegrids`)."""

    def read() -> dict[str, Any]:
        spec = m.job(job_id).spec
        letters = STATE_LETTERS
        return {
            "start": spec.start,
            "end": spec.end,
            "step": spec.step,
            "block_size": spec.block_size,
            "states": "".join(letters[state] for state in m.store.task_states(job_id)),
        }

    return JSONBytesResponse(m.frame_grids.get(job_id, m.changes.version(job_id), read))


@router.get(
    "/jobs/{job_id}/thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
        304: {"description": "the thumbnail is the one If-None-Match names"},
        **answers(404),
    },
)
def thumbnail(
    job_id: JobIdPath,
    _: Auth,
    m: MasterDep,
    task: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """A JPEG of at most 480 px of the first image output (PNG, JPEG, TIFF) of the job's last
    finished task, or of task *task*; 404 when there is none, 403 for a file refused
    (drqueue.master.thumbnails says which).  Made once per output file and cached."""
    store = m.store
    found = store.get_task(job_id, task) if task is not None else store.last_finished_task(job_id)
    image = thumbnail_of(job_id, found, m.config)
    headers = {"ETag": image.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if if_none_match == image.etag:
        return Response(status_code=304, headers=headers)
    return Response(image.jpeg, media_type="image/jpeg", headers=headers)
