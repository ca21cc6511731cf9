"""The master's HTTP API (FastAPI): the only way clients reach the farm.

Its routes live in one router per part of the farm, each a module of this package: ``farm``
(health, counters, renderers, what slaves ask), ``jobs``, ``tasks``, ``events``, ``computers``
(and pools), ``session`` (web login) and ``stream`` (the live stream).  ``deps`` holds what they
share (who is calling, the master's parts), ``shapes`` how each object reads as JSON, and
``web`` serves the web UI's page shell and assets, which need no token.

Every API route but ``/api/v1/health`` and ``/openapi.json`` needs ``Authorization: Bearer
<token>`` or the cookie of a web session (``POST /api/v1/session``; with the cookie, a request
that changes state also needs ``X-CSRF-Token``); tokens are compared in constant time.  Errors
are JSON ``{"detail": "one line", "error": "Kind"}`` with a 4xx status.  The OpenAPI
description is served, without a token, at ``/openapi.json``: it describes the routes and holds
no data.  There is no ``/docs`` or ``/redoc`` page: FastAPI's pages load their scripts from a
CDN, so they would be blank on a farm without internet, and no package we depend on ships the
assets.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import drqueue
from drqueue.config import Config
from drqueue.errors import DrQueueError
from drqueue.master.api import computers, events, farm, jobs, session, stream, tasks
from drqueue.master.api.deps import MAX_PAGE, Master
from drqueue.master.api.files import LOG_CHUNK_BYTES
from drqueue.master.api.jobs import validate_job
from drqueue.master.api.shapes import JSONBytesResponse, job_dict
from drqueue.master.api.web import WebUI
from drqueue.master.body_limit import BodyLimit
from drqueue.master.changes import JobChanges
from drqueue.master.dispatcher import Dispatcher
from drqueue.master.fanout import Fanout
from drqueue.master.sessions import Sessions
from drqueue.master.tokens import TokenBook
from drqueue.models import MAX_ID, validation_message
from drqueue.store.base import Store

__all__ = ["LOG_CHUNK_BYTES", "MAX_PAGE", "create_app", "job_dict", "validate_job"]

#: Where the API's routes live, under /api/v1, one router per part of the farm.
ROUTERS = (farm, jobs, tasks, events, computers, session, stream)


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
    # The dispatcher notes the jobs it changes from its start; the API notes into the same set
    # (a test's stand-in dispatcher may have none: then the API keeps its own).
    changes = getattr(dispatcher, "changed_jobs", None)
    app.state.master = master = Master(
        store=store,
        dispatcher=dispatcher,
        config=config,
        tokens=TokenBook(config, token),
        sessions=Sessions(idle_seconds=config.session_hours * 3600),
        changes=changes if isinstance(changes, JobChanges) else JobChanges(),
    )
    app.state.tokens = master.tokens
    app.state.fanout = Fanout(master)

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
    app.add_middleware(WebUI)
    for part in ROUTERS:
        # The routes themselves, not include_router(): this FastAPI keeps an included router
        # as one opaque entry of app.routes, and the tests that hold every route to the token
        # rules walk app.routes.
        app.router.routes.extend(part.router.routes)
    return app
