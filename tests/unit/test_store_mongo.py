"""The MongoDB store's own machinery, over the wire (SecantusDB, tests/mongo_server.py): what
the contract suite (test_store.py) cannot say for every backend.

Bad input at start (an unreachable server, wrong credentials, a newer schema, a scheme the
master does not know) is one line and a non-zero exit from `drqueue master`, which refuses
to start and writes nothing to the database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pymongo
import pytest
from farm import free_port_block
from mongo_server import WireServer

from drqueue.errors import ConfigError, StoreError, StoreUnavailable
from drqueue.models import JobSpec, split_frames
from drqueue.store import SCHEMA_VERSION, open_store, shown_url
from drqueue.store.mongo import MongoStore


def master_refuses(tmp_path, url: str) -> str:
    """Run `drqueue master --store URL`; it must exit non-zero with one line on stderr."""
    port = free_port_block(21)
    env = {
        **os.environ,
        "DRQUEUE_ROOT": str(tmp_path / "root"),
        "DRQUEUE_API_PORT": str(port),
        "DRQUEUE_CONTROLLER_PORTS": f"{port + 1}-{port + 20}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "drqueue.cli.main", "master", "--store", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode != 0, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return errors[0]


def test_an_unreachable_server_is_one_line_and_the_master_refuses(tmp_path):
    port = free_port_block(1)
    line = master_refuses(
        tmp_path, f"mongodb://127.0.0.1:{port}/drqueue?serverSelectionTimeoutMS=500"
    )
    assert f"cannot reach the store's MongoDB at 127.0.0.1:{port}" in line


def test_an_unknown_scheme_is_one_line_and_the_master_refuses(tmp_path):
    line = master_refuses(tmp_path, "postgres://db/drqueue")
    assert "unknown store URL scheme 'postgres'" in line
    with pytest.raises(ConfigError):
        open_store("mysql://x")


def test_a_bad_mongodb_url_is_a_config_error():
    with pytest.raises(ConfigError, match="bad MongoDB URL"):
        MongoStore("mongodb://127.0.0.1:notaport/x")


def test_a_newer_schema_is_refused_and_left_as_it_was(wire_server, tmp_path):
    url = wire_server.database_url()
    raw = pymongo.MongoClient(wire_server.url)
    name = url.rsplit("/", 1)[1]
    raw[name].meta.insert_one({"_id": "schema", "version": SCHEMA_VERSION + 1})
    raw[name].jobs.insert_one({"_id": 7, "kept": True})
    try:
        line = master_refuses(tmp_path, url)
        assert f"schema version {SCHEMA_VERSION + 1}, newer than this DrQueue's" in line
        assert raw[name].meta.find_one({"_id": "schema"})["version"] == SCHEMA_VERSION + 1
        assert list(raw[name].jobs.find()) == [{"_id": 7, "kept": True}]
        assert "tasks" not in raw[name].list_collection_names()  # not even an index made
    finally:
        raw.drop_database(name)
        raw.close()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    server = WireServer(tmp_path_factory.mktemp("mongo-auth"))
    server.start()
    server.create_user("drq", "right-password")
    yield server
    server.stop()


def test_wrong_credentials_are_one_line_without_the_password(auth_server, tmp_path):
    host = f"127.0.0.1:{auth_server.port}"
    line = master_refuses(tmp_path, f"mongodb://drq:wrong-password@{host}/drqueue")
    assert f"MongoDB at {host} refused the store's credentials" in line
    assert "wrong-password" not in line


def test_no_credentials_for_a_server_that_needs_them_is_one_line(auth_server, tmp_path):
    line = master_refuses(tmp_path, f"mongodb://127.0.0.1:{auth_server.port}/drqueue")
    assert "needs a login" in line


def test_right_credentials_open_the_store(auth_server):
    store = MongoStore(
        f"mongodb://drq:right-password@127.0.0.1:{auth_server.port}/drqueue?authSource=admin"
    )
    try:
        job_id = store.create_job(JobSpec("shell", 1, 2), split_frames(1, 2, 1, 1))
        assert store.get_job(job_id).counts.queued == 2
    finally:
        store._client.drop_database("drqueue")
        store.close()


def test_the_password_never_shows():
    assert shown_url("mongodb://drq:s3cret@db1:27017,db2/drqueue?tls=true") == (
        "mongodb://drq:***@db1:27017,db2/drqueue?tls=true"
    )
    assert shown_url("sqlite:////srv/drqueue/db/drqueue.sqlite").endswith("drqueue.sqlite")


def test_a_server_gone_away_is_store_unavailable_and_back_when_it_returns(tmp_path):
    server = WireServer(tmp_path / "mongo")
    server.start()
    try:
        store = MongoStore(server.database_url("gone") + "?serverSelectionTimeoutMS=1000")
        job_id = store.create_job(JobSpec("shell", 1, 3), split_frames(1, 3, 1, 1))
        server.stop()
        with pytest.raises(StoreUnavailable, match="does not answer") as caught:
            store.get_job(job_id)
        assert caught.value.retry_after > 0
        with pytest.raises(StoreUnavailable):
            store.set_job_control(job_id, "stopped")
        server.start()
        assert store.get_job(job_id).counts.queued == 3  # nothing lost, nothing half-written
        assert not store.check_integrity()
        store.close()
    finally:
        server.stop()


def test_indexes_are_created_at_start(wire_server):
    store = MongoStore(wire_server.database_url())
    try:
        tasks = store._db.tasks.index_information()
        assert any(index["key"] == [("job_id", 1), ("idx", 1)] for index in tasks.values())
        assert any(index["key"] == [("attempt_id", 1)] for index in tasks.values())
        assert store._db.meta.find_one({"_id": "schema"})["version"] == SCHEMA_VERSION
    finally:
        store._client.drop_database(store.database)
        store.close()


def test_a_transition_is_applied_once_and_a_stale_result_never_wins(wire_server):
    """The task's update holds the state and attempt it was decided on: two results for one
    attempt count once, and a requeued attempt's late result is ignored."""
    for transactions in (True, False):
        store = MongoStore(wire_server.database_url(), transactions=transactions)
        try:
            job_id = store.create_job(JobSpec("shell", 1, 1), split_frames(1, 1, 1, 1))
            task = store.next_queued(job_id, 1)[0]
            attempt = uuid.uuid4().hex
            assert store.mark_dispatched(task.id, attempt, 0, "alpha")
            assert store.record_result(attempt, {"status": "finished"}) == "finished"
            assert store.record_result(attempt, {"status": "finished"}) is None
            assert store.get_job(job_id).counts.finished == 1
            store.requeue_tasks(job_id, which="all")
            task = store.next_queued(job_id, 1)[0]
            second = uuid.uuid4().hex
            assert store.mark_dispatched(task.id, second, 0, "alpha")
            store.requeue_attempts([second], "engine lost", lost=True)
            assert store.record_result(second, {"status": "finished"}) is None
            counts = store.get_job(job_id).counts
            assert (counts.queued, counts.finished) == (1, 0)
        finally:
            store._client.drop_database(store.database)
            store.close()


