"""The API in-process, for unit tests of its routes: the real app over a real SQLite store.

:func:`in_process_api` gives a Starlette TestClient on ``create_app`` with no dispatcher (so
nothing is dispatched; the test writes to the store itself) and the admin token TOKEN, whose
header is AUTH.  Import it as ``from _api import ...``: pytest puts tests/unit on sys.path.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from drqueue.config import Config
from drqueue.master.api import create_app
from drqueue.store.sqlite import SQLiteStore

with warnings.catch_warnings():
    # Starlette deprecates its httpx-based TestClient; the tests need no other.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

#: The admin token of the in-process API.
TOKEN = "unit-test-token"
#: The header that authenticates a request with TOKEN.
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextlib.contextmanager
def in_process_api(tmp_path: Path, **settings: Any) -> Iterator[tuple[TestClient, SQLiteStore]]:
    """(http, store): a TestClient on the API over a new SQLite store in *tmp_path*, with the
    Config *settings* (root is *tmp_path*); both are closed on the way out."""
    store = SQLiteStore(tmp_path / "db.sqlite")
    http = TestClient(create_app(store, None, Config(root=tmp_path, **settings), TOKEN))
    try:
        yield http, store
    finally:
        http.close()
        store.close()
