"""Tasks: pages of a job's tasks, one task, requeue and kill, and a task's log a chunk at a time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from drqueue.api_types import Task
from drqueue.errors import Conflict, InvalidRequest, JobNotFound, NotFound
from drqueue.master.api.deps import (
    AUTHED,
    MAX_PAGE,
    Auth,
    IndexPath,
    JobIdPath,
    MasterDep,
    PageLimit,
    TaskStateName,
    answers,
)
from drqueue.master.api.files import LOG_CHUNK_BYTES, open_inside, read_at
from drqueue.master.api.shapes import JSONBytesResponse, task_dict
from drqueue.models import ACTIVE_STATES, FRAME_LIMIT, MAX_ID

router = APIRouter(
    prefix="/api/v1", default_response_class=JSONBytesResponse, responses=answers(*AUTHED)
)


@router.get("/jobs/{job_id}/tasks", response_model=list[Task], responses=answers(404))
def tasks(
    job_id: JobIdPath,
    _: Auth,
    m: MasterDep,
    state: TaskStateName | None = None,
    offset: int = Query(0, ge=0, le=MAX_ID),
    limit: PageLimit = MAX_PAGE,
) -> JSONBytesResponse:
    """A page of the job's tasks by index (of one *state* if given): *limit* from *offset*."""
    try:
        found = m.store.list_tasks(job_id, state=state, offset=offset, limit=limit)
    except NotFound as exc:  # the only thing list_tasks finds missing is the job
        raise JobNotFound(str(exc)) from None
    return JSONBytesResponse([task_dict(task) for task in found])


@router.get("/jobs/{job_id}/tasks/{index}", response_model=Task, responses=answers(404))
def task(job_id: JobIdPath, index: IndexPath, _: Auth, m: MasterDep) -> JSONBytesResponse:
    return JSONBytesResponse(task_dict(m.store.get_task(job_id, index)))


@router.post(
    "/jobs/{job_id}/tasks/{index}/{action}", response_model=Task, responses=answers(404, 409)
)
def task_action(
    job_id: JobIdPath,
    index: IndexPath,
    action: Literal["requeue", "kill"],
    who: Auth,
    m: MasterDep,
) -> JSONBytesResponse:
    m.own(who, job_id)
    store = m.store
    if action == "requeue":
        m.kill(store.requeue_tasks(job_id, which="one", index=index, actor=who.name))
    else:
        found = store.get_task(job_id, index)
        if found.state not in ACTIVE_STATES:
            raise Conflict(
                f"job {job_id} task {index} is {found.state}, not running: nothing to kill"
            )
        m.kill(store.kill_tasks(job_id, index=index, actor=who.name))
    m.changed(job_id)
    return JSONBytesResponse(task_dict(store.get_task(job_id, index)))


@router.get(
    "/jobs/{job_id}/log",
    response_class=Response,  # its errors are JSON: PlainTextResponse would say text/plain
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "the chunk's bytes as the render wrote them",
            "headers": {
                "X-Log-Size": {"description": "the whole log, in bytes"},
                "X-Log-Offset": {"description": "where this chunk starts"},
            },
        },
        **answers(404),
    },
)
def task_log(
    job_id: int,
    _: Auth,
    m: MasterDep,
    frame: int | None = Query(None, ge=-FRAME_LIMIT, le=FRAME_LIMIT),
    task: int | None = Query(None, ge=0, le=MAX_ID),
    offset: int | None = Query(None, ge=0, le=MAX_ID),
    limit: int = Query(LOG_CHUNK_BYTES, ge=1, le=LOG_CHUNK_BYTES),
    tail_bytes: int | None = Query(None, ge=1, le=LOG_CHUNK_BYTES),
) -> Response:
    """One chunk of the log of the task that rendered *frame* (or of task index *task*, the
    web UI's way; one of the two is needed): up to *limit* bytes from
    *offset*, or without an offset the last *limit* (or *tail_bytes*) bytes.  The headers
    X-Log-Size and X-Log-Offset give the log's size and where the chunk starts.

    A sync route, so FastAPI runs it in its threadpool: the file I/O never holds the event
    loop, and open_inside() never blocks (a FIFO is refused, not read)."""
    if (frame is None) == (task is None):
        raise InvalidRequest("give the log's frame= or its task= (an index), one of the two")
    if task is not None:
        found = m.store.get_task(job_id, task)
        which = f"task {task} of job {job_id}"
    else:
        found = m.store.task_for_frame(job_id, frame)
        which = f"frame {frame} of job {job_id}"
    if not found.log_path:
        raise NotFound(f"{which} has not run yet (task {found.index} is {found.state})")
    what = f"the log of task {found.index}"
    fd = open_inside(m.config.logs_dir, Path(found.log_path), what)
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
