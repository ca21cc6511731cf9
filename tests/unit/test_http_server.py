"""The master's HTTP server closes a connection whose request headers are late (a slowloris
once held 20,000 of the master's sockets), and still serves honest keep-alive clients."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from fastapi import FastAPI

from drqueue.master import http_server


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(http_server, "HEADER_SECONDS", 0.5)
    app = FastAPI()

    @app.get("/h")
    def h() -> dict:
        return {"ok": True}

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = http_server.api_server(app, "127.0.0.1", port, 100)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(100) == b""
    except TimeoutError:
        return False


def test_a_connection_trickling_its_headers_is_closed(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET /h HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        assert closed_within(sock, 10)


def test_a_connection_that_sends_nothing_is_closed(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        assert closed_within(sock, 10)


def test_an_honest_client_is_served_on_one_connection_across_the_deadline(server):
    with httpx.Client(base_url=f"http://127.0.0.1:{server}") as client:
        assert client.get("/h").json() == {"ok": True}
        assert client.get("/h").json() == {"ok": True}
        time.sleep(0.8)  # past the header deadline: a closed idle connection is reopened
        assert client.get("/h").json() == {"ok": True}


def test_the_soft_open_file_limit_is_raised_to_the_hard_limit():
    resource = pytest.importorskip("resource")
    http_server.raise_open_file_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == hard
