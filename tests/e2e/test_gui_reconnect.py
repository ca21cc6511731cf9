"""The desktop GUI when its master is not there: at start, and going away while it runs.

A farm of its own (a master and no slave: nothing here renders), whose token is written
before the master first starts, so the window can be opened on a master that is not up yet.
The window must stay up with a banner, and reconnect by itself when the master is back.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from farm import Farm
from gui_support import SLOW, gui_window, needs_qt, save, screenshot_folder

from drqueue.config import write_private

pytestmark = [pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory, request) -> Path:
    needs_qt()
    return screenshot_folder(tmp_path_factory, request)


@pytest.fixture(scope="module")
def cold_farm(tmp_path_factory):
    """A farm whose master is not started yet, its admin token already chosen."""
    farm = Farm(tmp_path_factory.mktemp("cold-farm"))
    farm.config.ensure_dirs()
    write_private(farm.config.token_file, secrets.token_urlsafe(32) + "\n")
    yield farm
    farm.stop()


def test_a_master_down_at_start_and_going_away_shows_the_banner_and_the_window_reconnects(
    qtbot, qapp, tmp_path, cold_farm: Farm, screenshots
):
    from drqueue.gui.controller import CONNECTED, UNREACHABLE

    config = cold_farm.config
    window = gui_window(
        qtbot, qapp, tmp_path, config.master_url, config.api_token(), connected=False
    )
    qtbot.waitUntil(lambda: window.controller.state == UNREACHABLE, timeout=SLOW)
    assert window.banner.isVisible()
    assert "Cannot reach the master" in window.banner.text.text()
    save(window, screenshots, "banner-unreachable")

    cold_farm.start_master()
    qtbot.waitUntil(lambda: window.controller.state == CONNECTED, timeout=SLOW)
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=SLOW)
    job = cold_farm.client.submit(
        "shell", name="waits for a slave", start=1, end=3, params={"cmd": "true"}
    )
    qtbot.waitUntil(lambda: window.jobs_model.job(job.id) is not None, timeout=SLOW)

    cold_farm.kill_master()
    qtbot.waitUntil(lambda: window.controller.state == UNREACHABLE, timeout=SLOW)
    assert window.banner.isVisible()
    assert window.jobs_model.job(job.id) is not None  # what was known stays on screen
    window.controller.job_action([job.id], "stop")  # a control with no master: one line
    qtbot.waitUntil(lambda: any("Stop refused" in m for m in window.messages), timeout=SLOW)

    cold_farm.start_master()
    qtbot.waitUntil(lambda: window.controller.state == CONNECTED, timeout=SLOW)
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=SLOW)
    window.controller.job_action([job.id], "stop")
    qtbot.waitUntil(lambda: cold_farm.client.job(job.id).control == "stopped", timeout=SLOW)
    assert window.isVisible()
