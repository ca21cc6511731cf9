"""The farm: liveness, dispatch counters, renderers, and what slaves ask (heartbeat, the engine
connection file).

A heartbeat's answer says when the slave should call again: :func:`heartbeat_period`, the
computers online over the master's budget (``heartbeats_per_second``), so a farm of any size
costs the master about that many heartbeats a second (one costs 0.7-0.9 ms of CPU: 4,000 slaves
calling every second would need three to four cores).  The slave still calls every second
while something is wrong on its side (drqueue.slave.launcher).
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

import drqueue
from drqueue.api_types import (
    HEARTBEAT_MAX_SECONDS,
    HEARTBEAT_MIN_SECONDS,
    FarmCounters,
    Health,
    HeartbeatAnswer,
    RendererInfo,
)
from drqueue.errors import NotFound
from drqueue.master.api.deps import AUTHED, Auth, Master, MasterDep, SlaveOrAdmin, answers
from drqueue.master.api.files import LOG_CHUNK_BYTES, open_inside, read_at
from drqueue.master.api.shapes import JSONBytesResponse
from drqueue.renderers import all_renderers

router = APIRouter(prefix="/api/v1", default_response_class=JSONBytesResponse)


class HeartbeatIn(BaseModel):
    engines: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=1024
    )


def heartbeat_period(online: int, budget: float) -> float:
    """Seconds a slave should wait before its next heartbeat, so that *online* slaves make
    about *budget* heartbeats a second: HEARTBEAT_MIN_SECONDS at least, HEARTBEAT_MAX_SECONDS
    at most."""
    return round(min(HEARTBEAT_MAX_SECONDS, max(HEARTBEAT_MIN_SECONDS, online / budget)), 2)


def current_heartbeat_period(m: Master) -> float:
    """The period a heartbeat's answer sets now: the dispatcher's count of the computers online
    (a set it keeps as engines come and go, not a walk of its engines: this runs per
    heartbeat)."""
    online = m.dispatcher.computers_online() if m.dispatcher is not None else 0
    return heartbeat_period(online, m.config.heartbeats_per_second)


@router.get("/health", response_model=Health)
async def health() -> JSONBytesResponse:
    # async: answered on the event loop, never queued behind busy worker threads
    return JSONBytesResponse({"status": "ok", "version": drqueue.__version__})


@router.get("/farm", response_model=FarmCounters, responses=answers(*AUTHED))
def farm(_: Auth, m: MasterDep, request: Request) -> JSONBytesResponse:
    dispatcher = m.dispatcher
    stats = dispatcher.stats if dispatcher else None
    fanout = request.app.state.fanout
    return JSONBytesResponse(
        {
            "instance": dispatcher.instance_id if dispatcher else "",
            "engines": m.slots(),
            "dispatched": stats.dispatched if stats else 0,
            "prefetched": stats.prefetched if stats else 0,
            "finished": stats.finished if stats else 0,
            "failed": stats.failed if stats else 0,
            "stale": stats.stale if stats else 0,
            "lost": stats.lost if stats else 0,
            "aborts_confirmed": stats.aborts_confirmed if stats else 0,
            "store_writes_owed": stats.owed if stats else 0,
            "stream_clients": len(fanout.clients),
            "stream_reads": fanout.reads,
            "heartbeats": m.heartbeats,
            "heartbeat_seconds": current_heartbeat_period(m),
        }
    )


@router.get("/renderers", response_model=list[RendererInfo], responses=answers(*AUTHED))
def renderers(_: Auth) -> JSONBytesResponse:
    return JSONBytesResponse(
        [
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
    )


@router.post(
    "/slaves/{name}/heartbeat", response_model=HeartbeatAnswer, responses=answers(*AUTHED, 413)
)
async def heartbeat(
    name: str, body: HeartbeatIn, _: SlaveOrAdmin, m: MasterDep
) -> JSONBytesResponse:
    dispatcher = m.dispatcher
    registered = dispatcher.engine_uuids() if dispatcher else frozenset()
    m.heartbeats += 1
    return JSONBytesResponse(
        {
            "instance": dispatcher.instance_id if dispatcher else "",
            "registered": [engine for engine in body.engines if engine in registered],
            "next_seconds": current_heartbeat_period(m),
        }
    )


@router.get(
    "/farm/engine-connection",
    response_model=dict[str, Any],
    responses={
        200: {"description": "ipyparallel's engine connection file, as the controller wrote it"},
        **answers(*AUTHED, 404),
    },
)
def engine_connection(_: SlaveOrAdmin, m: MasterDep) -> JSONBytesResponse:
    """The engine connection file, for `drqueue slave --master URL` on another machine."""
    engine_file = m.config.engine_file
    try:
        fd = open_inside(engine_file.parent, engine_file, "the engine connection file")
    except NotFound:
        raise NotFound("the controller has not written its engine connection file yet") from None
    try:
        return JSONBytesResponse(json.loads(read_at(fd, 0, LOG_CHUNK_BYTES)))
    finally:
        os.close(fd)
