"""``drqueue gui``: the application, its window, and the controller that talks to the master."""

from __future__ import annotations

import signal
import sys

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from drqueue.config import Config, load_config
from drqueue.errors import DrQueueError
from drqueue.gui import theme
from drqueue.gui.controller import Controller
from drqueue.gui.settings import Connection, load_connection, open_settings
from drqueue.gui.window import MainWindow


def application() -> QApplication:
    """The one QApplication, made and styled on first use."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setApplicationName("DrQueue")
        app.setOrganizationName("DrQueue")
        theme.apply(app)
    return app


def open_window(settings: QSettings, connection: Connection | None = None) -> MainWindow:
    """The main window on *connection* (else the saved or the CLI's), its stream started."""
    connection = connection or load_connection(settings)
    try:
        config = load_config()  # for a TLS master's certificate, as the CLI's client reads it
    except DrQueueError:  # a bad drqueue.toml: the settings dialog still works
        config = Config()
    controller = Controller(connection.url, connection.token, config=config)
    window = MainWindow(controller, connection, settings)
    controller.start()
    return window


#: Milliseconds between two returns to Python while Qt's loop runs, so Ctrl-C is seen.
SIGNAL_CHECK_MS = 300


def run(settings_file: str | None = None) -> int:
    app = application()
    window = open_window(open_settings(settings_file))
    window.show()
    # Qt's loop holds Python's signal handlers until Python code runs: Ctrl-C in the terminal
    # closes the window (and its threads) only with a timer that lets Python run now and then.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QTimer()
    wake.start(SIGNAL_CHECK_MS)
    wake.timeout.connect(lambda: None)
    return app.exec()
