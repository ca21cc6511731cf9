"""The desktop GUI's pure parts with real Qt objects (offscreen): the table models' sorting,
live updates and filter, the submit dialog's field matching, the tray messages' rule."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6", reason="the gui extra (PySide6) is not installed")

from PySide6.QtCore import QItemSelectionModel, Qt  # noqa: E402

from drqueue.api_types import Job  # noqa: E402
from drqueue.gui.models import (  # noqa: E402
    JobFilter,
    JobsModel,
    duration,
    percent_done,
)
from drqueue.gui.submit_dialog import field_of  # noqa: E402

PROGRESS, PRIORITY, STATUS = 4, 5, 3


def job(job_id: int, **fields) -> Job:
    counts = fields.pop("counts", {"total": 10, "queued": 10})
    body = {"id": job_id, "renderer": "shell", "start": 1, "end": 10, "status": "queued"}
    return Job.from_json({**body, "counts": counts, **fields})


def column(model, number: int) -> list[str]:
    return [model.index(row, number).data() for row in range(model.rowCount())]


def ids(model) -> list[int]:
    return [int(text) for text in column(model, 0)]


def test_jobs_sort_by_a_column_with_ties_by_id(qapp):
    model = JobsModel()
    model.set_items([job(1, priority=50), job(2, priority=90), job(3, priority=50)])
    model.sort(PRIORITY, Qt.SortOrder.DescendingOrder)
    assert ids(model) == [2, 3, 1]
    model.sort(PRIORITY, Qt.SortOrder.AscendingOrder)
    assert ids(model) == [1, 3, 2]


def test_progress_sorts_by_the_share_finished_and_shows_100_only_when_all_are(qapp):
    model = JobsModel()
    nearly = {"total": 1000, "finished": 999, "queued": 1}
    model.set_items([job(1, counts=nearly), job(2, counts={"total": 2, "finished": 2})])
    model.sort(PROGRESS, Qt.SortOrder.AscendingOrder)
    assert column(model, PROGRESS) == ["99%", "100%"]
    assert percent_done(job(3, counts={"total": 0}).counts) == 0


def test_a_live_change_updates_its_row_adds_new_jobs_drops_deleted_ones_and_keeps_the_order(qapp):
    model = JobsModel()
    model.set_items([job(1), job(2), job(3)])
    model.sort(0, Qt.SortOrder.DescendingOrder)
    model.apply(
        [job(2, status="running", counts={"total": 10, "running": 2, "queued": 8}), job(4)], [3]
    )
    assert ids(model) == [4, 2, 1]
    assert model.job(2).status == "running"
    assert model.job(3) is None


def test_the_selection_follows_its_job_through_a_sort(qapp):
    model = JobsModel()
    model.set_items([job(1, priority=10), job(2, priority=20), job(3, priority=30)])
    selection = QItemSelectionModel(model)
    selection.select(
        model.index(0, 0),
        QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
    )
    model.sort(PRIORITY, Qt.SortOrder.DescendingOrder)
    rows = [index.row() for index in selection.selectedRows()]
    assert [model.item(row).id for row in rows] == [1]


def test_the_filter_finds_by_name_owner_renderer_id_status_and_owner(qapp):
    model = JobsModel()
    model.set_items(
        [
            job(1, name="Shot 010 beauty", owner="ann"),
            job(2, name="shot 020", owner="bob", status="error"),
            job(12, name="comp", owner="ann", renderer="nuke"),
        ]
    )
    shown = JobFilter(model)
    shown.set_filter(search="SHOT")
    assert sorted(ids(shown)) == [1, 2]
    shown.set_filter(search="#12")
    assert ids(shown) == [12]
    shown.set_filter(search="nuke")
    assert ids(shown) == [12]
    shown.set_filter(search="", status="error")
    assert ids(shown) == [2]
    shown.set_filter(status="", owner="ann")
    assert sorted(ids(shown)) == [1, 12]


def test_sorting_through_the_filter_sorts_the_model(qapp):
    model = JobsModel()
    model.set_items([job(1, name="b"), job(2, name="a"), job(3, name="c", owner="x")])
    shown = JobFilter(model)
    shown.set_filter(owner="")
    shown.sort(1, Qt.SortOrder.AscendingOrder)
    assert column(shown, 1) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("detail", "field"),
    [
        ("renderer 'shell' needs the parameter 'cmd'", "params.cmd"),
        ("block_size: Input should be greater than or equal to 1", "block_size"),
        ("requirements.pools.0: String should have at most 100 characters", "requirements"),
        ("end frame 1 is before start frame 5", "end"),
        ("scene /proj/a.blend does not exist on the master", "scene"),
        ("the store is busy", None),
    ],
)
def test_an_api_error_is_shown_at_the_field_it_names(detail, field):
    fields = {"params.cmd", "block_size", "requirements", "end", "start", "scene", "step"}
    assert field_of(detail, fields) == field


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "–"),
        (4.24, "4.2s"),
        (38, "38s"),
        (725, "12m 05s"),
        (11_220, "3h 07m"),
        (187_200, "2d 04h"),
    ],
)
def test_durations_read_like_the_web_ui(seconds, text):
    assert duration(seconds) == text


def test_a_tray_message_only_for_my_jobs_that_just_finished_or_failed(qtbot):
    from PySide6.QtWidgets import QWidget

    from drqueue.gui.controller import Controller
    from drqueue.gui.notify import Notifier

    parent = QWidget()
    qtbot.addWidget(parent)
    controller = Controller("http://127.0.0.1:9", "token")  # never started: no request is sent
    told: list[int] = []
    notifier = Notifier(controller, lambda: "ann", parent)
    notifier.notified.connect(lambda job_id, _title, _text: told.append(job_id))
    controller.jobs_loaded.emit(
        [job(1, owner="ann", status="finished"), job(2, owner="ann", status="running")]
    )
    assert told == []  # ended before the window opened
    controller.jobs_changed.emit(
        [job(2, owner="ann", status="error"), job(3, owner="bob", status="finished")], []
    )
    controller.jobs_changed.emit([job(2, owner="ann", status="error")], [])  # no news twice
    assert told == [2]
    said: list[str] = []
    notifier.notified.connect(lambda _id, title, text: said.append(f"{title}: {text}"))
    burst = [job(n, owner="ann", status="error" if n == 12 else "finished") for n in range(10, 20)]
    controller.jobs_changed.emit([job(n, owner="ann", status="running") for n in range(10, 20)], [])
    controller.jobs_changed.emit(burst, [])  # ten at once: one message that counts them
    assert said == ["10 of your jobs ended: 9 finished, 1 failed: #12"]
    controller._client.close()


HOSTILE_NAME = '<img src="/dev/zero"><a href="x">Your token expired: click</a>'


def test_a_job_name_that_looks_like_html_is_shown_as_written(qtbot):
    """Qt reads text that looks like HTML as HTML: a job named <img src="/dev/zero"> made the
    wrangler's window read /dev/zero until it died, on opening the job or hovering its row."""
    from drqueue.gui.controller import Controller
    from drqueue.gui.job_detail import JobDetail
    from drqueue.gui.models import JobsModel

    model = JobsModel()
    model.set_items([job(1, name=HOSTILE_NAME)])
    column = next(i for i, c in enumerate(model.columns) if c.title == "Name")
    tip = model.data(model.index(0, column), Qt.ItemDataRole.ToolTipRole)
    assert "<img" not in tip and "&lt;img src=&quot;/dev/zero&quot;&gt;" in tip
    controller = Controller("http://127.0.0.1:9", "token")  # never started: no request is sent
    detail = JobDetail(controller)
    qtbot.addWidget(detail)
    detail.job_id = 1
    detail._job_read(job(1, name=HOSTILE_NAME, waiting_reason=HOSTILE_NAME))
    assert detail.title.textFormat() == Qt.TextFormat.PlainText
    assert HOSTILE_NAME in detail.title.text()
    assert detail.reason.textFormat() == Qt.TextFormat.PlainText
    controller._client.close()