def test_a_job_cut_short_while_created_is_removed_at_start(wire_server):
    store = MongoStore(wire_server.database_url())
    try:
        store._db.jobs.insert_one(
            {"_id": 99, "control": "creating", "owner": "", "priority": 50, "spec": "{}"}
            | {
                f"n_{n}": 0
                for n in ("total", "queued", "running", "finished", "error", "cancelled")
            }
        )
        store._db.tasks.insert_one(
            {"_id": 500, "job_id": 99, "idx": 0, "start": 1, "end": 1, "step": 1, "state": "queued"}
        )
        assert "removed 1 jobs whose creation was cut short" in store.check_integrity()
        assert store._db.tasks.count_documents({}) == 0
        assert store.job_ids() == set()
    finally:
        store._client.drop_database(store.database)
        store.close()


def test_open_refuses_a_store_error_for_a_cut_short_import(wire_server):
    url = wire_server.database_url()
    raw = pymongo.MongoClient(wire_server.url)
    name = url.rsplit("/", 1)[1]
    raw[name].meta.insert_one({"_id": "schema", "version": SCHEMA_VERSION, "importing": True})
    try:
        with pytest.raises(StoreError, match="import .* was cut short"):
            MongoStore(url)
    finally:
        raw.drop_database(name)
        raw.close()


def test_a_claim_is_renewed_by_its_holder_and_refused_to_another(wire_server):
    store = MongoStore(wire_server.database_url())
    try:
        store.claim_master("host-a:1")
        store.claim_master("host-a:1")  # a renewal
        with pytest.raises(StoreError, match="another master .* uses MongoDB database"):
            store.claim_master("host-b:2")
        store.release_master("host-a:1")
        store.claim_master("host-b:2")  # released: the next takes it at once
        store._db.meta.update_one({"_id": "master"}, {"$set": {"until": 0}})
        store.claim_master("host-a:1")  # run out: anyone may take it
    finally:
        store._client.drop_database(store.database)
        store.close()


