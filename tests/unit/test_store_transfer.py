"""Moving a farm between stores (drqueue.store.transfer; issue 11, part 4).

A farm written to an export file and imported into another store is the same farm, object
by object, whichever backends it moves between; a file that cannot be imported is refused
with one line naming the line, and the store it was meant for is left as it was.

``new_store`` and ``other_store`` make empty stores of each backend in BACKENDS: a backend
added there (MongoDB) runs every test here, and every pair of backends a move.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _farm_state import assert_same_farm, build_farm, dispatch, farm_of, result, submit

from drqueue.errors import InvalidExportFile, StoreError
from drqueue.models import JobSpec, split_frames
from drqueue.store import SCHEMA_VERSION, Store, transfer
from drqueue.store.memory import MemoryStore
from drqueue.store.sqlite import SQLiteStore

#: Each backend, as a new empty store in an empty folder.
BACKENDS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda folder: SQLiteStore(folder / "drqueue.sqlite"),
    "memory": lambda folder: MemoryStore(),
    "mongo": lambda folder: _mongo_store(),
}


def _mongo_store() -> Store:
    """A new database on the session's MongoDB-wire server (conftest.wire_server)."""
    from drqueue.store.mongo import MongoStore

    return MongoStore(_WIRE[0].database_url())


#: The wire server, set by the autouse fixture below for the tests of this module.
_WIRE: list[Any] = []


@pytest.fixture(autouse=True)
def _wire(request):
    if "mongo" in request.node.name:
        _WIRE[:] = [request.getfixturevalue("wire_server")]
    yield


StoreMaker = Callable[[], Store]


def _maker(backend: str, folder: Path) -> Iterator[StoreMaker]:
    made: list[Store] = []

    def make() -> Store:
        where = folder / f"{backend}-{len(made)}"
        where.mkdir(parents=True)
        made.append(BACKENDS[backend](where))
        return made[-1]

    yield make
    for store in made:
        store.close()


@pytest.fixture(params=sorted(BACKENDS))
def new_store(request, tmp_path) -> Iterator[StoreMaker]:
    """Makes new, empty stores of one backend."""
    yield from _maker(request.param, tmp_path / "new")


@pytest.fixture(params=sorted(BACKENDS))
def other_store(request, tmp_path) -> Iterator[StoreMaker]:
    """Makes new, empty stores of one backend, for the other end of a move."""
    yield from _maker(request.param, tmp_path / "other")


def records_of(path: Path) -> list[str]:
    """The lines of an export file but its header, which holds the time of the export."""
    return path.read_text().splitlines()[1:]


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


# -- moves ------------------------------------------------------------------------------------


def test_a_farm_moves_to_another_store_and_back_object_by_object(new_store, other_store, tmp_path):
    source = new_store()
    build_farm(source)
    first = tmp_path / "first.jsonl"
    second = tmp_path / "second.jsonl"

    counts = transfer.write(source, first)
    target = other_store()
    assert target.import_records(transfer.read(first)) == {
        kind: counts[kind] for kind in transfer.STORE_KINDS
    }
    assert_same_farm(source, target)

    transfer.write(target, second)
    back = new_store()
    back.import_records(transfer.read(second))
    assert_same_farm(source, back)
    assert records_of(second) == records_of(first)


def test_the_file_holds_every_kind_in_order_and_ends_with_their_counts(new_store, tmp_path):
    store = new_store()
    build_farm(store)
    path = tmp_path / "farm.jsonl"
    tokens = [{"sha256": "ab" * 32, "role": "artist", "owner": "ann", "created": 1.5}]
    counts = transfer.write(store, path, tokens)

    lines = lines_of(path)
    assert lines[0]["format"] == "drqueue-store-export"
    assert lines[0]["schema_version"] == SCHEMA_VERSION
    kinds = [line["kind"] for line in lines[1:-1]]
    assert kinds == sorted(kinds, key=transfer.KINDS.index)
    assert set(kinds) == set(transfer.KINDS)
    assert lines[-1] == {"end": True, "counts": counts}
    assert counts["job"] == 5 and counts["token"] == 1 and counts["pool"] == 3
    assert lines[-2] == {"kind": "token", "record": tokens[0]}
    assert transfer.check(path).tokens == tokens
    assert "token" not in {kind for kind, _ in transfer.read(path)}