def test_open_frame_hands_the_desktop_plain_image_files_only(tmp_path, monkeypatch):
    import os

    from drqueue.gui.job_detail import frame_refusal, without_secrets

    image = tmp_path / "frame_0001.png"
    image.write_bytes(b"\x89PNG")
    assert frame_refusal(str(image)) == ""
    launcher = tmp_path / "frame_0001.desktop"
    launcher.write_text("[Desktop Entry]\nExec=sh -c 'id > /tmp/pwned'\n")
    assert "not an image file" in frame_refusal(str(launcher))
    assert "not an image file" in frame_refusal("/etc/passwd")
    script = tmp_path / "run.png"
    script.write_text("#!/bin/sh\nid\n")
    script.chmod(0o755)
    assert "executable" in frame_refusal(str(script))
    linked = tmp_path / "linked.png"
    linked.symlink_to(image)
    assert "a link" in frame_refusal(str(linked))
    assert "not reachable" in frame_refusal(str(tmp_path / "gone.png"))
    monkeypatch.setenv("DRQUEUE_TOKEN", "s3cret")
    with without_secrets():
        assert "DRQUEUE_TOKEN" not in os.environ  # what a viewer started now inherits
    assert os.environ["DRQUEUE_TOKEN"] == "s3cret"


def test_the_submit_dialog_has_the_clis_options_and_sends_them_as_the_api_names_them(qtbot):
    """Where and how a job runs (`drqueue submit`'s --os, --min-ram, --min-cores, --gpus,
    --hosts, --exclude-hosts, --timeout, --max-parallel, --after, --env, --owner) from the
    dialog; folded away and not sent until asked for."""
    from drqueue.api_types import RendererInfo
    from drqueue.gui.controller import Controller
    from drqueue.gui.submit_dialog import SubmitDialog

    controller = Controller("http://127.0.0.1:9", "token")  # never started: no request is sent
    shell = RendererInfo.from_json(
        {"name": "shell", "description": "any command", "executable": "", "needs_scene": False,
         "params": [{"name": "cmd", "type": "str", "default": None, "help": "", "required": True,
                     "choices": []}]}
    )  # fmt: skip
    dialog = SubmitDialog(None, controller, [shell])
    qtbot.addWidget(dialog)
    dialog.more_lines["requirements.min_ram_gb"].setText("16")
    assert "min_ram_gb" not in str(dialog.body())  # the group is folded: nothing of it is sent
    dialog.more_box.setChecked(True)
    dialog.os.setCurrentIndex(dialog.os.findData("linux"))
    typed = {
        "requirements.min_cores": "8",
        "requirements.gpus": "1",
        "requirements.hosts": "render0*, render1*",
        "requirements.exclude_hosts": "render07",
        "timeout": "600",
        "max_parallel": "4",
        "after": "12, 13",
        "owner": "ann",
    }
    for key, text in typed.items():
        dialog.more_lines[key].setText(text)
    dialog.pools.setText("lighting")
    dialog.env.setPlainText("OCIO=/proj/ocio.config\nLICENSE=5053@lic")
    body = dialog.body()
    assert body["requirements"] == {
        "pools": ["lighting"],
        "os": "linux",
        "min_ram_gb": 16.0,
        "min_cores": 8,
        "gpus": 1,
        "hosts": ["render0*", "render1*"],
        "exclude_hosts": ["render07"],
    }
    assert (body["timeout"], body["max_parallel"], body["after"], body["owner"]) == (
        600.0, 4, [12, 13], "ann"
    )  # fmt: skip
    assert body["env"] == {"OCIO": "/proj/ocio.config", "LICENSE": "5053@lic"}
    dialog.more_lines["max_parallel"].setText("four")  # sent as typed: the master says why
    assert dialog.body()["max_parallel"] == "four"
    dialog.more_lines["after"].setText("12, 13:frames")  # issue 15: frame by frame
    assert (dialog.body()["after"], dialog.body()["after_frames"]) == ([12], [13])
    dialog.more_lines["after"].setText("13:frames")
    assert "after" not in dialog.body() and dialog.body()["after_frames"] == [13]
    controller._client.close()


