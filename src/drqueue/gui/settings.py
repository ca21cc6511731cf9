"""Where the GUI finds its master and token, and the settings dialog that changes them.

On the first start the window uses what the CLI uses (:func:`drqueue.config.load_config`:
``DRQUEUE_MASTER`` and ``DRQUEUE_TOKEN``, else ``drqueue.toml`` and the master's token file on
its own machine).  What the settings dialog saves is kept with ``QSettings``
(``~/.config/DrQueue/drqueue-gui.ini`` on Linux, written owner-only) and wins from then on;
**Use the CLI's settings** forgets it again.  The token is never logged or shown in a
message: only its last four characters, to tell two tokens apart.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from drqueue.config import load_config
from drqueue.errors import DrQueueError
from drqueue.gui.plain import PlainLabel

#: QSettings' organisation and application: the file's folder and name.
ORGANISATION, APPLICATION = "DrQueue", "drqueue-gui"


@dataclass
class Connection:
    """The master the window talks to, the token it sends, and whose jobs are "mine"."""

    url: str
    token: str
    me: str
    #: Where url and token came from, in words ("saved settings", "DRQUEUE_MASTER", ...).
    source: str

    def __repr__(self) -> str:
        return f"Connection({self.url!r}, me={self.me!r}, from {self.source})"  # never the token


def open_settings(path: str | None = None) -> QSettings:
    """The GUI's QSettings: the user's file, or the INI file *path* (the tests' own)."""
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION
    )


def cli_connection() -> Connection:
    """The master and token the CLI would use here."""
    try:
        config = load_config()
        url, token = config.master_url, config.api_token()
    except DrQueueError:  # a bad drqueue.toml: the dialog lets the user type them
        url, token = "http://127.0.0.1:7680", os.environ.get("DRQUEUE_TOKEN", "")
    if os.environ.get("DRQUEUE_MASTER"):
        source = "DRQUEUE_MASTER"
    else:
        source = "drqueue.toml or the local master"
    if os.environ.get("DRQUEUE_TOKEN"):
        source += " and DRQUEUE_TOKEN"
    return Connection(url, token, getpass.getuser(), source)


def load_connection(settings: QSettings) -> Connection:
    """The saved settings where there are some, else the CLI's."""
    cli = cli_connection()
    url = str(settings.value("master/url", "") or "")
    token = str(settings.value("master/token", "") or "")
    me = str(settings.value("user/name", "") or "") or cli.me
    if not url:
        return Connection(cli.url, token or cli.token, me, cli.source)
    return Connection(url, token, me, "saved settings")


def save_connection(settings: QSettings, connection: Connection) -> None:
    settings.setValue("master/url", connection.url)
    settings.setValue("master/token", connection.token)
    settings.setValue("user/name", connection.me)
    # It holds a token: written owner-only from the start (a chmod after the write left it
    # readable by everyone for a moment, in a folder anyone could list).
    previous = os.umask(0o077)
    try:
        settings.sync()
    finally:
        os.umask(previous)
    if os.path.exists(settings.fileName()):
        os.chmod(settings.fileName(), 0o600)
        os.chmod(os.path.dirname(settings.fileName()), 0o700)


def forget_connection(settings: QSettings) -> None:
    for key in ("master/url", "master/token", "user/name"):
        settings.remove(key)
    settings.sync()


def token_hint(token: str) -> str:
    return f"…{token[-4:]}" if len(token) > 8 else ("(set)" if token else "(none)")


class SettingsDialog(QDialog):
    """The master's address, the token, and your name; Save reconnects the window."""

    saved = Signal(object)  # the new Connection

    def __init__(self, parent: QWidget | None, connection: Connection, settings: QSettings):
        super().__init__(parent)
        self.setWindowTitle("DrQueue settings")
        self.setMinimumWidth(560)
        self.settings = settings
        self.source = connection.source
        self.url = QLineEdit(connection.url)
        self.url.setPlaceholderText("http://master:7680")
        self.token = QLineEdit(connection.token)
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("a token from `drqueue token create`")
        show = QPushButton("Show")
        show.setCheckable(True)
        show.toggled.connect(
            lambda on: self.token.setEchoMode(
                QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.Password
            )
        )
        token_row = QHBoxLayout()
        token_row.addWidget(self.token, 1)
        token_row.addWidget(show)
        self.me = QLineEdit(connection.me)
        self.me.setPlaceholderText("the owner name your jobs carry")
        self.problem = PlainLabel()
        self.problem.setObjectName("formError")
        self.problem.setWordWrap(True)
        self.problem.hide()
        self.where = PlainLabel(f"Now from: {connection.source}")
        self.where.setObjectName("muted")
        self.where.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Master", self.url)
        form.addRow("Token", token_row)
        form.addRow("Your name", self.me)
        hint = PlainLabel(
            "Your name marks your jobs: <i>Only mine</i> shows them, and a tray message says "
            "when one finishes or fails."
        )
        hint.setObjectName("muted")
        hint.setWordWrap(True)
        form.addRow("", hint)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        reset = buttons.addButton("Use the CLI's settings", QDialogButtonBox.ButtonRole.ResetRole)
        reset.clicked.connect(self.use_cli_settings)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        title = PlainLabel("Connect to a master")
        title.setObjectName("dialogTitle")
        layout.addWidget(title)
        layout.addWidget(self.problem)
        layout.addLayout(form)
        layout.addWidget(self.where)
        layout.addWidget(buttons)

    def show_problem(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))

    def connection(self) -> Connection:
        me = self.me.text().strip() or getpass.getuser()
        return Connection(self.url.text().strip(), self.token.text().strip(), me, self.source)

    def use_cli_settings(self) -> None:
        forget_connection(self.settings)
        cli = cli_connection()
        self.url.setText(cli.url)
        self.token.setText(cli.token)
        self.me.setText(cli.me)
        self.source = cli.source
        self.where.setText(f"Now from: {cli.source}")

    def save(self) -> None:
        connection = self.connection()
        if "://" not in connection.url:
            self.show_problem("The master's address starts with http:// or https://")
            return
        connection.source = "saved settings"
        save_connection(self.settings, connection)
        self.saved.emit(connection)
        self.accept()
