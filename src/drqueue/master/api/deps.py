"""What every router shares: who is calling (token or session cookie, CSRF), the master's parts,
and the bounds of ids and pages.

A route names what it needs as a parameter: ``who: Auth`` (any admin or artist, by bearer token
or web session), ``who: Admin``, ``who: SlaveOrAdmin``, and ``m: MasterDep``, the store, the
dispatcher (None in a read-only test app), the config and the job-change notes, with the few
helpers routes share (``m.wake()``, ``m.job_out(job)``, ``m.own(who, job_id)``).  That object
is the whole of what the API uses of the master.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, Query, Request
from fastapi import Path as FastPath

from drqueue.api_types import ErrorBody
from drqueue.config import Config
from drqueue.errors import AuthError, Forbidden, JobNotFound, NotFound
from drqueue.master.api.shapes import HIDDEN, computer_dict, job_dict
from drqueue.master.changes import JobChanges
from drqueue.master.dispatcher import Dispatcher
from drqueue.master.framegrids import FrameGrids
from drqueue.master.jobpages import JobPages
from drqueue.master.sessions import COOKIE, Session, Sessions
from drqueue.master.tokens import Identity, TokenBook
from drqueue.models import MAX_ID, Computer, Job
from drqueue.store.base import Dispatch, Store

#: The most items one answer of a list route holds (jobs, tasks, events, computers, pools):
#: a larger ``limit`` is a 422, and no ``limit`` means this many (docs/api.md, "Pages").
MAX_PAGE = 10_000

#: Ids and indexes in URL paths: what SQLite's INTEGER holds, so no id is a 500.
JobIdPath = Annotated[int, FastPath(ge=0, le=MAX_ID)]
IndexPath = Annotated[int, FastPath(ge=0, le=MAX_ID)]
#: A page size.
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
#: Event ids in ``since``/``before``, bounded to what SQLite's INTEGER holds.
EventId = Annotated[int, Query(ge=0, le=MAX_ID)]
OptionalEventId = Annotated[int | None, Query(ge=0, le=MAX_ID)]
#: How many events one request returns.
EventsLimit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
TaskStateName = Literal["queued", "dispatched", "running", "finished", "error", "cancelled"]

#: What each error answer means, for the OpenAPI description; every one has the body
#: ErrorBody, {"detail": one line, "error": the drqueue.errors class}.
ERROR_ANSWERS = {
    400: "the job cannot run: unknown renderer, wrong params, no scene (InvalidJob, ...)",
    401: "no token, a wrong or revoked one, or an ended web session (AuthError)",
    403: "the token's role may not do this: a slave token, an artist on another's job, a "
    "web session's missing CSRF token, a file refused (Forbidden)",
    404: "no such job (JobNotFound), task, computer, pool or file (NotFound)",
    409: "the current state refuses it: a running job deleted, a pool that exists (Conflict)",
    413: "the body is over the master's max_request_bytes (RequestTooLarge)",
    422: "a parameter or field is out of its range or malformed (InvalidRequest)",
    429: "the caller holds as many as one caller may (an artist's live streams): ask again "
    "after Retry-After (TooManyRequests)",
    503: "the store is busy or cannot be reached: ask again after Retry-After (StoreBusy)",
}
#: The error answers of every route that needs a token and reads the store.
AUTHED = (401, 403, 422, 503)


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers *statuses* as a route's ``responses``, each with its ErrorBody."""
    return {
        status: {"model": ErrorBody, "description": ERROR_ANSWERS[status]} for status in statuses
    }


