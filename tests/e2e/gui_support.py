"""What the desktop GUI's tests share: the window on a farm, and its screenshots.

The window is the real one (drqueue.gui.app.open_window) with its own settings file, drawn
offscreen (QT_QPA_PLATFORM, tests/conftest.py); screenshots are ``QWidget.grab()`` PNGs under
``<pytest's basetemp>/gui-screenshots/`` (the run's summary prints where).
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import pytest

#: How long a condition in the window may take before the test fails (it only bounds a failure).
SLOW = 90_000

try:
    from drqueue.gui import theme
    from drqueue.gui.app import open_window
    from drqueue.gui.controller import CONNECTED
    from drqueue.gui.settings import Connection, open_settings
except ImportError:  # pragma: no cover - the test extra installs PySide6
    open_window = None


def needs_qt() -> None:
    """Fail (or with DRQUEUE_ALLOW_SKIP=1 skip) when PySide6 is missing: these tests run in CI."""
    if open_window is None:
        why = "PySide6 is not installed (the test extra installs it)"
        if os.environ.get("DRQUEUE_ALLOW_SKIP") == "1":
            pytest.skip(why)
        pytest.fail(f"{why}; DRQUEUE_ALLOW_SKIP=1 skips these tests")


def screenshot_folder(tmp_path_factory, request) -> Path:
    folder = tmp_path_factory.getbasetemp() / "gui-screenshots"
    folder.mkdir(exist_ok=True)
    request.config.gui_screenshots = folder
    return folder


def gui_window(qtbot, qapp, tmp_path: Path, url: str, token: str, *, connected: bool = True):
    """The main window on *url* with *token*, shown; with *connected*, once its stream is live."""
    theme.apply(qapp)
    settings = open_settings(str(tmp_path / "drqueue-gui.ini"))
    window = open_window(settings, Connection(url, token, getpass.getuser(), "the test"))
    qtbot.addWidget(window)
    window.resize(1360, 820)
    window.show()
    if connected:
        qtbot.waitUntil(lambda: window.controller.state == CONNECTED, timeout=SLOW)
    return window


def save(widget, folder: Path, name: str) -> Path:
    """A PNG of *widget* as drawn now; its path is printed, to be looked at."""
    path = folder / f"{name}.png"
    assert widget.grab().save(str(path)), f"cannot save {path}"
    print(f"screenshot: {path}")
    return path


# -- reading the window ----------------------------------------------------------------------


def running(window, job_id: int) -> int | None:
    """How many tasks of the job run, as the window knows it (None: no row yet)."""
    job = window.jobs_model.job(job_id)
    return None if job is None else job.counts.running


def row_text(window, job_id: int, column: int) -> str | None:
    """A job's cell as the jobs table shows it (None: no row yet)."""
    model = window.jobs_model
    row = model.row_of(job_id)
    return None if row is None else model.index(row, column).data()


# -- answering the dialogs -------------------------------------------------------------------


def answer_next_dialog(fill) -> None:
    """Call ``fill(dialog)`` on the next modal dialog the window opens (a question, an input):
    the test's hand on a dialog that ``exec()`` waits for.  It looks again each 50 ms until the
    dialog is up."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def attempt() -> None:
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(50, attempt)
        else:
            fill(dialog)

    QTimer.singleShot(0, attempt)


def press(label: str, *, tick: bool = False):
    """A ``fill`` for answer_next_dialog: press the message box's button *label* (ticking its
    check box first, with *tick*)."""

    def fill(box) -> None:
        if tick:
            box.checkBox().setChecked(True)
        next(button for button in box.buttons() if button.text() == label).click()

    return fill


def enter(value):
    """A ``fill`` for answer_next_dialog: type *value* into an input dialog and accept it."""

    def fill(dialog) -> None:
        if isinstance(value, int):
            dialog.setIntValue(value)
        else:
            dialog.setTextValue(value)
        dialog.accept()

    return fill
