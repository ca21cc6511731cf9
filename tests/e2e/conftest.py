"""Fixtures of the desktop GUI's tests on the shared two-slave farm (test_gui.py,
test_gui_tasks.py); none is autouse, so the other end-to-end modules do not see them.  A GUI
module asks for them with ``pytestmark = pytest.mark.usefixtures("gui_idle_farm")`` and the
``window`` and ``gui_screenshots`` arguments (tests/e2e/gui_support.py has the rest)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from farm import Farm, wait_for
from gui_support import gui_window, needs_qt, screenshot_folder


@pytest.fixture(scope="module")
def gui_screenshots(tmp_path_factory, request) -> Path:
    """<basetemp>/gui-screenshots, once PySide6 and ffmpeg (the renders' tool) are there."""
    needs_qt()
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed (make test installs it)")
    return screenshot_folder(tmp_path_factory, request)


@pytest.fixture
def gui_idle_farm(farm: Farm):
    """Each test starts with both engines up, and leaves nothing running."""
    farm.wait_engines(2, timeout=120)
    yield
    for job in farm.client.jobs():
        if job.counts.running or job.status in ("queued", "waiting", "stopped"):
            farm.client.job_action(job.id, "kill")
    wait_for(
        lambda: all(job.counts.running == 0 for job in farm.client.jobs()),
        60,
        what="every task off its engine",
    )


@pytest.fixture
def window(qtbot, qapp, tmp_path, farm: Farm, gui_screenshots):
    """The window on the module's farm, with its admin token, connected."""
    return gui_window(qtbot, qapp, tmp_path, farm.client.url, farm.client.token)
