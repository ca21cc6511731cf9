"""The desktop GUI (``drqueue gui``) driven with pytest-qt, offscreen, against a real farm.

The master, its controller and two slaves are real processes (tests/farm.py), and the jobs
render real PNG stills with FFmpeg (tests/farm.stills_command), so thumbnails and outputs are
real.  Each test waits for conditions (``qtbot.waitUntil``), never for a time; renders that
must be seen half-way wait on a gate file the test creates when it is ready.

Screenshots of each view are saved under ``<basetemp>/gui-screenshots/``: look at them.
"""

from __future__ import annotations

import pytest
from farm import Farm, stills_command
from gui_support import (
    SLOW,
    answer_next_dialog,
    enter,
    gui_window,
    press,
    row_text,
    running,
    save,
)

pytestmark = [pytest.mark.timeout(420), pytest.mark.usefixtures("gui_idle_farm")]


def test_a_job_submitted_through_the_dialog_reaches_100_percent_with_its_frames_and_log(
    qtbot, window, farm: Farm, tmp_path, gui_screenshots
):
    from PySide6.QtCore import QObject, Qt, QUrl, Slot
    from PySide6.QtGui import QDesktopServices

    qtbot.waitUntil(lambda: bool(window.renderers), timeout=SLOW)
    qtbot.waitUntil(lambda: window.computers_view.model.rowCount() == 2, timeout=SLOW)
    out = tmp_path / "out"
    out.mkdir()

    dialog = window.open_submit()
    qtbot.waitUntil(dialog.isVisible, timeout=SLOW)
    dialog.name.setText("gui stills")
    dialog.end.setValue(4)
    # The shell renderer's command is required: the master says so under its field.
    qtbot.waitUntil(lambda: dialog.fields["params.cmd"].error.isVisible(), timeout=SLOW)
    assert "cmd" in dialog.fields["params.cmd"].error.text()
    save(dialog, gui_screenshots, "submit-dialog-refused")
    dialog.param_inputs["cmd"].setText(stills_command(out))
    dialog.param_inputs["output"].setText(str(out / "still_####.png"))
    qtbot.waitUntil(lambda: dialog.preview_answer is not None, timeout=SLOW)
    assert dialog.preview_answer.tasks == 4
    assert not dialog.problem.isVisible()
    save(dialog, gui_screenshots, "submit-dialog")

    with qtbot.waitSignal(dialog.submitted, timeout=SLOW) as submitted:
        qtbot.mouseClick(dialog.submit_button, Qt.MouseButton.LeftButton)
    job_id = submitted.args[0]
    assert farm.client.job(job_id).name == "gui stills"

    # The row arrives by the live stream and goes to 100% without a reload.
    qtbot.waitUntil(lambda: row_text(window, job_id, 4) == "100%", timeout=SLOW)
    assert "finished" in row_text(window, job_id, 3)
    window.jobs_view.select_job(job_id)
    save(window, gui_screenshots, "jobs")

    # Double-click opens the job: the frame grid, the tasks, the last frame.
    view = window.jobs_view.table
    where = view.visualRect(view.model().index(view.currentIndex().row(), 1)).center()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=where)  # a press, as a hand
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=where)
    detail = window.detail
    qtbot.waitUntil(
        lambda: detail.grid.grid is not None and detail.grid.grid.states == "ffff", timeout=SLOW
    )
    qtbot.waitUntil(lambda: detail.tasks.rowCount() == 4, timeout=SLOW)
    qtbot.waitUntil(lambda: not detail.thumbnail.pixmap().isNull(), timeout=SLOW)

    # A click on the third cell opens task 2's log.
    qtbot.mouseClick(
        detail.grid, Qt.MouseButton.LeftButton, pos=detail.grid.cell_rect(2).center().toPoint()
    )
    qtbot.waitUntil(lambda: "wrote frame 3" in detail.log.toPlainText(), timeout=SLOW)
    assert detail.task_index == 2
    save(window, gui_screenshots, "job-detail")

    # Open frame hands the rendered PNG to the desktop (here, to a handler of the test's).
    class Viewer(QObject):
        opened: list[str] = []

        @Slot(QUrl)
        def show(self, url: QUrl) -> None:
            self.opened.append(url.toLocalFile())

    viewer = Viewer()
    QDesktopServices.setUrlHandler("file", viewer, "show")
    try:
        qtbot.mouseClick(detail.open_frame_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: bool(viewer.opened), timeout=SLOW)
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert viewer.opened == [str(out / "still_0003.png")]


