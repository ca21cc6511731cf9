"""`drqueue store export FILE` and `drqueue store import FILE` (issue 11, part 4).

A farm exported from one DRQUEUE_ROOT and imported into another is the same farm, tokens
included; every refusal is one line, exit 1, and leaves the target root's store and tokens
as they were.
"""

from __future__ import annotations

import json
from pathlib import Path

from _farm_state import assert_same_farm, build_farm
from click.testing import CliRunner

from drqueue.cli.main import cli
from drqueue.config import Config
from drqueue.master.lock import take_master_lock
from drqueue.master.tokens import create_token, token_entries
from drqueue.store.sqlite import SQLiteStore


def run(root: Path, *args: str):
    return CliRunner().invoke(
        cli, ["store", *args], env={"DRQUEUE_ROOT": str(root), "DRQUEUE_STORE": ""}
    )


def store_of(root: Path) -> SQLiteStore:
    return SQLiteStore(Config(root=root).store_url[len("sqlite:///") :])


def store_file(root: Path) -> Path:
    return Path(Config(root=root).store_url[len("sqlite:///") :])


def a_farm(root: Path) -> None:
    """A root with a farm of everything in its store, and two tokens besides the admin's."""
    config = Config(root=root)
    config.ensure_dirs()
    config.ensure_token()
    store = store_of(root)
    build_farm(store)
    store.close()
    create_token(config, "artist", "ann")
    create_token(config, "slave", "slaves")


def exported(tmp_path: Path) -> Path:
    a_farm(tmp_path / "old")
    path = tmp_path / "farm.jsonl"
    result = run(tmp_path / "old", "export", str(path))
    assert result.exit_code == 0, result.output
    return path