#: Methods that change state: with a session cookie they need the X-CSRF-Token header.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Master:
    """The parts of the master the API uses, and the helpers its routers share."""

    store: Store
    dispatcher: Dispatcher | None
    config: Config
    tokens: TokenBook
    sessions: Sessions
    changes: JobChanges
    #: The frame grids read once per change of their job (GET /jobs/ID/frames).
    frame_grids: FrameGrids = field(default_factory=FrameGrids)
    #: The encoded answers of GET /jobs, made once per change of the store.
    job_pages: JobPages = field(default_factory=JobPages)
    #: Slave heartbeats answered since the master started (GET /farm; counted on the event
    #: loop, where the heartbeat route runs).
    heartbeats: int = 0

    def wake(self) -> None:
        """The store changed in a way the dispatcher must see now."""
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def kill(self, dispatches: list[Dispatch]) -> None:
        if self.dispatcher is not None:
            self.dispatcher.kill(dispatches)

    def changed(self, job_id: int) -> None:
        """After a write to job *job_id*: the live stream sends it, the dispatcher looks again."""
        self.changes.note(job_id)
        self.wake()

    def slots(self) -> int:
        return self.dispatcher.slots_online() if self.dispatcher is not None else 0

    def eta_basis(self) -> object:
        """What the ETAs of a list depend on besides the store: the dispatcher's view of the
        online computers and slots, the object usable_slots() counts from.  Its private
        attribute, read here only: the dispatcher replaces the view (never changes it) at each
        chores round, so a list kept with it is given again only while its ETAs hold."""
        return getattr(self.dispatcher, "_online", None)

    def job_out(self, job: Job) -> dict[str, Any]:
        """A job as JSON; its ETA counts the online slots that can run it.

        Only a job with timed tasks and tasks left has an ETA that depends on the slots, so
        only those ask the dispatcher (a list of 10,000 jobs would otherwise ask 10,000 times).
        """
        dispatcher = self.dispatcher
        counts = job.counts
        needs_slots = dispatcher is not None and job.timed_tasks and counts.queued + counts.running
        return job_dict(job, dispatcher.usable_slots(job) if needs_slots else 0)

    def job_listed(self, job: Job) -> dict[str, Any]:
        """A job in a list: without its env and params, which may be large (a listing of
        10,000 jobs of 1 MiB each was 10 GB); GET /jobs/ID has them."""
        out = self.job_out(job)
        del out["env"], out["params"], out["notify"]
        return out

    def job_shown(self, job: Job, who: Identity) -> dict[str, Any]:
        """A job for *who*: another artist's job shows its env's names, not their values (a
        job's env may hold a licence server's password), and not whom it mails."""
        out = self.job_out(job)
        if not who.admin and job.spec.owner != who.name:
            out["env"] = dict.fromkeys(job.spec.env, HIDDEN)
            if out["notify"].get("email"):  # a colleague's mail recipients are theirs
                out["notify"] = {**out["notify"], "email": [HIDDEN]}
        return out

    def job(self, job_id: int) -> Job:
        """The stored job *job_id*; JobNotFound (a NotFound the client names) if none."""
        try:
            return self.store.get_job(job_id)
        except NotFound as exc:
            raise JobNotFound(str(exc)) from None

    def own(self, who: Identity, job_id: int) -> None:
        """Artists control only their own jobs; admins control all."""
        owner = self.job(job_id).spec.owner
        if not who.admin and owner != who.name:
            raise Forbidden(
                f"job {job_id} belongs to {owner!r}: {who.name}'s artist token may not change it"
            )

    def online_names(self) -> set[str]:
        return self.dispatcher.online_computers() if self.dispatcher is not None else set()

    def computer_out(self, computer: Computer) -> dict[str, Any]:
        running = self.dispatcher.running_by_computer() if self.dispatcher else {}
        return computer_dict(
            computer, computer.name in self.online_names(), running.get(computer.name, [])
        )


async def master(request: Request) -> Master:
    return request.app.state.master


MasterDep = Annotated[Master, Depends(master)]


# -- who is calling -------------------------------------------------------------------------------


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, None without one."""
    scheme, _, given = (authorization or "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else None


async def identified(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Identity:
    """The caller (:func:`caller`).  This and the other dependencies of every route are
    ``async``: they only read memory (and stat the tokens file), and FastAPI runs a plain
    ``def`` dependency in a worker thread, one hop each; a slave heartbeat cost the master
    twice the CPU with them (1.1 ms against 0.53, on this machine)."""
    return caller(request, authorization)


def caller(request: Request, authorization: str | None) -> Identity:
    """The caller: a known bearer token (constant-time compare), or else a live session cookie
    whose token is still valid; 401 otherwise.  A state-changing request authenticated by the
    cookie must carry the session's X-CSRF-Token (403): a page of another site can make the
    browser send the cookie, but cannot read the token."""
    m: Master = request.app.state.master
    token = bearer_token(authorization)
    if token is not None or authorization:
        identity = m.tokens.identify(token or "")
        if identity is None:
            raise AuthError(
                "missing or wrong API token: set DRQUEUE_TOKEN to a token of this master"
            )
        return identity
    cookie = request.cookies.get(COOKIE)
    session = m.sessions.get(cookie)
    identity = m.tokens.identify_digest(session.token_digest) if session else None
    if identity is None:
        if session is not None:
            m.sessions.close(cookie)  # its token was revoked or rotated
        if cookie:
            raise AuthError("your session ended (expired, logged out, or the master restarted)")
        raise AuthError("missing or wrong API token: set DRQUEUE_TOKEN to a token of this master")
    assert session is not None
    if request.method in WRITES and not session.csrf_matches(request.headers.get("x-csrf-token")):
        raise Forbidden("missing or wrong CSRF token: reload the page")
    request.state.session = session
    return identity


def current_session(request: Request) -> Session | None:
    """The session that authenticated this request (after :func:`identified`), or None."""
    return getattr(request.state, "session", None)


async def authorised(identity: Annotated[Identity, Depends(identified)]) -> Identity:
    """An admin or artist token; a slave token is refused (403) here, so that every route but
    the two a slave needs (see :func:`slave_or_admin`) is closed to it, new routes included."""
    if identity.slave:
        raise slave_refused(identity)
    return identity


def slave_refused(identity: Identity) -> Forbidden:
    return Forbidden(
        f"{identity.name}: a slave token may only heartbeat and fetch the engine connection "
        "file: use an artist or admin token"
    )


async def slave_or_admin(identity: Annotated[Identity, Depends(identified)]) -> Identity:
    """Slave and admin tokens: the slave heartbeat and the engine connection file."""
    if not (identity.slave or identity.admin):
        raise Forbidden(
            f"{identity.name}'s {identity.role} token may not do this: it needs a slave or "
            "admin token"
        )
    return identity


async def admin_only(identity: Annotated[Identity, Depends(authorised)]) -> Identity:
    """Admin tokens only: computers, pools and the farm's secrets."""
    if not identity.admin:
        raise Forbidden(
            f"{identity.name}'s {identity.role} token may not do this: it needs an admin token"
        )
    return identity


Auth = Annotated[Identity, Depends(authorised)]
Admin = Annotated[Identity, Depends(admin_only)]
SlaveOrAdmin = Annotated[Identity, Depends(slave_or_admin)]