def test_a_big_jobs_table_holds_its_first_tasks_and_the_one_picked_in_the_grid(qtbot, tmp_path):
    """The grid shows every task; the table the first TABLE_TASKS and the one selected, so a
    100,000-task job's refresh does not read every task each time it changes."""
    from _live_api import TOKEN, live_api

    from drqueue.gui.controller import Controller
    from drqueue.gui.job_detail import TABLE_TASKS, JobDetail
    from drqueue.models import JobSpec, split_frames

    with live_api(tmp_path) as api:
        frames = TABLE_TASKS + 500
        job_id = api.store.create_job(
            JobSpec("shell", 1, frames, params={"cmd": "true"}), split_frames(1, frames)
        )
        controller = Controller(api.url, TOKEN)
        detail = JobDetail(controller)
        qtbot.addWidget(detail)
        try:
            detail.show_job(job_id)
            qtbot.waitUntil(lambda: len(detail.tasks.items()) == TABLE_TASKS, timeout=30_000)
            assert detail.grid.grid is not None and len(detail.grid.grid.states) == frames
            assert not detail.tasks_note.isHidden()
            detail.select_task(frames - 1)  # the last, past the table
            qtbot.waitUntil(lambda: detail.tasks.find(frames - 1) is not None, timeout=30_000)
            assert len(detail.tasks.items()) == TABLE_TASKS + 1
        finally:
            controller.stop()


def test_a_log_line_of_a_megabyte_is_shown_cut_and_counted():
    from drqueue.gui.job_detail import LOG_LINE_CHARS, shown_log

    assert shown_log("frame 1\nsaved\n") == "frame 1\nsaved\n"
    long = "x" * (1 << 20)
    shown = shown_log(f"start\n{long}\nend")
    assert shown.startswith("start\n" + "x" * LOG_LINE_CHARS + " … (")
    assert shown.endswith(f"({(1 << 20) - LOG_LINE_CHARS:,} more characters)\nend")


def test_a_tasks_failure_class_has_its_column_with_the_detail_as_its_tip(qapp):
    from drqueue.api_types import Task
    from drqueue.gui.models import TasksModel

    model = TasksModel()
    body = {"id": 1, "job_id": 1, "start": 1, "end": 1, "state": "error"}
    failed = {"failure_class": "missing-asset", "failure_detail": "/p/tex/wood.png"}
    model.set_items(
        [
            Task.from_json({**body, "index": 0, **failed}),
            Task.from_json({**body, "id": 2, "index": 1}),
        ]
    )
    number = [c.title for c in TasksModel.columns].index("Failure")
    assert column(model, number) == ["missing-asset", ""]
    assert "/p/tex/wood.png" in model.index(0, number).data(Qt.ItemDataRole.ToolTipRole)
