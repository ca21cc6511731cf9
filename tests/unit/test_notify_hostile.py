"""Mail and webhooks against hostile input and hostile servers (the hostile review of #13).

- A job name holding an RFC 2047 encoded word with CR LF inside was decoded by the email
  package into headers of its own (Reply-To, a second From, an HTML body) in the farm's mail.
- A webhook receiver answering a body that never ends grew the master by gigabytes; one
  answering a byte every 2 s held the webhook sender for ever.
- An SMTP server answering an endless multi-line greeting did the same to the mail sender, and
  one answering a line every few seconds held it for ever.
- A 550 refusal was retried for a day, an event each time.

Real servers on loopback: aiosmtpd, and raw sockets for the servers no library would write.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pytest
from farm import free_port_block
from notify_servers import MailBox
from test_notify_rules import settings_of

from drqueue.master.notify import SendFailed, SendRefused, post_webhook, send_mail


class RawServer:
    """A TCP server on loopback that runs *talk(connection)* for each connection."""

    def __init__(self, talk):
        self.talk = talk
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self._socket.settimeout(0.2)
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                continue
            threading.Thread(target=self._run, args=(connection,), daemon=True).start()

    def _run(self, connection: socket.socket) -> None:
        try:
            self.talk(connection, self._stop)
        except OSError:
            pass
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._socket.close()


def endless_chunks(connection: socket.socket, stop: threading.Event) -> None:
    connection.recv(65536)
    connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    while not stop.is_set():
        connection.sendall(chunk)


def trickled_body(connection: socket.socket, stop: threading.Event) -> None:
    connection.recv(65536)
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    while not stop.wait(1.0):
        connection.sendall(b"x")


def endless_greeting(connection: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        connection.sendall(b"220-hello\r\n" * 1000)


def trickled_greeting(connection: socket.socket, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        connection.sendall(b"220-still here\r\n")


def finishes(call, seconds: float = 60.0):
    """What *call()* returns or raises, from a thread given *seconds* (generous: it bounds a
    failure, which would otherwise hang the suite)."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(("returned", call()))
        except Exception as exc:  # noqa: BLE001 (handed to the test)
            outcome.append(("raised", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still running after {seconds} s"
    return outcome[0]


def mail_settings(tmp_path: Path, port: int, timeout: float = 2.0):
    return settings_of(
        tmp_path,
        f'smtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_tls = "none"\n'
        f"notify_timeout = {timeout}\n",
    )


MAIL = {"to": ["ann@example.com"], "body": "frames done", "subject": "job 1 finished"}


def test_an_encoded_word_in_a_job_name_writes_no_header_of_its_own(tmp_path):
    box = MailBox(free_port_block(1), "u", "p")
    box.start()
    try:
        settings = settings_of(
            tmp_path,
            f'smtp_host = "127.0.0.1"\nsmtp_port = {box.port}\nsmtp_tls = "none"\n'
            'smtp_user = "u"\n'
            f'smtp_password_file = "{_secret(tmp_path)}"\n',
        )
        name = (
            "=?utf-8?q?Render_done=0D=0AReply-To:_it@evil.example=0D=0A"
            "Content-Type:_text/html=0D=0A=0D=0A<a_href=3Dhttp://evil.example>x</a>?="
        )
        send_mail(settings, {**MAIL, "subject": f"[DrQueue] {name} (job 1) finished"}, None)
        (mail,) = box.mails
        assert "Reply-To" not in mail.message
        assert mail.message.get_content_type() == "text/plain"
        assert "Reply-To:_it@evil.example" in mail.subject  # shown as written
    finally:
        box.stop()


def _secret(tmp_path: Path) -> str:
    path = tmp_path / "smtp-password"
    path.write_text("p")
    path.chmod(0o600)
    return str(path)


@pytest.mark.parametrize("talk", [endless_chunks, trickled_body])
def test_a_webhook_answer_is_never_read_past_its_status(tmp_path, talk):
    server = RawServer(talk)
    try:
        settings = settings_of(tmp_path, "notify_timeout = 2\n")
        with httpx.Client(timeout=2.0) as client:
            payload = {"url": f"http://127.0.0.1:{server.port}/in", "body": "{}", "event": "x"}
            kind, value = finishes(lambda: post_webhook(settings, client, payload, "k"))
        assert (kind, value) == ("returned", "answered HTTP 200")
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("talk", "said"), [(endless_greeting, "more than 500 lines"), (trickled_greeting, "")]
)
def test_an_smtp_server_that_never_stops_answering_fails_the_attempt(tmp_path, talk, said):
    server = RawServer(talk)
    try:
        kind, error = finishes(lambda: send_mail(mail_settings(tmp_path, server.port), MAIL, None))
        assert kind == "raised" and type(error) is SendFailed, error
        assert said in str(error)
    finally:
        server.stop()


def test_a_mail_refused_for_good_is_given_up_not_retried(tmp_path):
    def refusing(connection: socket.socket, stop: threading.Event) -> None:
        connection.sendall(b"220 mx\r\n")
        reader = connection.makefile("rb")
        for line in reader:
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                connection.sendall(b"250 mx\r\n")
            elif verb == b"MAIL":
                connection.sendall(b"250 ok\r\n")
            elif verb == b"RCPT":
                connection.sendall(b"550 no such user here\r\n")
            elif verb in (b"RSET", b"NOOP"):
                connection.sendall(b"250 ok\r\n")
            elif verb == b"QUIT":
                connection.sendall(b"221 bye\r\n")
                return

    server = RawServer(refusing)
    try:
        kind, error = finishes(lambda: send_mail(mail_settings(tmp_path, server.port), MAIL, None))
        assert kind == "raised" and isinstance(error, SendRefused), error
        assert "550" in str(error)
    finally:
        server.stop()