def test_stop_and_continue_from_the_context_menu_reach_the_master(
    qtbot, window, farm: Farm, tmp_path, gui_screenshots
):
    gate = tmp_path / "gate"
    out = tmp_path / "out"
    out.mkdir()
    job = farm.client.submit(
        "shell",
        name="gui gated",
        start=1,
        end=6,
        params={"cmd": stills_command(out, gate), "output": str(out / "still_####.png")},
    )
    qtbot.waitUntil(lambda: running(window, job.id) == 2, timeout=SLOW)

    def choose(label: str, shot: str | None = None) -> None:
        jobs = window.jobs_view
        assert jobs.select_job(job.id)
        table = jobs.table
        jobs.show_menu(table.visualRect(table.currentIndex()).center())
        qtbot.waitUntil(lambda: jobs.menu is not None and jobs.menu.isVisible(), timeout=SLOW)
        if shot:
            save(jobs.menu, gui_screenshots, shot)
        action = next(a for a in jobs.menu.actions() if a.text() == label)
        assert action.isEnabled()
        action.trigger()
        jobs.menu.close()

    choose("Stop", shot="jobs-context-menu")
    qtbot.waitUntil(lambda: farm.client.job(job.id).control == "stopped", timeout=SLOW)
    qtbot.waitUntil(lambda: "stopp" in row_text(window, job.id, 3), timeout=SLOW)
    assert any("Stop: 1 of 1 done" in m for m in window.messages)
    save(window, gui_screenshots, "jobs-stopping")

    # The job's page while two tasks run: a running task's log is followed as it grows.
    window.open_job(job.id)
    detail = window.detail
    qtbot.waitUntil(lambda: detail.grid.states().count("running") == 2, timeout=SLOW)
    task = detail.grid.states().index("running")
    detail.select_task(task)
    frame = task + 1
    qtbot.waitUntil(lambda: detail.log.toPlainText().count(f"waiting {frame}") >= 2, timeout=SLOW)
    seen = detail.log.toPlainText().count(f"waiting {frame}")
    qtbot.waitUntil(lambda: detail.log.toPlainText().count(f"waiting {frame}") > seen, timeout=SLOW)
    assert detail.log_state.text().endswith("live")
    save(window, gui_screenshots, "job-detail-running")
    window.tabs.setCurrentWidget(window.jobs_view)

    choose("Continue")
    qtbot.waitUntil(lambda: farm.client.job(job.id).control == "active", timeout=SLOW)
    gate.touch()
    qtbot.waitUntil(lambda: row_text(window, job.id, 4) == "100%", timeout=SLOW)
    assert farm.client.job(job.id).status == "finished"


def test_priority_kill_rerun_and_delete_ask_first_and_reach_the_master(
    qtbot, window, farm: Farm, tmp_path
):
    quick = farm.client.submit("shell", name="gui rerun", start=1, end=2, params={"cmd": "true"})
    jobs = window.jobs_view
    qtbot.waitUntil(lambda: row_text(window, quick.id, 4) == "100%", timeout=SLOW)
    gate = tmp_path / "gate"  # never opened: its tasks run until they are killed
    gated = farm.client.submit(
        "shell", name="gui killed", start=1, end=4, params={"cmd": stills_command(tmp_path, gate)}
    )
    qtbot.waitUntil(lambda: running(window, gated.id) == 2, timeout=SLOW)

    assert jobs.select_job(gated.id)
    answer_next_dialog(enter(77))
    jobs.run("priority")
    qtbot.waitUntil(lambda: farm.client.job(gated.id).priority == 77, timeout=SLOW)
    qtbot.waitUntil(lambda: row_text(window, gated.id, 5) == "77", timeout=SLOW)

    answer_next_dialog(press("Cancel"))  # asked, and told no: nothing is sent
    jobs.run("kill")
    answer_next_dialog(press("Kill"))
    jobs.run("kill")
    qtbot.waitUntil(lambda: farm.client.job(gated.id).counts.running == 0, timeout=SLOW)
    assert farm.client.job(gated.id).control == "stopped"

    answer_next_dialog(press("Delete", tick=True))  # with force
    jobs.run("delete")
    qtbot.waitUntil(lambda: window.jobs_model.job(gated.id) is None, timeout=SLOW)
    assert gated.id not in [job.id for job in farm.client.jobs()]

    first_end = farm.client.tasks(quick.id)[0].ended_at
    assert jobs.select_job(quick.id)
    answer_next_dialog(press("Rerun"))
    jobs.run("rerun")
    qtbot.waitUntil(
        lambda: (farm.client.tasks(quick.id)[0].ended_at or 0) > first_end, timeout=SLOW
    )
    qtbot.waitUntil(lambda: row_text(window, quick.id, 4) == "100%", timeout=SLOW)


