"""A farm on the MongoDB store, over the wire: a real master with ``--store mongodb://…``
against SecantusDB (tests/mongo_server.py), real slaves and renders.

The database goes away mid-job and comes back: the API answers 503 meanwhile, the dispatcher
pauses, and when it is back every frame is counted finished exactly once.
"""

from __future__ import annotations

import httpx
import pytest
from farm import Farm, wait_for
from mongo_server import WireServer

from drqueue.store.mongo import MongoStore


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = WireServer(tmp_path_factory.mktemp("mongo"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mongo_farm(server, tmp_path_factory):
    farm = Farm(tmp_path_factory.mktemp("farm"), store=server.database_url("farm"))
    farm.start_master()
    farm.add_slave("alpha")
    farm.add_slave("beta")
    farm.wait_engines(2)
    yield farm
    farm.stop()


def frames_in(path) -> list[int]:
    return sorted(int(line) for line in path.read_text().split()) if path.exists() else []


def test_the_master_runs_a_job_to_completion_on_mongodb(mongo_farm, server, tmp_path):
    out = tmp_path / "frames.txt"
    job = mongo_farm.client.submit(
        "shell", None, start=1, end=8, params={"cmd": f"sh -c 'echo $DRQUEUE_FRAME >> {out}'"}
    )
    done = mongo_farm.wait_job(job["id"])
    assert done["status"] == "finished"
    assert done["counts"]["finished"] == 8
    assert set(frames_in(out)) == set(range(1, 9))
    store = MongoStore(server.database_url("farm"))
    try:
        assert store.get_job(job["id"]).counts.finished == 8  # in MongoDB itself
        assert not store.check_integrity()
    finally:
        store.close()
    assert "sqlite" not in {p.suffix for p in (mongo_farm.root / "db").glob("*")}


def test_mongodb_going_away_mid_job_loses_nothing(mongo_farm, server, tmp_path):
    out = tmp_path / "frames.txt"
    job_id = mongo_farm.client.submit(
        "shell",
        None,
        start=1,
        end=24,
        params={"cmd": f"sh -c 'sleep 1; echo $DRQUEUE_FRAME >> {out}'"},
    )["id"]
    wait_for(lambda: len(frames_in(out)) >= 3, 60, what="the first frames")
    # Both engines are busy with 1 s renders (and one queued behind each) as it goes away.
    rendered = len(frames_in(out))
    server.stop()
    try:
        api = mongo_farm.config.master_url + f"/api/v1/jobs/{job_id}"
        headers = {"Authorization": f"Bearer {mongo_farm.config.token_file.read_text().strip()}"}
        answer = wait_for(
            lambda: (r := httpx.get(api, headers=headers, timeout=30)).status_code == 503 and r,
            60,
            what="the API to answer 503",
        )
        assert answer.headers.get("Retry-After")
        assert "does not answer" in answer.json()["detail"]
        # The renders that were running end meanwhile; their results wait in the dispatcher,
        # which pauses.
        wait_for(lambda: len(frames_in(out)) > rendered, 60, what="a render ending meanwhile")
        master_log = mongo_farm.root / "master.out"
        # The dispatcher collects such a result, and owes its write to the store (GET /farm
        # needs no store).
        wait_for(
            lambda: mongo_farm.client.farm()["store_writes_owed"] > 0,
            90,
            what="a result's write owed to the store",
        )
        assert "store unavailable" in master_log.read_text()
    finally:
        server.start()
    done = mongo_farm.wait_job(job_id, timeout=180)
    assert done["status"] == "finished", done
    assert done["counts"]["finished"] == 24
    assert set(frames_in(out)) == set(range(1, 25))
    tasks = mongo_farm.client.tasks(job_id)
    assert all(t["state"] == "finished" for t in tasks)
    assert "store back" in master_log.read_text()
    assert "Traceback" not in master_log.read_text()


def test_a_second_master_on_the_same_database_is_refused(mongo_farm, server, tmp_path):
    """Two masters on two roots must never share one farm: the second refuses to start, in one
    line, and changes nothing (the first keeps running its jobs)."""
    second = Farm(tmp_path / "second", store=server.database_url("farm"))
    second.master_proc = second._spawn(["master"], "master.out")
    assert second.master_proc.wait(120) != 0
    out = (second.root / "master.out").read_text()
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "another master (on " in errors[0], out
    assert "uses MongoDB database 'farm'" in errors[0]
    job = mongo_farm.client.submit("shell", None, start=1, end=2, params={"cmd": "true"})
    assert mongo_farm.wait_job(job["id"])["status"] == "finished"


def test_a_master_killed_and_restarted_on_its_root_takes_its_claim_back_at_once(mongo_farm, server):
    """SIGKILL leaves the claim in the database; the same root's next master (the root's
    lock says the last one is gone) takes it over without waiting for it to run out."""
    mongo_farm.kill_master()
    mongo_farm.start_master()
    mongo_farm.wait_engines(2, timeout=120)
    job = mongo_farm.client.submit("shell", None, start=1, end=2, params={"cmd": "true"})
    assert mongo_farm.wait_job(job["id"])["status"] == "finished"


def test_a_master_whose_claim_another_took_exits(mongo_farm, server):
    """Cut off longer than a lease, a master may find another master's claim: it exits
    (status 1, one line saying why) rather than write the same farm as another."""
    import time

    import pymongo

    raw = pymongo.MongoClient(server.url)
    try:
        raw.farm.meta.update_one(
            {"_id": "master"},
            {"$set": {"holder": "elsewhere:1", "host": "elsewhere", "until": time.time() + 600}},
        )
        assert mongo_farm.master_proc.wait(60) == 1
        out = (mongo_farm.root / "master.out").read_text()
        assert "another master (on elsewhere" in out
        raw.farm.meta.delete_one({"_id": "master"})
    finally:
        raw.close()
    mongo_farm.start_master()
    mongo_farm.wait_engines(2, timeout=120)
