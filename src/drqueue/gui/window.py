"""The main window: the views in tabs, the toolbar, the connection banner and the status bar.

It wires the views to the Controller's signals and shows what the controller reports: a
master out of reach or a refused token as a banner across the top (the tables keep what they
last showed, and the stream reconnects by itself), every failed request as a line in the
status bar.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QMainWindow,
    QSizePolicy,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from drqueue.api_types import RendererInfo
from drqueue.client import RECONNECT_SECONDS
from drqueue.gui import states
from drqueue.gui.computers_view import ComputersView
from drqueue.gui.controller import CONNECTED, CONNECTING, UNAUTHORIZED, UNREACHABLE, Controller
from drqueue.gui.job_detail import JobDetail
from drqueue.gui.jobs_view import JobsView
from drqueue.gui.models import JobsModel
from drqueue.gui.notify import Notifier
from drqueue.gui.plain import PlainLabel
from drqueue.gui.settings import Connection, SettingsDialog
from drqueue.gui.submit_dialog import SubmitDialog
from drqueue.gui.widgets import Banner

#: Milliseconds a line stays in the status bar: an error longer than news.
ERROR_MS, NEWS_MS = 20_000, 8_000


class MainWindow(QMainWindow):
    def __init__(self, controller: Controller, connection: Connection, settings: QSettings):
        super().__init__()
        self.controller = controller
        self.connection = connection
        self.settings = settings
        self.renderers: list[RendererInfo] = []
        self.settings_dialog: SettingsDialog | None = None
        self.submit_dialog: SubmitDialog | None = None
        self.messages: list[str] = []  # every status-bar line, newest last
        self.setWindowTitle("DrQueue")
        self.resize(1360, 820)

        self.jobs_model = JobsModel()
        self.jobs_view = JobsView(controller, self.jobs_model, lambda: self.connection.me)
        self.detail = JobDetail(controller)
        self.computers_view = ComputersView(controller)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.tabBar().setDrawBase(False)
        self.tabs.addTab(self.jobs_view, "Jobs")
        self.tabs.addTab(self.detail, "Job")
        self.tabs.addTab(self.computers_view, "Computers")
        self.tabs.setTabEnabled(1, False)
        self.banner = Banner()
        self.banner.action_clicked.connect(lambda: self.open_settings())
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs)
        self.setCentralWidget(central)
        self._toolbar()
        self.farm_label = PlainLabel()
        self.statusBar().addPermanentWidget(self.farm_label)
        self.notifier = Notifier(controller, lambda: self.connection.me, self)
        self.notifier.notified.connect(lambda _id, title, text: self.say(f"{title}: {text}"))

        controller.jobs_loaded.connect(self.jobs_model.set_items)
        controller.jobs_changed.connect(self.jobs_model.apply)
        controller.renderers_loaded.connect(self._renderers)
        controller.farm_changed.connect(self._farm)
        controller.connection_changed.connect(self._connection)
        controller.failed.connect(lambda text: self.say(f"✕ {text}", ERROR_MS))
        controller.done.connect(lambda text: self.say(f"✓ {text}"))
        self.jobs_view.open_job.connect(self.open_job)
        self._connection(CONNECTING, "")

    def _toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        brand = PlainLabel("◼ DrQueue")
        brand.setObjectName("brand")
        bar.addWidget(brand)
        for label, shortcut, slot in (
            ("Submit job…", QKeySequence.StandardKey.New, self.open_submit),
            ("Refresh", QKeySequence.StandardKey.Refresh, self.controller.reload),
            ("Settings…", QKeySequence.StandardKey.Preferences, self.open_settings),
        ):
            action = QAction(label, self)
            action.setShortcut(shortcut)
            action.triggered.connect(lambda _=False, s=slot: s())
            bar.addAction(action)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        self.live_label = PlainLabel()
        bar.addWidget(self.live_label)
        self.addToolBar(bar)

    # -- what the controller reports -----------------------------------------------------------

    def say(self, text: str, ms: int = NEWS_MS) -> None:
        self.messages.append(text)
        self.statusBar().showMessage(text, ms)

    def _connection(self, state: str, why: str) -> None:
        url = self.controller.url
        words, colour = {
            CONNECTED: ("● live", states.COLOURS["finished"]),
            CONNECTING: ("○ connecting", states.MUTED),
            UNREACHABLE: ("○ reconnecting", states.COLOURS["cancelled"]),
            UNAUTHORIZED: ("✕ token refused", states.COLOURS["error"]),
        }[state]
        self.live_label.setText(f"{words}   {url}")
        self.live_label.setStyleSheet(f"color: {colour}; padding-right: 10px;")
        if state == CONNECTED:
            self.banner.hide()
            self.say(f"Connected to {url}")
        elif state == UNREACHABLE:
            self.banner.show_message(
                "warning",
                f"Cannot reach the master at {url}",
                f"Retrying every {RECONNECT_SECONDS:.0f} s; the tables show what was last "
                f"known. {why.replace(f'cannot reach the master at {url} ', '')}",
            )
        elif state == UNAUTHORIZED:
            self.banner.show_message(
                "error",
                f"The master at {url} refused the token",
                f"{why}. Open Settings to paste a token made with `drqueue token create`.",
            )
            self.open_settings(problem=f"The master refused the token: {why}")

    def _farm(self, farm: dict) -> None:
        computers = farm.get("computers") or {}
        self.farm_label.setText(
            f"{farm.get('engines', 0)} engines · {computers.get('busy', 0)} busy · "
            f"{computers.get('idle', 0)} idle · {computers.get('offline', 0)} offline · "
            f"{computers.get('disabled', 0)} disabled"
        )

    def _renderers(self, renderers: list[RendererInfo]) -> None:
        self.renderers = renderers

    # -- the views and dialogs -----------------------------------------------------------------

    def open_job(self, job_id: int) -> None:
        self.detail.show_job(job_id)
        self.tabs.setTabEnabled(1, True)
        self.tabs.setTabText(1, f"Job {job_id}")
        self.tabs.setCurrentWidget(self.detail)

    def open_submit(self) -> SubmitDialog | None:
        if not self.renderers:
            self.say(
                "✕ Submit: the renderers are not known yet (is the master reachable?)", ERROR_MS
            )
            return None
        self.submit_dialog = SubmitDialog(self, self.controller, self.renderers)
        self.submit_dialog.submitted.connect(self._submitted)
        self.submit_dialog.open()
        return self.submit_dialog

    def _submitted(self, job_id: int) -> None:
        self.say(f"✓ Job {job_id} submitted")
        self.tabs.setCurrentWidget(self.jobs_view)

    def open_settings(self, problem: str = "") -> SettingsDialog:
        if self.settings_dialog is not None and self.settings_dialog.isVisible():
            self.settings_dialog.show_problem(problem)
            return self.settings_dialog
        self.settings_dialog = SettingsDialog(self, self.connection, self.settings)
        self.settings_dialog.show_problem(problem)
        self.settings_dialog.saved.connect(self._saved)
        self.settings_dialog.open()
        return self.settings_dialog

    def _saved(self, connection: Connection) -> None:
        if connection.url != self.connection.url:
            # Another master: what the tables show was the old one's, not "last known" of it.
            self.jobs_model.set_items([])
            self.computers_view.model.set_items([])
            self.tabs.setCurrentWidget(self.jobs_view)
        self.connection = connection
        self.jobs_view.proxy.set_filter()  # "Only mine" may mean another name now
        self.controller.reconnect(connection.url, connection.token)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.controller.stop()
        super().closeEvent(event)
