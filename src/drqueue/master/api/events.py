"""The audit trail: the newest events with ``since < id < before``, oldest first (page back with
``before`` = the first id of the previous page; ``before_id`` is the same), of one job, one
kind (or family of kinds, as ``job``) or one actor."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from drqueue.api_types import Event
from drqueue.master.api.deps import (
    AUTHED,
    Auth,
    EventId,
    EventsLimit,
    JobIdPath,
    MasterDep,
    OptionalEventId,
    answers,
)
from drqueue.master.api.shapes import JSONBytesResponse, event_dict
from drqueue.models import MAX_ID

router = APIRouter(
    prefix="/api/v1", default_response_class=JSONBytesResponse, responses=answers(*AUTHED)
)

#: The ``kind`` filter: an event kind (``job.stopped``) or a family of them (``job``).
KindFilter = Annotated[str | None, Query(min_length=1, max_length=100)]
#: The ``actor`` filter: who did it (a token's name, or a job's owner).
ActorFilter = Annotated[str | None, Query(min_length=1, max_length=100)]


def trail_page(
    since: EventId = 0,
    before: OptionalEventId = None,
    limit: EventsLimit = 200,
    kind: KindFilter = None,
    actor: ActorFilter = None,
    before_id: OptionalEventId = None,
) -> dict[str, Any]:
    """The page of the trail the query asks for, as Store.events' arguments (*before_id* is
    another name of *before*)."""
    return {
        "since_id": since,
        "before_id": before if before is not None else before_id,
        "limit": limit,
        "kind": kind,
        "actor": actor,
    }


TrailPage = Annotated[dict[str, Any], Depends(trail_page)]


@router.get("/jobs/{job_id}/events", response_model=list[Event], responses=answers(404))
def job_events(job_id: JobIdPath, _: Auth, m: MasterDep, page: TrailPage) -> JSONBytesResponse:
    m.job(job_id)
    return JSONBytesResponse([event_dict(e) for e in m.store.events(job_id=job_id, **page)])


@router.get("/events", response_model=list[Event])
def events(
    _: Auth,
    m: MasterDep,
    page: TrailPage,
    job: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> JSONBytesResponse:
    return JSONBytesResponse([event_dict(e) for e in m.store.events(job_id=job, **page)])
