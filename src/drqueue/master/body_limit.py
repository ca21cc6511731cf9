"""A cap on the size of HTTP request bodies: a larger one gets 413 before it is in memory.

:class:`BodyLimit` is an ASGI middleware with one parameter, ``max_bytes`` (the config key
``max_request_bytes``, 1 MiB by default).  A request whose ``Content-Length`` is over it is
answered 413 at once, unread.  A body without one (``Transfer-Encoding: chunked``) is counted
as it streams in: the chunk that goes over makes the app's read fail, and the answer becomes
413 whatever the app made of the failed read.  Starlette and uvicorn offer no such cap.
"""

from __future__ import annotations

from typing import Any

import orjson

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyTooLarge(Exception):
    """Raised inside the app's read of a streamed body that went over the limit."""


class BodyLimit:
    """Refuse request bodies over *max_bytes* with 413 and the API's one-line error JSON."""

    def __init__(self, app: Any, *, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _answer(self, size: str) -> tuple[Message, Message]:
        body = orjson.dumps(
            {
                "detail": f"request body {size} is over the master's limit of "
                f"{self.max_bytes} bytes (max_request_bytes)",
                "error": "RequestTooLarge",
            }
        )
        start = {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
        return start, {"type": "http.response.body", "body": body}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            for message in self._answer(f"of {int(declared)} bytes"):
                await send(message)
            return
        received = 0
        too_large = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large:
                return  # the app's answer to its failed read; ours is sent below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not too_large:  # whatever the app raised over the failed read, the answer is 413
                raise
        if too_large and not started:
            for message in self._answer("of more bytes"):
                await send(message)
