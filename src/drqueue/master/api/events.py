"""The audit trail: the newest events with ``since < id < before``, oldest first (page back with
``before`` = the first id of the previous page; ``before_id`` is the same), of one job, one
kind (or family of kinds, as ``job``) or one actor."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from drqueue.master.api.deps import (
    Auth,
    EventId,
    EventsLimit,
    JobIdPath,
    MasterDep,
    OptionalEventId,
)
from drqueue.master.api.shapes import JSONBytesResponse, event_dict
from drqueue.models import MAX_ID

router = APIRouter(prefix="/api/v1", default_response_class=JSONBytesResponse)

#: The ``kind`` filter: an event kind (``job.stopped``) or a family of them (``job``).
KindFilter = Annotated[str | None, Query(min_length=1, max_length=100)]
#: The ``actor`` filter: who did it (a token's name, or a job's owner).
ActorFilter = Annotated[str | None, Query(min_length=1, max_length=100)]


@router.get("/jobs/{job_id}/events")
def job_events(
    job_id: JobIdPath,
    _: Auth,
    m: MasterDep,
    since: EventId = 0,
    before: OptionalEventId = None,
    limit: EventsLimit = 200,
    kind: KindFilter = None,
    actor: ActorFilter = None,
    before_id: OptionalEventId = None,
) -> list[dict[str, Any]]:
    m.store.get_job(job_id)
    found = m.store.events(
        job_id=job_id,
        since_id=since,
        before_id=before if before is not None else before_id,
        limit=limit,
        kind=kind,
        actor=actor,
    )
    return [event_dict(e) for e in found]


@router.get("/events")
def events(
    _: Auth,
    m: MasterDep,
    since: EventId = 0,
    before: OptionalEventId = None,
    limit: EventsLimit = 200,
    job: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    kind: KindFilter = None,
    actor: ActorFilter = None,
    before_id: OptionalEventId = None,
) -> list[dict[str, Any]]:
    """*before_id* is another name of *before* (the web UI's)."""
    found = m.store.events(
        job_id=job,
        since_id=since,
        before_id=before if before is not None else before_id,
        limit=limit,
        kind=kind,
        actor=actor,
    )
    return [event_dict(e) for e in found]