def test_the_file_is_private_and_written_whole(new_store, tmp_path):
    store = new_store()
    build_farm(store)
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "farm.jsonl"
    path.write_text("an earlier file\n")
    os.chmod(path, 0o644)
    transfer.write(store, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert "s3cret" in path.read_text()  # a job's env: why the file is private
    assert [p.name for p in path.parent.iterdir()] == ["farm.jsonl"]


def test_a_failed_export_leaves_no_file_and_an_earlier_one_as_it_was(tmp_path):
    store = MemoryStore()  # the one backend that keeps a NaN in a job's params
    build_farm(store)
    store.create_job(JobSpec("shell", 1, 1, params={"scale": float("nan")}), split_frames(1, 1))
    path = tmp_path / "farm.jsonl"
    with pytest.raises(StoreError, match=r"^cannot export job 6: Out of range float"):
        transfer.write(store, path)
    assert list(tmp_path.iterdir()) == []
    path.write_text("an earlier file\n")
    with pytest.raises(StoreError):
        transfer.write(store, path)
    assert path.read_text() == "an earlier file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["farm.jsonl"]


def test_new_ids_continue_after_the_imported_ones(new_store, other_store, tmp_path):
    source = new_store()
    jobs = build_farm(source)
    path = tmp_path / "farm.jsonl"
    transfer.write(source, path)
    target = other_store()
    target.import_records(transfer.read(path))

    last_event = target.events(limit=1)[-1].id
    last_task = max(task.id for job in target.list_jobs() for task in target.list_tasks(job.id))
    job_id = submit(target, 1, 1)
    assert job_id == max(jobs.values()) + 1
    assert target.list_tasks(job_id)[0].id == last_task + 1
    assert target.events(limit=1)[-1].id == last_event + 1


def test_counts_are_recounted_from_the_tasks_in_the_file(new_store, other_store, tmp_path):
    """The file holds no counts: a task set cancelled by hand (no store call makes one) and a
    job's finished one set queued again are counted as the tasks say."""
    source = new_store()
    jobs = build_farm(source)
    path = tmp_path / "farm.jsonl"
    transfer.write(source, path)
    lines = lines_of(path)
    tasks = [line["record"] for line in lines if line.get("kind") == "task"]
    stopped = [task for task in tasks if task["job_id"] == jobs["stopped"]]
    stopped[0]["state"] = "cancelled"
    done = [task for task in tasks if task["job_id"] == jobs["done"]]
    done[1]["state"] = "queued"
    write_lines(path, lines)

    target = other_store()
    target.import_records(transfer.read(path))
    counts = target.get_job(jobs["stopped"]).counts
    assert (counts.total, counts.queued, counts.cancelled) == (5, 4, 1)
    counts = target.get_job(jobs["done"]).counts
    assert (counts.total, counts.queued, counts.finished) == (2, 1, 1)


def test_tasks_on_engines_come_back_on_engines_for_the_next_master_start_to_requeue(
    new_store, other_store, tmp_path
):
    source = new_store()
    jobs = build_farm(source)
    path = tmp_path / "farm.jsonl"
    transfer.write(source, path)
    target = other_store()
    target.import_records(transfer.read(path))
    assert sorted(d.attempt_id for d in target.active_dispatches()) == ["w2", "w3"]
    assert target.requeue_all_active("master restarted") == 2
    assert target.get_job(jobs["waiting"]).counts.running == 0


def test_a_job_still_being_created_is_not_exported(tmp_path):
    import sqlite3

    store = SQLiteStore(tmp_path / "db" / "drqueue.sqlite")
    kept = submit(store, 1, 2)
    half_made = submit(store, 1, 3)
    store.block_host(half_made, "r01")
    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute("UPDATE jobs SET control = 'creating' WHERE id = ?", (half_made,))
    conn.close()
    path = tmp_path / "farm.jsonl"
    counts = transfer.write(store, path)
    assert (counts["job"], counts["task"], counts["host"]) == (1, 2, 0)
    lines = lines_of(path)[1:-1]
    assert [line["record"]["id"] for line in lines if line["kind"] == "job"] == [kept]
    assert {line["record"]["job_id"] for line in lines if line["kind"] in ("task", "host")} == {
        kept
    }
    store.close()


def test_the_export_is_one_snapshot_while_the_store_changes(tmp_path):
    """SQLite exports in one read transaction: what is written meanwhile is not in the file,
    and waits for nothing."""
    store = SQLiteStore(tmp_path / "db" / "drqueue.sqlite")
    build_farm(store)
    records = store.export_records()
    first = next(records)
    submit(store, 1, 3)
    store.add_event("later", "written during the export")
    rest = list(records)
    kinds = [kind for kind, _ in [first, *rest]]
    assert kinds.count("job") == 5
    assert "later" not in {record.get("kind") for kind, record in rest if kind == "event"}
    assert len(store.list_jobs()) == 6
    store.close()


def test_a_job_of_100000_tasks_moves(new_store, tmp_path):
    source = new_store()
    job_id = source.create_job(
        JobSpec("shell", 1, 100_000, params={"cmd": "true"}), split_frames(1, 100_000)
    )
    dispatch(source, job_id, "r01", "a0")
    source.record_result("a0", result("finished"))
    path = tmp_path / "big.jsonl"
    assert transfer.write(source, path)["task"] == 100_000
    target = new_store()
    assert target.import_records(transfer.read(path))["task"] == 100_000
    counts = target.get_job(job_id).counts
    assert (counts.total, counts.finished, counts.queued) == (100_000, 1, 99_999)
    for page in ({"limit": 100}, {"offset": 99_900}):
        assert target.list_tasks(job_id, **page) == source.list_tasks(job_id, **page)


# -- refusals: one line, and the store as it was ---------------------------------------------------


@pytest.fixture()
def export(tmp_path) -> Path:
    """A good export file of the farm of build_farm, from SQLite."""
    store = SQLiteStore(tmp_path / "source" / "drqueue.sqlite")
    build_farm(store)
    path = tmp_path / "farm.jsonl"
    transfer.write(store, path, [{"sha256": "ab" * 32, "role": "slave", "owner": "slaves"}])
    store.close()
    return path


def refused(store: Store, path: Path) -> str:
    """The one line with which *store* refuses to import *path*; the store stays empty."""
    with pytest.raises(InvalidExportFile) as caught:
        store.import_records(transfer.read(path))
    assert store.is_empty()
    message = str(caught.value)
    assert "\n" not in message
    return message


def edit(path: Path, change: Callable[[list[dict[str, Any]]], None]) -> None:
    lines = lines_of(path)
    change(lines)
    write_lines(path, lines)


def first_of(lines: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(line["record"] for line in lines if line.get("kind") == kind)


def index_of(lines: list[dict[str, Any]], kind: str) -> int:
    return next(i for i, line in enumerate(lines) if line.get("kind") == kind)


def drop_first(lines: list[dict[str, Any]], kind: str) -> None:
    """Take the first record of *kind* out of the file, and out of the counts of its end."""
    del lines[index_of(lines, kind)]
    lines[-1]["counts"][kind] -= 1


def test_a_store_that_is_not_empty_refuses_an_import_and_stays_as_it_was(new_store, export):
    store = new_store()
    store.create_pool("mine")
    before = farm_of(store)
    assert not store.is_empty()
    with pytest.raises(StoreError, match="^the store is not empty"):
        store.import_records(transfer.read(export))
    assert farm_of(store) == before


@pytest.mark.parametrize("what", ["pool", "computer", "job", "event"])
def test_a_store_with_any_object_is_not_empty(new_store, what):
    store = new_store()
    assert store.is_empty()
    if what == "pool":
        store.create_pool("p")
    elif what == "computer":
        store.upsert_computer({"name": "r01"})
    elif what == "job":
        submit(store, 1, 1)
    else:
        store.add_event("note", "hello")
    assert not store.is_empty()


def test_a_file_cut_short_at_a_line_end_is_refused(new_store, export):
    lines = export.read_text().splitlines(keepends=True)
    export.write_text("".join(lines[: len(lines) // 2]))
    assert refused(new_store(), export) == (
        f"{export} ends at line {len(lines) // 2} without its end line: it was cut short "
        "(an export that did not finish, or a partial copy)"
    )


def test_a_file_cut_short_inside_a_line_is_refused(new_store, export):
    data = export.read_bytes()
    cut = data[: len(data) // 2]
    export.write_bytes(cut)
    last = len(cut.splitlines())
    assert refused(new_store(), export).startswith(f"line {last}: not JSON")


def test_a_file_with_a_newer_schema_is_refused(new_store, export):
    edit(export, lambda lines: lines[0].update(schema_version=SCHEMA_VERSION + 1))
    assert refused(new_store(), export) == (
        f"line 1: written by a newer DrQueue (schema version {SCHEMA_VERSION + 1}; this one "
        f"reads up to {SCHEMA_VERSION}): import it with that version of DrQueue, or a newer one"
    )


def test_a_task_of_a_job_not_in_the_file_is_refused(new_store, export):
    lines = lines_of(export)
    job = first_of(lines, "job")
    task = first_of(lines, "task")
    drop_first(lines, "job")
    write_lines(export, lines)
    assert refused(new_store(), export) == (
        f"line {index_of(lines, 'task') + 1}: task {task['id']} names job {job['id']}, "
        "which is not in the file"
    )


def test_a_file_that_changes_after_its_check_is_refused_and_nothing_is_kept(new_store, export):
    checked = transfer.check(export)
    text = export.read_text()
    export.write_text(text.replace('"a wrangler\'s note"', '"a wrangler\'s NOTE"'))
    store = new_store()
    with pytest.raises(InvalidExportFile, match="changed while it was imported"):
        store.import_records(transfer.read(checked))
    assert store.is_empty()


def test_an_import_that_fails_half_way_keeps_nothing(new_store, export):
    def records_then_a_failure():
        for number, record in enumerate(transfer.read(export)):
            if number == 30:
                raise RuntimeError("the disk went away")
            yield record

    store = new_store()
    with pytest.raises(RuntimeError):
        store.import_records(records_then_a_failure())
    assert store.is_empty()
    store.import_records(transfer.read(export))  # and the store still takes a whole import
    assert len(store.list_jobs()) == 5


def _task(lines):
    return first_of(lines, "task")


#: Bad files: a change to the good one, and the line that refuses it ({n}: the line changed).
BAD_FILES: dict[str, tuple[Callable[[list[dict[str, Any]]], Any], str]] = {
    "a state that is none": (
        lambda lines: _task(lines).update(state="exploded"),
        "line {n}: task 1: state: Input should be 'queued', 'dispatched', 'running', "
        "'finished', 'error' or 'cancelled'",
    ),
    "a control that is none": (
        lambda lines: first_of(lines, "job").update(control="creating"),
        "line {n}: job 1: control: Input should be 'active' or 'stopped'",
    ),
    "a string for a number": (
        lambda lines: _task(lines).update(attempts="2"),
        "line {n}: task 1: attempts: Input should be a valid integer",
    ),
    "true for a number": (
        lambda lines: _task(lines).update(exit_code=True),
        "line {n}: task 1: exit_code: Input should be a valid integer",
    ),
    "a number beyond 64 bits": (
        lambda lines: _task(lines).update(engine_id=2**63),
        "line {n}: task 1: engine_id: Input should be less than or equal to 9223372036854775807",
    ),
    "a field missing": (
        lambda lines: _task(lines).pop("tail"),
        "line {n}: task 1: tail: Field required",
    ),
    "a field too many": (
        lambda lines: first_of(lines, "pool").update(colour="red"),
        "line {n}: pool 'declared': colour: Extra inputs are not permitted",
    ),
    "a spec without its renderer": (
        lambda lines: first_of(lines, "job")["spec"].pop("renderer"),
        "line {n}: job 1: spec.renderer: Field required",
    ),
    "a task id twice": (
        lambda lines: [line for line in lines if line.get("kind") == "task"][1]["record"].update(
            id=1
        ),
        "line {n}: task 1 is in the file twice",
    ),
    "a task index twice": (
        lambda lines: [line for line in lines if line.get("kind") == "task"][1]["record"].update(
            index=0
        ),
        "line {n}: task 2 is task 0 of job 1, as an earlier one is",
    ),
    "a member of a pool not in the file": (
        lambda lines: first_of(lines, "member").update(pool="nowhere"),
        "line {n}: member 'r01' of pool 'nowhere' names pool 'nowhere', which is not in the file",
    ),
    "a host of a job not in the file": (
        lambda lines: first_of(lines, "host").update(job_id=99),
        "line {n}: host 'r02' of job 99 names job 99, which is not in the file",
    ),
    "an unknown kind": (
        lambda lines: lines[index_of(lines, "pool")].update(kind="printer"),
        "line {n}: unknown kind 'printer': a kind is one of pool, computer, member, job, task, "
        "host, event, token",
    ),
    "kinds out of order": (
        lambda lines: lines[index_of(lines, "event")].update(kind="pool"),
        "line {n}: a pool record after host records: the records go in the order pool, "
        "computer, member, job, task, host, event, token",
    ),
    "the Idempotency-Key of another job of its owner": (
        lambda lines: [line for line in lines if line.get("kind") == "job"][3]["record"].update(
            idempotency_key="take-1"
        ),
        "line {n}: job 4 has the Idempotency-Key of an earlier job of 'ann'",
    ),
    "a token with no hash": (
        lambda lines: first_of(lines, "token").update(sha256="s3cret-token"),
        "line {n}: a token: sha256: String should match pattern '^[0-9a-f]{{64}}$'",
    ),
    "a token of no role": (
        lambda lines: first_of(lines, "token").update(role="root"),
        "line {n}: token abababababab: role: Input should be 'admin', 'artist' or 'slave'",
    ),
    "wrong counts at the end": (
        lambda lines: lines[-1]["counts"].update(task=3),
        "line {n}: the end line counts 3 tasks, but the file holds 25: it is damaged",
    ),
}


@pytest.mark.parametrize("fault", sorted(BAD_FILES))
def test_a_bad_record_is_refused_with_its_line(new_store, export, fault):
    change, message = BAD_FILES[fault]
    lines = lines_of(export)
    before = [json.dumps(line) for line in lines]
    change(lines)
    write_lines(export, lines)
    changed = next(i for i, line in enumerate(lines) if json.dumps(line) != before[i]) + 1
    assert refused(new_store(), export) == message.format(n=changed)


#: Bad lines, as text, put in place of the first task's line.
BAD_LINES = {
    "not JSON": (
        "{kind: task}",
        "not JSON (Expecting property name enclosed in double quotes, at column 2)",
    ),
    "not an object": (
        "[1, 2]",
        'not a record: each line between the header and the end line is {"kind": ..., "record": {...}}',
    ),
    "an empty line": ("", "an empty line"),
    "a NaN": (None, "NaN is not a number JSON allows"),
    "a lone surrogate": (None, "a \\u escape that is no character (a lone surrogate)"),
    "a record that is no object": (
        '{"kind": "task", "record": 7}',
        "the record of a task is not a JSON object",
    ),
}


@pytest.mark.parametrize("fault", sorted(BAD_LINES))
def test_a_bad_line_is_refused_with_its_number(new_store, export, fault):
    text, message = BAD_LINES[fault]
    lines = export.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if line.startswith('{"kind":"task"'))
    if fault == "a NaN":
        text = re.sub(r'"progress":[0-9.]+', '"progress":NaN', lines[number])
    elif fault == "a lone surrogate":
        text = lines[number].replace('"tail":"', '"tail":"\\ud800')
    lines[number] = text
    export.write_text("\n".join(lines) + "\n")
    assert refused(new_store(), export) == f"line {number + 1}: {message}"


def test_not_an_export_is_refused_at_its_first_line(new_store, tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text('{"jobs": []}\n')
    assert refused(new_store(), path) == (
        'line 1: no DrQueue store export: its first line is not {"format": '
        '"drqueue-store-export", ...}'
    )


def test_an_empty_or_missing_file_is_refused(new_store, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert refused(new_store(), empty) == f"{empty} is empty: it is no DrQueue store export"
    missing = tmp_path / "missing.jsonl"
    assert refused(new_store(), missing) == f"there is no file {missing}"


def test_a_line_after_the_end_is_refused(new_store, export):
    with export.open("a") as out:
        out.write('{"kind": "pool", "record": {"name": "late", "description": ""}}\n')
    number = len(export.read_text().splitlines())
    assert refused(new_store(), export) == f"line {number}: a line after the end line"


def test_a_job_with_a_gap_in_its_tasks_is_refused(new_store, export):
    lines = lines_of(export)
    drop_first(lines, "task")
    write_lines(export, lines)
    assert refused(new_store(), export) == (
        f"{export}: job 1 has a task 1 but no task 0: a job's tasks are numbered from 0 "
        "without a gap"
    )


def test_two_tasks_on_one_attempt_are_refused(new_store, export):
    lines = lines_of(export)
    active = [
        line["record"]
        for line in lines
        if line.get("kind") == "task" and line["record"]["state"] in ("dispatched", "running")
    ]
    active[1]["attempt_id"] = active[0]["attempt_id"]
    write_lines(export, lines)
    number = next(i for i, line in enumerate(lines) if line.get("record") is active[1]) + 1
    assert refused(new_store(), export) == (
        f"line {number}: task {active[1]['id']} runs attempt 'w2', as task {active[0]['id']} does"
    )
