"""How the master serves its API: uvicorn, with the guards an open port needs.

- **A deadline for request headers.** uvicorn waits for ever for a request's headers, so a
  client that opens thousands of connections and trickles a header line now and then
  (slowloris) held 20,000 sockets of the master, which then refused everyone, its own slaves'
  heartbeats included.  A connection whose headers have not all arrived HEADER_SECONDS after it
  opened, or after its last answer, is closed.
- **A cap on connections** (``api_max_connections``): beyond it uvicorn answers 503 at once.
- **The master's open-file limit raised** to the system's hard limit, so the cap is reached
  before the descriptors run out.
- **Live streams end first when the master stops.**  uvicorn waits for every open answer to
  end before it stops, and a stream (``GET /api/v1/stream``) never ends by itself: the server
  closes the app's fan-out first (:class:`APIServer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("drqueue.master")

#: Seconds a connection may take to send a request's headers (a whole request line and headers
#: from an honest client take milliseconds).
HEADER_SECONDS = 10.0


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request headers are late."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(HEADER_SECONDS, self._late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        waiting_for_headers = self.cycle is None or self.cycle.response_complete
        if waiting_for_headers and not self.transport.is_closing():
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # the headers are in: the app has the request

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's headers must come in time too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class APIServer(uvicorn.Server):
    """uvicorn's server, ending the app's live streams before it waits for open answers."""

    async def shutdown(self, sockets: Any = None) -> None:
        fanout = getattr(getattr(self.config.app, "state", None), "fanout", None)
        if fanout is not None:
            fanout.close()
        await super().shutdown(sockets=sockets)


def raise_open_file_limit() -> None:
    """Raise this process's soft limit of open files to its hard limit (POSIX)."""
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def bind_api(host: str, port: int) -> socket.socket:
    """The API's socket, bound before the master starts anything else, so a port in use is one
    line and the master's first words, not uvicorn's after a started controller.  It listens
    only once uvicorn serves it (asyncio's create_server calls listen): until then a client is
    refused at once, as before, rather than left waiting in the backlog."""
    import os

    from drqueue.errors import ConfigError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot serve the API on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot serve the API on {host}:{port}: "
            f"{os.strerror(exc.errno) if exc.errno else exc} (another master or "
            "program has the port? set api_port in drqueue.toml or --port)"
        ) from None
    return sock


def api_server(app: Any, host: str, port: int, max_connections: int, **ssl: Any) -> uvicorn.Server:
    """The uvicorn server of the master's API."""
    raise_open_file_limit()
    return APIServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            http=HeaderDeadlineProtocol,
            limit_concurrency=max_connections,
            log_level="warning",
            access_log=False,
            **ssl,
        )
    )
