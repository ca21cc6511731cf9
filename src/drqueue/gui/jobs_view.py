"""The jobs view: every job in a table that sorts and filters at once, a stacked progress bar
per row, several rows selected at a time, and each job control of the CLI on a right-click.

Controls go through the Controller (one request per job, on a worker thread); the rows change
when the live stream says the jobs did.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLineEdit,
    QMenu,
    QMessageBox,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from drqueue.api_types import Job
from drqueue.gui import states
from drqueue.gui.controller import Controller
from drqueue.gui.models import JobFilter, JobsModel
from drqueue.gui.plain import PlainLabel
from drqueue.gui.widgets import ProgressDelegate, popup_menu

#: The job statuses the filter offers (models.job_status).
STATUSES = ("queued", "running", "waiting", "stopping", "stopped", "finished", "error", "cancelled")
#: The job controls of `drqueue job`, as the menu and the job's page offer them (delete last).
JOB_CONTROLS = (
    ("stop", "Stop"),
    ("continue", "Continue"),
    ("kill", "Kill…"),
    ("rerun", "Rerun…"),
    ("requeue-failed", "Requeue failed"),
    ("priority", "Priority…"),
)


def applies(job: Job, action: str) -> bool:
    """Whether *action* can change *job* (the menu and the job's page offer only those): stop a
    job neither stopped nor ended, continue a stopped one, kill one not ended, requeue a job's
    failed tasks when it has some; the rest always."""
    ended = job.status in states.ENDED
    stopped = job.control == "stopped"
    return {
        "stop": not stopped and not ended,
        "continue": stopped,
        "kill": not ended,
        "requeue-failed": bool(job.counts.error or job.counts.cancelled),
    }.get(action, True)


#: The controls that ask first: what they undo cannot be had back.
DESTRUCTIVE = {
    "kill": "Kill {what}? Their running tasks are killed and go back to the queue.",
    "rerun": "Rerun {what}? Every task runs again, finished ones too.",
}


def confirm(parent: QWidget, title: str, text: str, *, force: str | None = None):
    """Ask before a destructive control: False, or True (and with *force*, whether its box
    was ticked, as ``(True, ticked)``)."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=parent)
    go = box.addButton(title, QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    ticked = None
    if force:
        ticked = QCheckBox(force)
        box.setCheckBox(ticked)
    box.exec()
    if box.clickedButton() is not go:
        return False
    return (True, ticked.isChecked()) if ticked is not None else True


def ask_priority(parent: QWidget, current: int) -> int | None:
    value, ok = QInputDialog.getInt(
        parent, "Priority", "New priority (higher runs first):", current, -1_000_000, 1_000_000
    )
    return value if ok else None


def run_job_control(parent: QWidget, controller: Controller, jobs: list[Job], action: str) -> None:
    """One control of the CLI's `drqueue job` on each of *jobs*, asking first where it cannot
    be undone: stop, continue, kill, rerun, requeue-failed, priority or delete."""
    if not jobs:
        return
    ids = [job.id for job in jobs]
    what = f"job {ids[0]}" if len(ids) == 1 else f"{len(ids)} jobs"
    if action == "priority":
        value = ask_priority(parent, jobs[0].priority)
        if value is not None:
            controller.set_priority(ids, value)
    elif action == "delete":
        answer = confirm(
            parent,
            "Delete",
            f"Delete {what}? It leaves the farm with its tasks; this cannot be undone.",
            force="Also while tasks run (they are killed)",
        )
        if answer:
            controller.delete_jobs(ids, force=answer[1])
    elif action in DESTRUCTIVE:
        if confirm(parent, action.capitalize(), DESTRUCTIVE[action].format(what=what)):
            controller.job_action(ids, action)
    else:
        controller.job_action(ids, action)


class JobsView(QWidget):
    """The jobs table, its filters and its controls."""

    open_job = Signal(int)

    def __init__(self, controller: Controller, model: JobsModel, me: Callable[[], str]):
        super().__init__()
        self.controller = controller
        self.model = model
        self.me = me
        self.proxy = JobFilter(model)
        self.menu: QMenu | None = None

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search name, owner, renderer or #id")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda text: self.proxy.set_filter(search=text))
        self.status = QComboBox()
        self.status.addItem("Any status", "")
        for status in STATUSES:
            self.status.addItem(states.label(status), status)
        self.status.currentIndexChanged.connect(
            lambda _: self.proxy.set_filter(status=self.status.currentData())
        )
        self.mine = QCheckBox("Only mine")
        self.mine.toggled.connect(lambda on: self.proxy.set_filter(owner=self.me() if on else ""))
        self.count = PlainLabel()
        self.count.setObjectName("muted")

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setObjectName("jobsTable")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.table.setItemDelegateForColumn(JobsModel.PROGRESS, ProgressDelegate(self.table))
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self.show_menu)
        self.table.doubleClicked.connect(
            lambda index: self.open_job.emit(self.proxy.job(index.row()).id)
        )
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(26)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        for column, width in enumerate((64, 260, 90, 120, 190, 84, 84, 96, 110)):
            self.table.setColumnWidth(column, width)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)

        filters = QHBoxLayout()
        filters.addWidget(self.search, 2)
        filters.addWidget(self.status)
        filters.addWidget(self.mine)
        filters.addStretch(1)
        filters.addWidget(self.count)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.addLayout(filters)
        layout.addWidget(self.table)

        for signal in (
            self.proxy.rowsInserted,
            self.proxy.rowsRemoved,
            self.proxy.modelReset,
            self.proxy.layoutChanged,
        ):
            signal.connect(self._count)
        self._add_shortcuts()
        self._count()

    def _count(self, *_args) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        noun = "job" if total == 1 else "jobs"
        self.count.setText(
            f"{shown:,} {noun}" if shown == total else f"{shown:,} of {total:,} {noun}"
        )

    def _add_shortcuts(self) -> None:
        open_it = QAction("Open", self.table)
        open_it.setShortcut(QKeySequence(Qt.Key.Key_Return))
        open_it.triggered.connect(self._open_current)
        delete = QAction("Delete", self.table)
        delete.setShortcut(QKeySequence.StandardKey.Delete)
        delete.triggered.connect(lambda: self.run("delete"))
        self.table.addActions([open_it, delete])
        for action in (open_it, delete):
            action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)

    def _open_current(self) -> None:
        jobs = self.selected_jobs()
        if jobs:
            self.open_job.emit(jobs[0].id)

    def selected_jobs(self) -> list[Job]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.proxy.job(row) for row in rows]

    def select_job(self, job_id: int) -> bool:
        """Select the row of *job_id* (if the filters show it)."""
        row = self.model.row_of(job_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            return False
        self.table.selectRow(index.row())
        self.table.scrollTo(index)
        return True

    # -- the controls --------------------------------------------------------------------------

    def job_menu(self) -> QMenu:
        """The right-click menu for the selected jobs."""
        jobs = self.selected_jobs()
        what = f"job {jobs[0].id}" if len(jobs) == 1 else f"{len(jobs)} jobs"
        menu = QMenu(self)
        menu.setObjectName("jobMenu")
        opened = menu.addAction("Open")
        opened.setEnabled(len(jobs) == 1)
        opened.triggered.connect(self._open_current)
        menu.addSeparator()
        menu.addAction(what).setEnabled(False)  # a heading every style draws (a section's not)
        for action, label in JOB_CONTROLS:
            entry = menu.addAction(label)
            entry.triggered.connect(lambda _=False, a=action: self.run(a))
            entry.setEnabled(any(applies(job, action) for job in jobs))
        menu.addSeparator()
        menu.addAction("Delete…").triggered.connect(lambda: self.run("delete"))
        for action in menu.actions():
            action.setEnabled(action.isEnabled() and bool(jobs))
        return menu

    def show_menu(self, pos: QPoint) -> None:
        self.menu = popup_menu(self.table, pos, self.job_menu)

    def run(self, action: str) -> None:
        run_job_control(self, self.controller, self.selected_jobs(), action)