def test_computer_and_pool_controls_reach_the_master(qtbot, window, farm: Farm, gui_screenshots):
    view = window.computers_view
    window.tabs.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.model.rowCount() == 2, timeout=SLOW)
    assert view.select("beta")
    try:
        view.run("disable")
        qtbot.waitUntil(lambda: not farm.client.computer("beta").enabled, timeout=SLOW)
        qtbot.waitUntil(
            lambda: "disabled" in view.model.index(view.model.row_of("beta"), 1).data(),
            timeout=SLOW,
        )

        answer_next_dialog(enter(3))
        view.run("limit")
        qtbot.waitUntil(lambda: farm.client.computer("beta").max_tasks == 3, timeout=SLOW)

        answer_next_dialog(enter("gui-pool"))
        view.create_pool()
        qtbot.waitUntil(lambda: [p.name for p in view.pools] == ["gui-pool"], timeout=SLOW)
        answer_next_dialog(enter("gui-pool"))
        view.run("pool-add")
        qtbot.waitUntil(lambda: farm.client.computer("beta").pools == ["gui-pool"], timeout=SLOW)
        qtbot.waitUntil(lambda: view.model.find("beta").pools == ["gui-pool"], timeout=SLOW)
        save(window, gui_screenshots, "computers-controls")

        answer_next_dialog(enter("gui-pool"))
        view.run("pool-remove")
        qtbot.waitUntil(lambda: farm.client.computer("beta").pools == [], timeout=SLOW)
        answer_next_dialog(enter("gui-pool"))
        view.delete_pool()
        qtbot.waitUntil(lambda: farm.client.pools() == [], timeout=SLOW)

        answer_next_dialog(enter(0))  # 0: no limit
        view.run("limit")
        qtbot.waitUntil(lambda: farm.client.computer("beta").max_tasks is None, timeout=SLOW)
    finally:
        farm.client.computer_action("beta", "enable")
        farm.client.computer_limit("beta", None)
    view.run("enable")
    qtbot.waitUntil(
        lambda: "idle" in view.model.index(view.model.row_of("beta"), 1).data(), timeout=SLOW
    )


def test_a_refused_control_is_a_line_in_the_status_bar(qtbot, window, farm: Farm):
    job = farm.client.submit("shell", name="gui refused", start=1, end=1, params={"cmd": "true"})
    qtbot.waitUntil(lambda: row_text(window, job.id, 4) == "100%", timeout=SLOW)
    farm.client.delete_job(job.id)  # gone behind the window's back
    window.controller.job_action([job.id], "stop")
    qtbot.waitUntil(lambda: any("Stop refused" in m for m in window.messages), timeout=SLOW)
    assert window.isVisible()


def test_a_wrong_token_shows_the_banner_and_settings_and_a_right_one_connects(
    qtbot, qapp, tmp_path, farm: Farm, gui_screenshots
):
    from drqueue.gui.controller import CONNECTED, UNAUTHORIZED

    window = gui_window(qtbot, qapp, tmp_path, farm.client.url, "not-a-token", connected=False)
    qtbot.waitUntil(lambda: window.controller.state == UNAUTHORIZED, timeout=SLOW)
    qtbot.waitUntil(
        lambda: window.settings_dialog is not None and window.settings_dialog.isVisible(),
        timeout=SLOW,
    )
    assert window.banner.isVisible()
    assert "refused the token" in window.banner.text.text()
    dialog = window.settings_dialog
    assert "token" in dialog.problem.text()
    assert "not-a-token" not in window.banner.text.text()  # the token is never shown
    save(window, gui_screenshots, "banner-wrong-token")
    save(dialog, gui_screenshots, "settings")

    dialog.token.setText(farm.client.token)
    dialog.save()
    qtbot.waitUntil(lambda: window.controller.state == CONNECTED, timeout=SLOW)
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=SLOW)
    qtbot.waitUntil(lambda: window.computers_view.model.rowCount() == 2, timeout=SLOW)
    window.tabs.setCurrentWidget(window.computers_view)
    save(window, gui_screenshots, "computers")