def test_store_check_repairs_counts_an_interrupted_change_left(wire_server, tmp_path):
    """Without transactions a master killed between a task's write and its job's counters
    leaves counts that `drqueue store check` (and every master start) recounts."""
    from click.testing import CliRunner

    from drqueue.cli.main import cli

    url = wire_server.database_url()
    store = MongoStore(url, transactions=False)
    try:
        job_id = store.create_job(JobSpec("shell", 1, 3), split_frames(1, 3, 1, 1))
        task = store.next_queued(job_id, 1)[0]
        # The task's write made, its job's counter write not (as a kill between them leaves).
        store._db.tasks.update_one({"_id": task.id}, {"$set": {"state": "finished"}})
        env = {"DRQUEUE_ROOT": str(tmp_path / "root"), "DRQUEUE_STORE": url}
        result = CliRunner().invoke(cli, ["store", "check"], env=env)
        assert result.exit_code == 0, result.output
        assert f"repaired: recounted the tasks of job {job_id}" in result.output
        assert store.get_job(job_id).counts.finished == 1
        again = CliRunner().invoke(cli, ["store", "check"], env=env)
        assert again.output.strip() == "the store is consistent"
    finally:
        store._client.drop_database(store.database)
        store.close()


# -- found by the hostile review of issue 11 ------------------------------------------------------


def _exported(wire_server, tmp_path):
    from drqueue.store import transfer

    source = MongoStore(wire_server.database_url())
    try:
        source.create_job(JobSpec("shell", 1, 2, params={"cmd": "true"}), split_frames(1, 2, 1, 1))
        path = tmp_path / "farm.jsonl"
        transfer.write(source, path)
    finally:
        source._client.drop_database(source.database)
        source.close()
    return path


def test_an_import_file_with_ids_that_leave_no_room_is_refused(wire_server, tmp_path):
    """One event at id 2**63-1 would leave the store no id for the next event: every later
    write that adds one would fail.  The file is refused before anything is written."""
    import json

    from drqueue.errors import InvalidExportFile
    from drqueue.models import MAX_ID
    from drqueue.store import transfer

    path = _exported(wire_server, tmp_path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        if line.get("kind") == "event":
            line["record"]["id"] = MAX_ID
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(InvalidExportFile, match="line"):
        transfer.check(path)


def test_a_counter_at_its_limit_is_a_one_line_store_error(wire_server):
    from drqueue.models import MAX_ID

    store = MongoStore(wire_server.database_url())
    try:
        store._db.counters.update_one({"_id": "jobs"}, {"$set": {"next": MAX_ID}})
        with pytest.raises(StoreError, match="has no jobs ids left"):
            store.create_job(JobSpec("shell", 1, 1), split_frames(1, 1, 1, 1))
    finally:
        store._client.drop_database(store.database)
        store.close()


def test_store_import_is_refused_while_a_master_of_another_root_holds_the_database(
    wire_server, tmp_path
):
    path = _exported(wire_server, tmp_path)
    url = wire_server.database_url()
    running = MongoStore(url)  # a master on another root or machine, its claim alive
    running.claim_master("other-host:its-master-id")
    try:
        env = {**os.environ, "DRQUEUE_ROOT": str(tmp_path / "importer"), "DRQUEUE_STORE": url}
        done = subprocess.run(
            [sys.executable, "-m", "drqueue.cli.main", "store", "import", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode != 0, done.stdout
        assert "another master (on " in done.stderr
        assert running.is_empty()
    finally:
        running._client.drop_database(running.database)
        running.close()


def test_a_url_asking_for_hours_of_timeout_still_fails_start_in_bounded_time(tmp_path):
    """A server that accepts connections and never answers (a hung mongod, a firewall), and a
    URL whose serverSelectionTimeoutMS is 27 hours: the master still refuses within 30 s."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        url = (
            f"mongodb://127.0.0.1:{listener.getsockname()[1]}/db?serverSelectionTimeoutMS=100000000"
        )
        line = master_refuses(tmp_path, url)
        assert "cannot reach the store's MongoDB" in line
        assert "Topology" not in line
    finally:
        listener.close()


def test_a_refused_start_writes_nothing_into_the_root(tmp_path):
    port = free_port_block(1)
    master_refuses(tmp_path, f"mongodb://127.0.0.1:{port}/x?serverSelectionTimeoutMS=300")
    etc = tmp_path / "root" / "etc"
    assert not (etc / "token").exists() and not (etc / "drqueue.toml").exists()


def test_a_dotted_database_name_is_refused_not_cut_short():
    with pytest.raises(ConfigError, match="holds a dot"):
        MongoStore("mongodb://127.0.0.1:1/dr.queue")


def test_a_sqlite_url_names_an_absolute_path_whatever_the_folder(tmp_path, monkeypatch):
    from drqueue.store.base import sqlite_path

    monkeypatch.chdir(tmp_path)
    assert sqlite_path("sqlite:///srv/drqueue.sqlite") == "/srv/drqueue.sqlite"
    assert sqlite_path("sqlite:////srv/drqueue.sqlite") == "/srv/drqueue.sqlite"
    store = open_store(f"sqlite://{tmp_path}/abs.sqlite")  # sqlite:///tmp/…/abs.sqlite
    store.close()
    assert (tmp_path / "abs.sqlite").exists()
    assert not (tmp_path / tmp_path.relative_to("/") / "abs.sqlite").exists()
