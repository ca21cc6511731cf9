"""Web sessions and one-time login codes, in the master's memory.

A browser logs in once with a token (``POST /api/v1/session``) and then carries the cookie
``drqueue_session``; the API takes that cookie in place of ``Authorization: Bearer``.  What is
kept, and why:

- **Sessions live in memory only.**  A master restart logs every browser out (the UI shows its
  login page again); nothing about a session is ever written to disk.
- **A session is tied to the token that opened it** (its SHA-256): revoking or rotating that
  token ends the session at its next request, as it ends the token's own use.
- **Ids and CSRF tokens come from** :mod:`secrets` (256 bits).  The table is keyed by the
  SHA-256 of the id, so a lookup's timing says nothing about a valid id; CSRF tokens are
  compared with :func:`hmac.compare_digest`.
- **Idle expiry**: a session unused for ``session_hours`` (config, default 12) is gone.  At most
  :data:`MAX_SESSIONS` are kept, at most :data:`MAX_SESSIONS_PER_TOKEN` of one token;
  beyond, the least recently used one (of that token) is dropped.
- **One-time login codes** (the link ``drqueue up`` prints): each works once, within
  :data:`CODE_SECONDS`, and logs in as the master's admin.  At most :data:`MAX_CODES` wait at
  once; a new one beyond drops the oldest.

Thread-safe: routes run on FastAPI's worker threads.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: The cookie that carries a session id.
COOKIE = "drqueue_session"
#: Seconds a one-time login code stays valid.
CODE_SECONDS = 600
#: The most sessions kept at once (the least recently used go first).
MAX_SESSIONS = 10_000
#: The most sessions one token may hold: its own least recently used go first, so one token
#: logging in without end pushes out only its own sessions, never another user's.
MAX_SESSIONS_PER_TOKEN = 100
#: The most one-time codes waiting at once (the oldest go first).
MAX_CODES = 100


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(slots=True)
class Session:
    """A logged-in browser: who it is, its CSRF token, and the token it logged in with."""

    name: str
    role: str
    csrf: str
    #: SHA-256 of the token that opened the session (see TokenBook.identify_digest).
    token_digest: str
    #: When it was last used (monotonic seconds).
    used_at: float

    def csrf_matches(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    """The master's sessions and login codes."""

    def __init__(self, *, idle_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._codes: OrderedDict[str, tuple[str, float]] = OrderedDict()  # key -> (digest, until)

    def open(self, name: str, role: str, token_digest: str) -> tuple[str, Session]:
        """A new session for *name* with *role*; returns (its id, the session)."""
        session_id = secrets.token_urlsafe(32)
        session = Session(name, role, secrets.token_urlsafe(32), token_digest, self._clock())
        with self._lock:
            self._drop_expired()
            same = [k for k, v in self._sessions.items() if v.token_digest == token_digest]
            for key in same[: max(0, len(same) - MAX_SESSIONS_PER_TOKEN + 1)]:
                del self._sessions[key]
            self._sessions[_key(session_id)] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of *session_id*, marked used now; None if unknown or expired."""
        if not session_id:
            return None
        key = _key(session_id)
        now = self._clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.used_at > self.idle_seconds:
                del self._sessions[key]
                return None
            session.used_at = now
            self._sessions.move_to_end(key)
            return session

    def close(self, session_id: str | None) -> None:
        """End a session (logout); an unknown id is ignored."""
        if session_id:
            with self._lock:
                self._sessions.pop(_key(session_id), None)

    def __len__(self) -> int:
        with self._lock:
            self._drop_expired()
            return len(self._sessions)

    def _drop_expired(self) -> None:
        cutoff = self._clock() - self.idle_seconds
        while self._sessions:
            key, oldest = next(iter(self._sessions.items()))
            if oldest.used_at >= cutoff:
                break
            del self._sessions[key]

    # -- one-time login codes --------------------------------------------------------------------

    def new_code(self, token_digest: str) -> str:
        """A code that opens one session as the token of *token_digest*, within CODE_SECONDS."""
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[_key(code)] = (token_digest, self._clock() + CODE_SECONDS)
            while len(self._codes) > MAX_CODES:
                self._codes.popitem(last=False)
        return code

    def redeem(self, code: str | None) -> str | None:
        """The token digest of a valid *code*, which is used up; None if unknown or expired."""
        if not code:
            return None
        with self._lock:
            found = self._codes.pop(_key(code), None)
        if found is None or self._clock() > found[1]:
            return None
        return found[0]
