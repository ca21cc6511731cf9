"""``GET /api/v1/stream``: the live stream (server-sent events) the web UI listens to.

Every client is fed by the master's one fan-out (:mod:`drqueue.master.fanout`), which says what
each event holds."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from drqueue.errors import DrQueueError
from drqueue.master.api.deps import AUTHED, Auth, answers, caller
from drqueue.master.api.shapes import JSONBytesResponse

router = APIRouter(prefix="/api/v1", default_response_class=JSONBytesResponse)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "server-sent events: farm, jobs (each job as GET /jobs lists it) "
            "and log (each new event as GET /events shows it); docs/api.md, 'The live stream'",
        },
        **answers(*AUTHED, 429),
    },
)
async def stream(request: Request, who: Auth) -> StreamingResponse:
    """``text/event-stream``: ``farm`` at connect and every 2 s, ``jobs`` (changed and deleted
    jobs), ``log`` (new store events), a ``: keep-alive`` comment after 15 s of silence.

    At most fanout.STREAMS_PER_USER streams per artist (429 beyond); a stream ends within
    fanout.AUTH_CHECK_SECONDS of its token being revoked or its session ending."""
    fanout = request.app.state.fanout
    client = fanout.connect(who.name, admin=who.admin)
    authorization = request.headers.get("authorization")

    def still_valid() -> bool:
        try:
            return caller(request, authorization) == who
        except DrQueueError:
            return False

    return StreamingResponse(
        fanout.stream(client, still_valid),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
