"""The SQLite store's file: private to its owner, and given back to the file system on demand.

The store holds every job's ``env``, so its file, WAL, shared-memory file and backups are mode
0600, and an existing store readable by others is tightened when it is opened.  After many jobs
are deleted, ``drqueue store compact`` shrinks the file and the WAL, and the WAL does not stay at
the size of the biggest transaction it ever held.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from drqueue.cli.main import cli
from drqueue.config import Config
from drqueue.models import JobSpec, split_frames
from drqueue.store.sqlite import WAL_LIMIT_BYTES, SQLiteStore


def mode(path: Path | str) -> int:
    return os.stat(path).st_mode & 0o777


def sizes(path: Path) -> tuple[int, int]:
    """The bytes of the store file and of its WAL."""
    wal = Path(f"{path}-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


@pytest.fixture()
def open_umask():
    """A umask that lets everyone read new files, as many login shells have."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_store_its_wal_and_shm_and_its_backups_are_owner_only(tmp_path, open_umask):
    path = tmp_path / "db" / "drqueue.sqlite"
    store = SQLiteStore(path)
    store.create_job(
        JobSpec("shell", 1, 2, env={"API_KEY": "secret"}, params={"cmd": "true"}),
        split_frames(1, 2),
    )
    for name in (path, f"{path}-wal", f"{path}-shm"):
        assert mode(name) == 0o600, name
    store.backup(str(tmp_path / "backup.sqlite"))
    assert mode(tmp_path / "backup.sqlite") == 0o600
    store.close()


def test_an_existing_world_readable_store_is_tightened_when_opened(tmp_path, open_umask):
    path = tmp_path / "drqueue.sqlite"
    first = SQLiteStore(path)
    first.create_job(JobSpec("shell", 1, 1, params={"cmd": "true"}), split_frames(1, 1))
    # Keep a connection open so the WAL and SHM files stay, then loosen all three.
    for name in (path, f"{path}-wal", f"{path}-shm"):
        os.chmod(name, 0o644)
    store = SQLiteStore(path)
    for name in (path, f"{path}-wal", f"{path}-shm"):
        assert mode(name) == 0o600, name
    assert len(store.list_jobs()) == 1  # nothing stored is lost
    store.close()
    first.close()


def test_store_compact_shrinks_the_file_and_the_wal_after_many_deletes(tmp_path, monkeypatch):
    monkeypatch.setenv("DRQUEUE_ROOT", str(tmp_path))
    config = Config(root=tmp_path)
    path = config.db_dir / "drqueue.sqlite"
    store = SQLiteStore(path)
    jobs = [
        store.create_job(JobSpec("shell", 1, 5000, params={"cmd": "true"}), split_frames(1, 5000))
        for _ in range(20)
    ]
    kept = store.create_job(JobSpec("shell", 1, 3, params={"cmd": "true"}), split_frames(1, 3))
    for job_id in jobs:
        store.delete_job(job_id)
    file_before, wal_before = sizes(path)
    assert file_before > 5_000_000

    result = CliRunner().invoke(cli, ["store", "compact"])
    assert result.exit_code == 0, result.output
    assert "store compacted" in result.output
    file_after, wal_after = sizes(path)
    assert file_after < file_before / 10, (file_before, file_after)
    assert wal_after == 0, wal_after
    assert [job.id for job in store.list_jobs()] == [kept]  # nothing kept is lost
    assert store.get_job(kept).counts.total == 3
    store.close()


def test_the_wal_shrinks_back_after_a_big_job_is_deleted(tmp_path):
    """Without compact: a job big enough to grow the WAL past its limit is submitted and
    deleted; after the next write the WAL is back within WAL_LIMIT_BYTES."""
    path = tmp_path / "drqueue.sqlite"
    store = SQLiteStore(path)
    frames = 200_000
    job_id = store.create_job(
        JobSpec("shell", 1, frames, params={"cmd": "true"}), split_frames(1, frames)
    )
    store.delete_job(job_id)
    assert sizes(path)[1] > WAL_LIMIT_BYTES  # the transactions did grow it
    store.add_event("test", "one more write")
    assert sizes(path)[1] <= WAL_LIMIT_BYTES
    # Another connection (the API's threads have their own) reads the same, intact store.
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 0
    store.close()
