"""The desktop GUI's task controls and failures, on a real farm of its own (a master and two
slaves): requeue failed from the jobs menu, a tray message when a job of yours fails, and a
running task killed and requeued from the job's page (`drqueue task kill`/`requeue`).

Waits for conditions, never for a time (tests/e2e/test_gui.py says how these tests work).
"""

from __future__ import annotations

import pytest
from farm import Farm, stills_command
from gui_support import SLOW, row_text, running

pytestmark = [pytest.mark.timeout(420), pytest.mark.usefixtures("gui_idle_farm")]


def test_requeue_failed_runs_the_failed_tasks_again_and_a_failure_of_mine_is_told(
    qtbot, window, farm: Farm
):
    job = farm.client.submit(
        "shell", name="gui fails", start=1, end=2, retries=0, params={"cmd": "sh -c 'exit 3'"}
    )
    qtbot.waitUntil(lambda: "error" in (row_text(window, job.id, 3) or ""), timeout=SLOW)
    qtbot.waitUntil(
        lambda: any(m.startswith(f"✕ Job {job.id} failed") for m in window.messages), timeout=SLOW
    )
    assert all(task.attempts == 1 for task in farm.client.tasks(job.id))

    jobs = window.jobs_view
    assert jobs.select_job(job.id)
    jobs.show_menu(jobs.table.visualRect(jobs.table.currentIndex()).center())
    qtbot.waitUntil(lambda: jobs.menu is not None and jobs.menu.isVisible(), timeout=SLOW)
    next(a for a in jobs.menu.actions() if a.text() == "Requeue failed").trigger()
    jobs.menu.close()
    qtbot.waitUntil(
        lambda: all(task.attempts == 2 for task in farm.client.tasks(job.id)), timeout=SLOW
    )
    qtbot.waitUntil(lambda: farm.client.job(job.id).status == "error", timeout=SLOW)


def test_a_running_task_is_killed_and_requeued_from_the_job_page(
    qtbot, window, farm: Farm, tmp_path
):
    gate = tmp_path / "gate"
    job = farm.client.submit(
        "shell", name="gui tasks", start=1, end=2, params={"cmd": stills_command(tmp_path, gate)}
    )
    qtbot.waitUntil(lambda: running(window, job.id) == 2, timeout=SLOW)
    window.open_job(job.id)
    detail = window.detail
    qtbot.waitUntil(lambda: detail.tasks.rowCount() == 2, timeout=SLOW)
    detail.select_task(0)
    qtbot.waitUntil(lambda: detail.task_buttons["kill"].isEnabled(), timeout=SLOW)

    detail.task_buttons["kill"].click()  # back to the queue, and run again: a second attempt
    qtbot.waitUntil(lambda: farm.client.task(job.id, 0).attempts >= 2, timeout=SLOW)
    qtbot.waitUntil(lambda: farm.client.task(job.id, 0).state == "running", timeout=SLOW)

    before = farm.client.task(job.id, 0).attempts
    detail.task_buttons["requeue"].click()
    qtbot.waitUntil(lambda: farm.client.task(job.id, 0).attempts > before, timeout=SLOW)
    qtbot.waitUntil(
        lambda: any("Task requeue: 1 of 1 done" in m for m in window.messages), timeout=SLOW
    )

    gate.touch()
    qtbot.waitUntil(lambda: row_text(window, job.id, 4) == "100%", timeout=SLOW)
