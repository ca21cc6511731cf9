"""`drqueue store backup`: a copy of the real store, and one-line refusals (issue 10, 3h/3j)."""

from __future__ import annotations

from click.testing import CliRunner

from drqueue.cli.main import cli
from drqueue.config import Config
from drqueue.store.sqlite import SQLiteStore


def backup(root, target):
    return CliRunner().invoke(
        cli, ["store", "backup", str(target)], env={"DRQUEUE_ROOT": str(root), "DRQUEUE_STORE": ""}
    )


def a_store_with_a_pool(root) -> None:
    config = Config(root=root)
    config.db_dir.mkdir(parents=True)
    store = SQLiteStore(config.store_url[len("sqlite:///") :])
    store.create_pool("lighting", "the lighting pool")
    store.close()


def test_backup_copies_the_store(tmp_path):
    a_store_with_a_pool(tmp_path / "root")
    result = backup(tmp_path / "root", tmp_path / "copy.sqlite")
    assert result.exit_code == 0, result.output
    copy = SQLiteStore(tmp_path / "copy.sqlite")
    assert [p["name"] for p in copy.list_pools()] == ["lighting"]
    copy.close()


def test_backup_with_a_wrong_root_refuses_and_creates_no_store(tmp_path):
    wrong = tmp_path / "not-the-root"
    result = backup(wrong, tmp_path / "copy.sqlite")
    assert result.exit_code == 1
    store = Config(root=wrong).store_url[len("sqlite:///") :]
    assert result.output.strip() == f"error: no store at {store}: is DRQUEUE_ROOT the master's?"
    assert not (tmp_path / "copy.sqlite").exists()
    assert not wrong.exists() or not any(wrong.rglob("*.sqlite"))


def test_backup_into_a_missing_folder_is_one_line(tmp_path):
    a_store_with_a_pool(tmp_path / "root")
    target = tmp_path / "no" / "such" / "copy.sqlite"
    result = backup(tmp_path / "root", target)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: cannot write {target}: there is no folder {target.parent}"
    )
    assert not target.parent.exists()
