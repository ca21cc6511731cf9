"""A MongoDB-wire server for tests: SecantusDB (``secantusd-py``) on a free loopback port.

SecantusDB (PyPI ``secantusdb``, a test-only dependency) is an embeddable server on WiredTiger
that speaks MongoDB's wire protocol; it is *not* ``mongod``.  It reports itself as a
one-member replica set and runs multi-document transactions.  The tests that take a MongoDB
store start one of these per test module, as a real process, and stop or restart it to play
a database that goes away.  When ``DRQUEUE_TEST_MONGO_URL`` is set, the store tests run against
that server too (see :func:`mongo_urls`); nothing starts a ``mongod`` by itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from farm import free_port_block, wait_for

#: The server's program, installed beside this Python by `pip install secantusdb`.
PROGRAM = "secantusd-py"


def program() -> str | None:
    """The path of secantusd-py in this Python's environment (or on PATH), or None."""
    beside = Path(sys.executable).with_name(PROGRAM)
    return str(beside) if beside.exists() else shutil.which(PROGRAM)


class WireServer:
    """One secantusd-py process on 127.0.0.1, its data under *root*; restartable on the same
    port and data, as a database server that went away and came back."""

    def __init__(self, root: Path, *, auth: bool = False):
        self.root = root
        self.data = root / "data"
        self.port = free_port_block(1)
        self.auth = auth
        self.process: subprocess.Popen | None = None
        self.log = root / "server.log"

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def database_url(self, name: str | None = None) -> str:
        """The URL of a new database of its own (each test store gets a fresh one)."""
        return f"mongodb://127.0.0.1:{self.port}/{name or 'drq_' + uuid.uuid4().hex[:12]}"

    def start(self) -> None:
        exe = program()
        if exe is None:
            raise RuntimeError(f"{PROGRAM} is not installed: pip install secantusdb")
        self.root.mkdir(parents=True, exist_ok=True)
        args = [exe, "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--storage-path", str(self.data), "--log-level", "WARNING"]
        if self.auth:
            args.append("--auth")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_for(self._answers, timeout=60, what=f"{PROGRAM} on port {self.port}")

    def _answers(self) -> bool:
        import pymongo

        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{PROGRAM} exited: {self.log.read_text()[-2000:]}")
        client = pymongo.MongoClient(self.url, serverSelectionTimeoutMS=500)
        try:
            client.admin.command("ping")
            return True
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_user(self, user: str, password: str) -> None:
        """Add a user with every right, then restart with --auth (how SecantusDB provisions)."""
        import pymongo

        client = pymongo.MongoClient(self.url, serverSelectionTimeoutMS=5000)
        try:
            client.admin.command("createUser", user, pwd=password, roles=["root"])
        finally:
            client.close()
        self.auth = True
        self.restart()


def mongo_urls() -> list[str]:
    """Other MongoDB servers to run the store tests against: DRQUEUE_TEST_MONGO_URL, if set
    (a database name in it is replaced by a fresh one per test)."""
    url = os.environ.get("DRQUEUE_TEST_MONGO_URL")
    return [url] if url else []
