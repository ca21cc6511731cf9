"""Web login: a token (or a one-time code) for a session cookie, who the session is, logout, and
one-time login links.  The sessions themselves are :mod:`drqueue.master.sessions`; how a request
is authenticated by one (and its CSRF check) is :func:`drqueue.master.api.deps.identified`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from drqueue.api_types import LoginLink, SessionInfo
from drqueue.errors import AuthError
from drqueue.master.api.deps import (
    AUTHED,
    Admin,
    Auth,
    MasterDep,
    answers,
    bearer_token,
    current_session,
    slave_refused,
)
from drqueue.master.api.shapes import JSONBytesResponse
from drqueue.master.sessions import CODE_SECONDS, COOKIE, Session
from drqueue.master.tokens import token_digest

router = APIRouter(
    prefix="/api/v1", default_response_class=JSONBytesResponse, responses=answers(*AUTHED)
)


class LoginIn(BaseModel):
    """A token, or the code of a one-time login link; with neither, the bearer token is used."""

    model_config = ConfigDict(extra="forbid", strict=True)
    token: str | None = Field(None, max_length=1000)
    code: str | None = Field(None, max_length=200)


def session_out(session: Session) -> dict[str, Any]:
    return {"name": session.name, "role": session.role, "csrf": session.csrf}


@router.post("/session", response_model=SessionInfo, responses=answers(413))
def login(
    body: LoginIn,
    request: Request,
    response: Response,
    m: MasterDep,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Open a session: 200 {name, role, csrf} and the HttpOnly, SameSite=Strict cookie
    drqueue_session (Secure under TLS).  A wrong token or a used or expired code is 401, a
    slave token 403.  Any session the browser had is ended: every login gets a new id."""
    if body.code is not None:
        digest = m.sessions.redeem(body.code)
        identity = m.tokens.identify_digest(digest) if digest else None
        if identity is None:
            raise AuthError("this login link was used already or has expired: ask for a new one")
    else:
        token = body.token if body.token is not None else bearer_token(authorization)
        identity = m.tokens.identify(token or "")
        if identity is None:
            raise AuthError("wrong token: paste a token of this master (drqueue token create)")
        digest = token_digest(token or "")
    if identity.slave:
        raise slave_refused(identity)
    m.sessions.close(request.cookies.get(COOKIE))
    session_id, session = m.sessions.open(identity.name, identity.role, digest)
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        path="/",
        secure=bool(m.config.tls_cert),
    )
    return session_out(session)


@router.get("/session", response_model=SessionInfo)
def whoami(request: Request, _: Auth) -> dict[str, Any]:
    """The session of the cookie sent: {name, role, csrf}; 401 without one."""
    session = current_session(request)
    if session is None:
        raise AuthError("no web session: log in with POST /api/v1/session")
    return session_out(session)


@router.delete(
    "/session", status_code=204, responses={204: {"description": "the session is ended"}}
)
def logout(request: Request, _: Auth, m: MasterDep) -> Response:
    """End the session of the cookie sent (it is refused from now on) and clear the cookie."""
    if current_session(request) is not None:
        m.sessions.close(request.cookies.get(COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=bool(m.config.tls_cert)
    )
    return response


@router.post("/session/link", status_code=201, response_model=LoginLink)
def login_link(request: Request, _: Admin, m: MasterDep) -> dict[str, Any]:
    """A one-time login link: its code opens one session as the master's admin, within
    CODE_SECONDS (``drqueue up`` prints one)."""
    code = m.sessions.new_code(m.tokens.admin_digest())
    base = str(request.base_url).rstrip("/")
    return {"url": f"{base}/login?code={code}", "expires_in": CODE_SECONDS}
