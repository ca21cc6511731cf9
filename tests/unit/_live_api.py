"""The API served over real HTTP on a free loopback port, for the CLI and client tests.

:func:`live_api` runs uvicorn in a thread on ``create_app`` over a real SQLite store, with no
dispatcher (nothing is dispatched; tests read what was stored).  :func:`cli_env` is the
environment that points ``drqueue`` (and :class:`drqueue.Client`) at it, as a user's shell would.
Import as ``from _live_api import ...``: pytest puts tests/unit on sys.path.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from drqueue.config import Config
from drqueue.master.api import create_app
from drqueue.master.http_server import APIServer
from drqueue.store.sqlite import SQLiteStore

#: The admin token of the live API.
TOKEN = "cli-test-token"


@dataclass
class LiveAPI:
    url: str
    store: SQLiteStore
    root: Path
    app: FastAPI

    def env(self, **extra: str) -> dict[str, str]:
        """DRQUEUE_* for a CLI run against this API (CliRunner sets them for the run only)."""
        return {
            "DRQUEUE_MASTER": self.url,
            "DRQUEUE_TOKEN": TOKEN,
            "DRQUEUE_ROOT": str(self.root),
            **extra,
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def live_api(
    tmp_path: Path, store: SQLiteStore | None = None, *, port: int | None = None, **settings: Any
) -> Iterator[LiveAPI]:
    """The API on a free port (or *port*: a master restarted) over *store* (the SQLite store
    in *tmp_path* by default), with the Config *settings*, served as the master serves it
    (:class:`APIServer`: open live streams end at shutdown)."""
    store = store or SQLiteStore(tmp_path / "db.sqlite")
    app = create_app(store, None, Config(root=tmp_path, **settings), TOKEN)
    port = port or _free_port()
    server = APIServer(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield LiveAPI(f"http://127.0.0.1:{port}", store, tmp_path, app)
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