def refusal(result) -> str:
    """The one line of a refused command."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0][len("error: ") :]


def test_a_farm_exported_from_one_root_and_imported_into_another_is_the_same(tmp_path):
    a_farm(tmp_path / "old")
    path = tmp_path / "farm.jsonl"

    result = run(tmp_path / "old", "export", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"exported 5 jobs, 25 tasks, 2 computers, 3 pools, 19 events, 2 tokens to {path}"
    )
    assert path.stat().st_mode & 0o777 == 0o600

    result = run(tmp_path / "new", "import", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "imported 5 jobs, 25 tasks, 2 computers, 3 pools, 19 events, 2 tokens"
    )
    old, new = store_of(tmp_path / "old"), store_of(tmp_path / "new")
    assert_same_farm(old, new)
    old.close()
    new.close()
    old_config, new_config = Config(root=tmp_path / "old"), Config(root=tmp_path / "new")
    assert token_entries(new_config) == token_entries(old_config)
    assert (new_config.etc_dir / "tokens.json").stat().st_mode & 0o777 == 0o600
    # Only hashes travel: the master's own token stays the old root's.
    assert old_config.token_file.read_text().strip() not in path.read_text()
    assert not new_config.token_file.exists()


def test_import_into_a_store_that_is_not_empty_is_refused_and_changes_nothing(tmp_path):
    path = exported(tmp_path)
    store = store_of(tmp_path / "new")
    store.create_pool("mine")
    store.close()
    result = run(tmp_path / "new", "import", str(path))
    assert refusal(result).startswith("the store is not empty")
    store = store_of(tmp_path / "new")
    assert [pool["name"] for pool in store.list_pools()] == ["mine"]
    assert store.list_jobs() == []
    store.close()
    assert not (Config(root=tmp_path / "new").etc_dir / "tokens.json").exists()


def test_import_of_a_bad_file_is_one_line_and_touches_nothing(tmp_path):
    path = exported(tmp_path)
    lines = path.read_text().splitlines()
    task = json.loads(lines[20])
    task["record"]["job_id"] = 77
    lines[20] = json.dumps(task)
    path.write_text("\n".join(lines) + "\n")
    result = run(tmp_path / "new", "import", str(path))
    assert refusal(result) == (
        f"line 21: task {task['record']['id']} names job 77, which is not in the file"
    )
    assert not (tmp_path / "new").exists()


def test_import_of_a_missing_file_is_one_line(tmp_path):
    result = run(tmp_path / "new", "import", str(tmp_path / "nothing.jsonl"))
    assert refusal(result) == f"there is no file {tmp_path / 'nothing.jsonl'}"
    assert not (tmp_path / "new").exists()


def test_import_of_a_file_cut_short_is_one_line_and_touches_nothing(tmp_path):
    path = exported(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))
    result = run(tmp_path / "new", "import", str(path))
    assert "without its end line: it was cut short" in refusal(result)
    assert not (tmp_path / "new").exists()


def test_import_while_a_master_runs_on_the_root_is_refused(tmp_path):
    path = exported(tmp_path)
    config = Config(root=tmp_path / "new")
    config.ensure_dirs()
    master = take_master_lock(config, refusal="taken")  # as a running master holds it
    try:
        result = run(tmp_path / "new", "import", str(path))
    finally:
        master.close()
    assert refusal(result).startswith(f"a master runs on {config.root} (pid ")
    assert refusal(result).endswith("): stop it before importing its store")
    assert not store_file(tmp_path / "new").exists()
    assert not (config.etc_dir / "tokens.json").exists()


def test_import_is_refused_when_the_root_has_other_tokens(tmp_path):
    path = exported(tmp_path)
    config = Config(root=tmp_path / "new")
    create_token(config, "admin", "someone")
    before = (config.etc_dir / "tokens.json").read_text()
    result = run(tmp_path / "new", "import", str(path))
    assert refusal(result) == (
        f"{config.etc_dir / 'tokens.json'} already holds other tokens than the file's: move "
        "it away to import them"
    )
    assert (config.etc_dir / "tokens.json").read_text() == before
    assert not store_file(tmp_path / "new").exists()


def test_import_accepts_a_root_that_has_the_same_tokens(tmp_path):
    path = exported(tmp_path)
    new = Config(root=tmp_path / "new")
    new.ensure_dirs()
    old_tokens = (Config(root=tmp_path / "old").etc_dir / "tokens.json").read_text()
    (new.etc_dir / "tokens.json").write_text(old_tokens)
    result = run(tmp_path / "new", "import", str(path))
    assert result.exit_code == 0, result.output
    assert (new.etc_dir / "tokens.json").read_text() == old_tokens


def test_export_of_a_root_without_a_store_is_refused_and_creates_nothing(tmp_path):
    wrong = tmp_path / "not-the-root"
    result = run(wrong, "export", str(tmp_path / "farm.jsonl"))
    assert refusal(result) == (f"no store at {store_file(wrong)}: is DRQUEUE_ROOT the master's?")
    assert not (tmp_path / "farm.jsonl").exists()
    assert not wrong.exists() or not any(wrong.rglob("*.sqlite"))


def test_export_into_a_missing_folder_is_one_line(tmp_path):
    a_farm(tmp_path / "old")
    target = tmp_path / "no" / "such" / "farm.jsonl"
    result = run(tmp_path / "old", "export", str(target))
    assert refusal(result) == f"cannot write {target}: there is no folder {target.parent}"
    assert not target.parent.exists()


def test_a_farm_moves_from_sqlite_to_mongodb_and_back_with_the_cli(tmp_path, wire_server):
    """What a studio types to move its farm onto MongoDB: export from the SQLite root, import
    with DRQUEUE_STORE naming the database, and the same farm comes back out of it."""
    from drqueue.store.mongo import MongoStore

    path = exported(tmp_path)
    url = wire_server.database_url()
    mongo_root = tmp_path / "mongo-root"
    env = {"DRQUEUE_ROOT": str(mongo_root), "DRQUEUE_STORE": url}
    result = CliRunner().invoke(cli, ["store", "import", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip().startswith("imported 5 jobs, 25 tasks")
    again = CliRunner().invoke(cli, ["store", "import", str(path)], env=env)
    assert refusal(again).startswith("the store is not empty")

    back = tmp_path / "back.jsonl"
    result = CliRunner().invoke(cli, ["store", "export", str(back)], env=env)
    assert result.exit_code == 0, result.output
    result = run(tmp_path / "sqlite-again", "import", str(back))
    assert result.exit_code == 0, result.output
    old, mongo, new = (
        store_of(tmp_path / "old"),
        MongoStore(url),
        store_of(tmp_path / "sqlite-again"),
    )
    try:
        assert_same_farm(old, mongo)
        assert_same_farm(old, new)
    finally:
        mongo._client.drop_database(mongo.database)
        for store in (old, mongo, new):
            store.close()
