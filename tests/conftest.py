import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# The desktop GUI's tests (pytest-qt) draw offscreen: no display is needed, and none is used.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from farm import FARM_STORES, two_slave_farm  # noqa: E402
from mongo_server import WireServer, mongo_urls  # noqa: E402

#: The store backends every contract test runs on: "mongo" is MongoDB over the wire (the test
#: server, with transactions), "mongo-notxn" the same without transactions (as on a
#: standalone mongod), "mongo-url" the server of DRQUEUE_TEST_MONGO_URL when it is set.
STORE_BACKENDS = ["sqlite", "memory", "mongo", "mongo-notxn"] + (
    ["mongo-url"] if mongo_urls() else []
)


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """A master with two one-slot slaves, shared by one test module."""
    farm = two_slave_farm(tmp_path_factory.mktemp("farm"))
    yield farm
    farm.stop()


#: Contract tests that are slow on the MongoDB test server: SecantusDB writes about 1,700
#: documents a second (a minute for a 100,000-task job, where SQLite takes 2 s).  Their MongoDB
#: variants are marked slow (`make test-slow` runs them); SQLite and memory run them always.
SLOW_ON_MONGO = {"test_a_100000_task_job", "test_a_job_of_100000_tasks_moves"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name, _, param = item.name.partition("[")
        if name in SLOW_ON_MONGO and "mongo" in param:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def wire_server(tmp_path_factory):
    """A MongoDB-wire server (SecantusDB) for the whole run; each store takes a database."""
    server = WireServer(tmp_path_factory.mktemp("mongo"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def store_settings(request):
    """``store_settings(store)``: the Farm settings of a new farm on *store* (one of
    FARM_STORES): none for SQLite (the master's file under the farm's root), or a database of
    its own on the session's wire server, which starts on first use."""

    def settings(store: str) -> dict[str, str]:
        if store == "sqlite":
            return {}
        if store == "mongo":
            return {"store": request.getfixturevalue("wire_server").database_url()}
        raise ValueError(f"no farm store {store!r}: one of {FARM_STORES}")

    return settings


def open_backend(name: str, tmp_path: Path, request) -> "Store":  # noqa: F821
    """A new, empty store of backend *name* (see STORE_BACKENDS)."""
    from drqueue.store.memory import MemoryStore
    from drqueue.store.sqlite import SQLiteStore

    if name == "memory":
        return MemoryStore()
    if name == "sqlite":
        return SQLiteStore(tmp_path / "db" / "drqueue.sqlite")
    from drqueue.store.mongo import MongoStore

    if name == "mongo-url":
        base = mongo_urls()[0].split("?")[0].rstrip("/")
        host = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
        import uuid

        return MongoStore(f"{host}/drq_{uuid.uuid4().hex[:12]}")
    server = request.getfixturevalue("wire_server")
    return MongoStore(server.database_url(), transactions=name == "mongo")


@pytest.fixture(params=STORE_BACKENDS)
def any_store(request, tmp_path):
    """A new, empty store of each backend in turn."""
    store = open_backend(request.param, tmp_path, request)
    yield store
    if hasattr(store, "_client"):
        store._client.drop_database(store.database)
    store.close()


def pytest_terminal_summary(terminalreporter, config):
    """Say where the web UI's and the desktop GUI's tests saved their screenshots, to be
    looked at (tests/e2e/test_web.py, tests/e2e/test_gui.py)."""
    for what, attribute in (("web UI", "web_screenshots"), ("desktop GUI", "gui_screenshots")):
        folder = getattr(config, attribute, None)
        if folder is not None:
            terminalreporter.write_line(f"{what} screenshots: {folder}")
