"""The far ends of mail and webhooks, real and on loopback, for the notification tests.

- :class:`MailBox`: aiosmtpd, a real SMTP server, on a port of its own that it can leave and
  take again (a refused server, then one that answers), with a login;
- :class:`SilentServer`: accepts connections and never answers (an SMTP server that hangs);
- :class:`HookServer`: stdlib ``http.server`` in a thread that checks each POST's signature the
  way docs/operations.md tells a receiver to (:func:`verified_body`), and answers 500 to the
  first N tries of each delivery to a path in *failing* before 200.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

#: Seconds a receiver accepts a POST's timestamp away from its own clock (the replay window).
REPLAY_WINDOW = 300


def verified_body(secret: bytes, headers: Any, body: bytes, now: float | None = None) -> dict:
    """The JSON of a webhook POST whose signature and timestamp check out; ValueError if not.
    (The receiver of docs/operations.md, "Webhooks", word for word.)"""
    timestamp = headers["X-DrQueue-Timestamp"]
    if abs((now or time.time()) - int(timestamp)) > REPLAY_WINDOW:
        raise ValueError("stale or future timestamp: a replay?")
    expected = (
        "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )
    if not hmac.compare_digest(expected, headers["X-DrQueue-Signature"]):
        raise ValueError("bad signature")
    return json.loads(body)


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    @property
    def attachments(self) -> list[tuple[str, str, bytes]]:
        return [
            (part.get_filename(), part.get_content_type(), part.get_content())
            for part in self.message.iter_attachments()
        ]


class _Handler:
    def __init__(self, box: MailBox):
        self.box = box

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.box.lock:
            self.box.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


class MailBox:
    """aiosmtpd on 127.0.0.1:*port*, asking for the login *user*/*password*."""

    def __init__(self, port: int, user: str, password: str):
        self.port = port
        self.user, self.password = user, password
        self.mails: list[Mail] = []
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok)

    def start(self) -> None:
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
            auth_required=True,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def about(self, words: str) -> list[Mail]:
        with self.lock:
            return [mail for mail in self.mails if words in mail.subject]


class SilentServer:
    """Accepts every connection on 127.0.0.1:*port* and never says a word."""

    def __init__(self, port: int):
        self._socket = socket.create_server(("127.0.0.1", port))
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            self._held.append(conn)
            self.accepted += 1

    def stop(self) -> None:
        self._socket.close()
        for conn in self._held:
            conn.close()
        self._thread.join(5)


@dataclass
class Post:
    path: str
    body: dict | None
    error: str | None


class HookServer:
    """A webhook receiver on 127.0.0.1: every POST is recorded, checked with *secret*; a path
    in *failing* answers 500 to the first that many tries of each delivery (the
    X-DrQueue-Delivery header), then 200."""

    def __init__(self, secret: bytes, failing: dict[str, int] | None = None):
        self.secret = secret
        self.failing = dict(failing or {})
        self.tried: dict[tuple[str, str | None], int] = {}
        self.posts: list[Post] = []
        self.lock = threading.Lock()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    data, error = verified_body(hooks.secret, self.headers, body), None
                except (KeyError, ValueError) as exc:
                    data, error = None, str(exc)
                path = urllib.parse.urlsplit(self.path).path
                with hooks.lock:
                    hooks.posts.append(Post(path, data, error))
                    delivery = (path, self.headers.get("X-DrQueue-Delivery"))
                    tried = hooks.tried[delivery] = hooks.tried.get(delivery, 0) + 1
                    left = tried <= hooks.failing.get(path, 0)
                status = 401 if error else 500 if left else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path: str, event: str | None = None, job_id: int | None = None) -> list:
        with self.lock:
            return [
                post
                for post in self.posts
                if post.path == path
                and (event is None or (post.body and post.body["event"] == event))
                and (job_id is None or (post.body and post.body["job_id"] == job_id))
            ]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
