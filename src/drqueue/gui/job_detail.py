"""One job in detail: its header and controls, the frame grid, the task table, the last
rendered frame, and the log of the selected task with a live tail.

Everything is read through the Controller: the job, its frame grid (GET /jobs/ID/frames, one
letter per task) and its tasks again when the live stream says the job changed (at most once
per REFRESH_MS), the log every LOG_POLL_MS from where the last chunk ended while the task runs.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFont, QFontDatabase, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from drqueue.api_types import FrameGrid, Job, Task
from drqueue.client import LogChunk
from drqueue.errors import DrQueueError, NotFound
from drqueue.gui import states
from drqueue.gui.controller import Controller
from drqueue.gui.jobs_view import JOB_CONTROLS, applies, run_job_control
from drqueue.gui.models import DASH, TasksModel, duration, frames_text, when
from drqueue.gui.plain import PlainLabel
from drqueue.gui.widgets import FrameGridView, Legend, ProgressBar, add_buttons, popup_menu

#: Milliseconds between two reads of the frame grid and tasks while the job changes.
REFRESH_MS = 1000
#: Milliseconds between two reads of a running task's log.
LOG_POLL_MS = 1000
#: Bytes of a log shown when it is opened (its end); the live tail adds to it.
LOG_TAIL_BYTES = 256 * 1024
#: Characters the log view keeps before it drops the oldest.
LOG_KEEP_CHARS = 2_000_000
#: The controls of `drqueue task` on the selected tasks.
TASK_CONTROLS = (("requeue", "Requeue task"), ("kill", "Kill task"))
#: Pixels the frame grid grows to before it scrolls.
GRID_MOST_HEIGHT = 240
#: What the log's corner says while the log is followed (tests read it).
LIVE_TEXT = f"<span style='color:{states.COLOURS['finished']}'>●</span> live"
#: The task states whose log still grows.
LIVE = ("dispatched", "running")


#: Tasks the task table holds at most (the first by index, and the one selected).
TABLE_TASKS = 2000

#: The longest log line shown whole; the rest of a longer one is counted, not drawn (a render
#: printing a megabyte on one line froze the log view: Qt lays a line out in one piece).
LOG_LINE_CHARS = 2000


def shown_log(text: str) -> str:
    """*text* with each line longer than LOG_LINE_CHARS cut, saying how much was left out
    (`drqueue log` and the web UI show the whole)."""
    if len(text) <= LOG_LINE_CHARS or max(map(len, text.split("\n"))) <= LOG_LINE_CHARS:
        return text
    return "\n".join(
        line
        if len(line) <= LOG_LINE_CHARS
        else f"{line[:LOG_LINE_CHARS]} … ({len(line) - LOG_LINE_CHARS:,} more characters)"
        for line in text.split("\n")
    )


#: What "Open frame" hands to the desktop: image files only.  A render names its outputs, and a
#: job's output named a .desktop launcher, /etc/passwd or a script, which the desktop would
#: open with whatever it opens them with (a launcher: run it, as the wrangler).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".dpx", ".tga", ".bmp", ".hdr", ".webp"}
)


def frame_refusal(path: str) -> str:
    """Why "Open frame" will not open *path*, or "" when it may: an image file by its name, a
    regular file (not a link a render made), not executable."""
    if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        return f"{path} is not an image file (by its name): not opened"
    try:
        st = os.lstat(path)
    except OSError:
        return f"{path} is not reachable from this machine"
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o111:
        return f"{path} is not a plain image file (a link, a folder or executable): not opened"
    return ""


@contextlib.contextmanager
def without_secrets() -> Iterator[None]:
    """This process's environment without DRQUEUE_TOKEN while a program is started from it (the
    image viewer, and whatever it starts, would get the wrangler's token)."""
    token = os.environ.pop("DRQUEUE_TOKEN", None)
    try:
        yield
    finally:
        if token is not None:
            os.environ["DRQUEUE_TOKEN"] = token


def _section(title: str) -> QLabel:
    label = PlainLabel(title.upper())
    label.setObjectName("section")
    return label


class JobDetail(QWidget):
    """The job's page; show_job() picks the job."""

    closed = Signal()

    def __init__(self, controller: Controller):
        super().__init__()
        self.controller = controller
        self.job_id: int | None = None
        self.job: Job | None = None
        self.task_index: int | None = None
        self.log_offset = 0
        self.log_task: int | None = None
        self._log_was_live = False
        self._refreshing = False
        self._refresh_again = False
        self._thumbnail_of: tuple | None = None

        # -- header --
        self.title = PlainLabel()
        self.title.setObjectName("jobTitle")
        self.status = PlainLabel()
        self.status.setObjectName("statusBadge")
        self.facts = PlainLabel()
        self.facts.setObjectName("muted")
        self.facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = ProgressBar()
        self.progress_text = PlainLabel()
        self.progress_text.setObjectName("muted")
        self.reason = PlainLabel()
        self.reason.setObjectName("reason")
        self.reason.setWordWrap(True)
        controls = QHBoxLayout()
        more = (("unblock", "Unblock host…"), ("delete", "Delete…"))
        self.buttons = add_buttons(controls, JOB_CONTROLS + more, self.run)
        for action in ("kill", "delete"):
            self.buttons[action].setObjectName("danger")
        controls.addStretch(1)
        head = QGridLayout()
        head.addWidget(self.title, 0, 0)
        head.addWidget(self.status, 0, 1, Qt.AlignmentFlag.AlignLeft)
        head.setColumnStretch(2, 1)
        head.addWidget(self.facts, 1, 0, 1, 3)
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.progress_text)

        # -- frames and tasks --
        self.legend = Legend()
        self.grid = FrameGridView()
        self.grid.task_clicked.connect(self.select_task)
        self.grid_scroll = grid_scroll = QScrollArea()
        grid_scroll.setWidget(self.grid)
        grid_scroll.setWidgetResizable(True)
        grid_scroll.setFrameShape(QFrame.Shape.NoFrame)
        grid_scroll.setMinimumHeight(60)
        self.tasks = TasksModel()
        self.task_table = QTableView()
        self.task_table.setModel(self.tasks)
        self.task_table.setSortingEnabled(True)
        self.task_table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.task_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.task_table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.task_table.verticalHeader().hide()
        self.task_table.verticalHeader().setDefaultSectionSize(24)
        self.task_table.setShowGrid(False)
        self.task_table.setAlternatingRowColors(True)
        self.task_table.horizontalHeader().setStretchLastSection(True)
        self.task_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate((70, 84, 108, 92, 84, 62, 66, 66, 128, 58)):
            self.task_table.setColumnWidth(column, width)
        self.task_table.selectionModel().currentRowChanged.connect(
            lambda current, _previous: (
                current.isValid() and self.select_task(self.tasks.item(current.row()).index)
            )
        )
        self.task_table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.task_table.customContextMenuRequested.connect(self._task_menu)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(_section("Frames"))
        left_layout.addWidget(self.legend)
        left_layout.addWidget(grid_scroll)
        left_layout.addWidget(_section("Tasks"))
        self.tasks_note = PlainLabel()
        self.tasks_note.setObjectName("muted")
        self.tasks_note.hide()
        left_layout.addWidget(self.tasks_note)
        left_layout.addWidget(self.task_table, 3)

        # -- the frame and the log --
        self.thumbnail = PlainLabel("No frame rendered yet")
        self.thumbnail.setObjectName("thumbnail")
        self.thumbnail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumbnail.setMinimumSize(320, 180)
        self.thumbnail.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.thumbnail_caption = PlainLabel()
        self.thumbnail_caption.setObjectName("muted")
        self.open_frame_button = QPushButton("Open frame")
        self.open_frame_button.clicked.connect(self.open_frame)
        self.open_frame_button.setEnabled(False)
        self.task_heading = _section("Log")
        self.task_facts = PlainLabel()
        self.task_facts.setObjectName("muted")
        self.task_facts.setWordWrap(True)
        task_controls = QHBoxLayout()
        task_controls.addWidget(self.task_facts, 1)
        self.task_buttons = add_buttons(task_controls, TASK_CONTROLS, self.run_task)
        for button in self.task_buttons.values():
            button.setEnabled(False)
        self.log = QPlainTextEdit()
        self.log.setObjectName("log")
        self.log.setReadOnly(True)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log.setPlaceholderText("Pick a task in the grid or the table to read its log")
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.log.setFont(mono)
        self.log_state = PlainLabel()
        self.log_state.setObjectName("muted")
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        frame_head = QHBoxLayout()
        frame_head.addWidget(_section("Last frame"))
        frame_head.addStretch(1)
        frame_head.addWidget(self.open_frame_button)
        right_layout.addLayout(frame_head)
        right_layout.addWidget(self.thumbnail, 2)
        right_layout.addWidget(self.thumbnail_caption)
        log_head = QHBoxLayout()
        log_head.addWidget(self.task_heading)
        log_head.addStretch(1)
        log_head.addWidget(self.log_state)
        right_layout.addLayout(log_head)
        right_layout.addLayout(task_controls)
        right_layout.addWidget(self.log, 3)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 12, 14, 12)
        layout.addLayout(head)
        layout.addLayout(bar)
        layout.addWidget(self.reason)
        layout.addLayout(controls)
        layout.addWidget(split, 1)

        self.refresh_timer = QTimer(self)
        self.refresh_timer.setSingleShot(True)
        self.refresh_timer.timeout.connect(self.refresh)
        self.log_timer = QTimer(self)
        self.log_timer.setInterval(LOG_POLL_MS)
        self.log_timer.timeout.connect(self._poll_log)
        controller.jobs_changed.connect(self._jobs_changed)

    # -- the job -------------------------------------------------------------------------------

    def show_job(self, job_id: int) -> None:
        if job_id != self.job_id:
            self.job_id, self.job, self.task_index = job_id, None, None
            self._thumbnail_of = None
            self.title.setText(f"Job {job_id}")
            self.status.setText("")
            self.grid.set_grid(None)
            self.grid.select(None)
            self.tasks.set_items([])
            self.thumbnail.setPixmap(QPixmap())
            self.thumbnail.setText("No frame rendered yet")
            self.thumbnail_caption.setText("")
            self._show_log_of(None)
        self.controller.request(f"Job {job_id}", lambda c: c.job(job_id), self._job_read)
        self.refresh()

    def _job_read(self, job: Job) -> None:
        if job.id != self.job_id:
            return
        self.job = job
        self.title.setText(f"{job.name or '(unnamed)'}  ·  #{job.id}")
        self.status.setText(states.label(job.status))
        self.status.setStyleSheet(f"color: {states.COLOURS.get(job.status, states.MUTED)};")
        frames = frames_text(job.start, job.end, job.step)
        eta = DASH if job.status in states.ENDED else duration(job.eta_seconds)
        self.facts.setText(
            f"{job.owner}  ·  {job.renderer}  ·  frames {frames}, {job.block_size} a task  ·  "
            f"priority {job.priority}  ·  submitted {when(job.submitted_at)}  ·  ETA {eta}"
            + (f"  ·  scene {job.scene}" if job.scene else "")
        )
        self.progress.set_counts(job.counts)
        counts = job.counts
        self.progress_text.setText(f"{counts.finished:,} / {counts.total:,} tasks")
        reasons = []
        if job.waiting_reason:
            reasons.append(f"◷ {job.waiting_reason}")
        if job.blocked_hosts:
            reasons.append("Blocked hosts: " + ", ".join(job.blocked_hosts))
        self.reason.setText("   ".join(reasons))
        self.reason.setVisible(bool(reasons))
        self.buttons["unblock"].setVisible(bool(job.blocked_hosts))
        for action in ("stop", "continue", "kill", "requeue-failed"):
            self.buttons[action].setEnabled(applies(job, action))
        finished_key = (job.id, counts.finished)
        if counts.finished and self._thumbnail_of != finished_key and self.task_index is None:
            self._thumbnail_of = finished_key
            self._load_thumbnail(None)

    def _jobs_changed(self, jobs: list[Job], deleted: list[int]) -> None:
        if self.job_id in deleted:
            self.title.setText(f"Job {self.job_id} was deleted")
            self.log_timer.stop()
            return
        for job in jobs:
            if job.id == self.job_id:
                merged = job if self.job is None else Job.from_json({**self.job.raw, **job.raw})
                self._job_read(merged)
                if not self.refresh_timer.isActive():
                    self.refresh_timer.start(REFRESH_MS)

    def refresh(self) -> None:
        """Read the frame grid and the tasks again (one read at a time)."""
        if self.job_id is None:
            return
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        job_id, selected = self.job_id, self.task_index

        def read(client) -> tuple[FrameGrid, list[Task]]:
            # The table holds the first TABLE_TASKS tasks and the one selected: a 100,000-task
            # job's every task, read at each change, was seconds of work a refresh.  The grid
            # has them all.
            tasks = client.tasks(job_id, limit=TABLE_TASKS)
            if selected is not None and selected >= TABLE_TASKS:
                with contextlib.suppress(NotFound):
                    tasks.append(client.task(job_id, selected))
            return client.frames(job_id), tasks

        def done(answer: tuple[FrameGrid, list[Task]]) -> None:
            self._refreshing = False
            if job_id == self.job_id:
                self._show_tasks(*answer)
            if self._refresh_again:
                self._refresh_again = False
                self.refresh_timer.start(REFRESH_MS)

        def failed(exc: DrQueueError) -> None:
            self._refreshing = False
            self.controller.failed.emit(f"Job {job_id}: {exc}")

        self.controller.request(f"Job {job_id}", read, done, failed)

    def _fit_grid(self) -> None:
        """The grid's box as tall as its rows, up to GRID_MOST_HEIGHT (then it scrolls)."""
        width = self.grid_scroll.viewport().width()
        self.grid_scroll.setFixedHeight(min(self.grid.heightForWidth(width) + 4, GRID_MOST_HEIGHT))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_grid()

    def _show_tasks(self, grid: FrameGrid, tasks: list[Task]) -> None:
        self.grid.set_grid(grid)
        self._fit_grid()
        self.legend.set_counts(self.grid.counts())
        total = len(grid.states)
        self.tasks_note.setText(
            f"The first {TABLE_TASKS:,} of {total:,} tasks: pick any other in the grid."
        )
        self.tasks_note.setVisible(total > TABLE_TASKS)
        self.tasks.set_items(tasks)
        if self.task_index is not None:
            task = self.tasks.find(self.task_index)
            if task is not None:
                self._show_task_facts(task)
                if task.state in LIVE and not self.log_timer.isActive():
                    self.log_timer.start()

    # -- controls ------------------------------------------------------------------------------

    def run(self, action: str) -> None:
        if self.job_id is None or self.job is None:
            return
        if action != "unblock":
            run_job_control(self, self.controller, [self.job], action)
            return
        host, ok = QInputDialog.getItem(
            self, "Unblock", "Let this host take the job again:", self.job.blocked_hosts, 0, False
        )
        if ok and host:
            self.controller.unblock(self.job_id, host)

    def selected_tasks(self) -> list[int]:
        rows = {index.row() for index in self.task_table.selectionModel().selectedRows()}
        indexes = sorted(self.tasks.item(row).index for row in rows)
        if not indexes and self.task_index is not None:
            indexes = [self.task_index]
        return indexes

    def run_task(self, action: str) -> None:
        indexes = self.selected_tasks()
        if self.job_id is None or not indexes:
            return
        self.controller.task_action(self.job_id, indexes, action, lambda _answers: self.refresh())

    def _menu_of_tasks(self) -> QMenu:
        menu = QMenu(self)
        for action, label in TASK_CONTROLS:
            menu.addAction(label).triggered.connect(lambda _=False, a=action: self.run_task(a))
        menu.addSeparator()
        menu.addAction("Open frame").triggered.connect(self.open_frame)
        return menu

    def _task_menu(self, pos) -> None:
        self.task_menu = popup_menu(self.task_table, pos, self._menu_of_tasks)

    # -- one task: its frame and its log -------------------------------------------------------

    def select_task(self, index: int) -> None:
        if index == self.task_index:
            return
        self.task_index = index
        self.grid.select(index)
        row = self.tasks.row_of(index)
        if row is not None and self.task_table.currentIndex().row() != row:
            self.task_table.selectionModel().setCurrentIndex(
                self.tasks.index(row, 0),
                QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows,
            )
        task = self.tasks.find(index)
        if task is None:
            self.refresh()  # a task past the table's first TABLE_TASKS: read it
        if task is not None:
            self._show_task_facts(task)
            if task.state == "finished" and task.outputs:
                self._load_thumbnail(index)
        self._show_log_of(index)

    def _show_task_facts(self, task: Task) -> None:
        self.task_heading.setText(f"LOG · TASK {task.index}")
        self.task_facts.setText(
            f"frames {frames_text(task.start, task.end, task.step)}  ·  {states.label(task.state)}"
            f"  ·  {task.computer or 'no host yet'}  ·  "
            f"{task.attempts} {'try' if task.attempts == 1 else 'tries'}"
            + (f"  ·  {task.reason}" if task.reason else "")
        )
        for button in self.task_buttons.values():
            button.setEnabled(True)
        self.open_frame_button.setEnabled(bool(task.outputs))

    def _load_thumbnail(self, index: int | None) -> None:
        job_id = self.job_id

        def show(data: bytes) -> None:
            if job_id != self.job_id:
                return
            pixmap = QPixmap()
            if not pixmap.loadFromData(data):
                self.thumbnail.setText("The frame cannot be shown")
                return
            size = self.thumbnail.size()
            self.thumbnail.setPixmap(
                pixmap.scaled(
                    size,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )
            which = "last finished task" if index is None else f"task {index}"
            self.thumbnail_caption.setText(f"{which} · {pixmap.width()}×{pixmap.height()} preview")

        def none(exc: DrQueueError) -> None:
            if job_id == self.job_id:
                self.thumbnail.setPixmap(QPixmap())
                self.thumbnail.setText(
                    f"No image: {exc}" if not isinstance(exc, NotFound) else "No image output"
                )

        self.controller.request("Thumbnail", lambda c: c.thumbnail(job_id, index), show, none)

    def frame_path(self) -> str | None:
        """The first output of the selected task (else of the newest finished one)."""
        task = self.tasks.find(self.task_index) if self.task_index is not None else None
        if task is None or not task.outputs:
            done = [t for t in self.tasks.items() if t.state == "finished" and t.outputs]
            task = max(done, key=lambda t: t.ended_at or 0, default=None)
        return task.outputs[0] if task is not None else None

    def open_frame(self) -> None:
        """Open the rendered frame in the system's image viewer."""
        path = self.frame_path()
        if path is None:
            self.controller.failed.emit("Open frame: the task reported no output")
            return
        refusal = frame_refusal(path)
        if refusal:
            self.controller.failed.emit(f"Open frame: {refusal}")
            return
        with without_secrets():
            opened = QDesktopServices.openUrl(QUrl.fromLocalFile(path))
        if not opened:
            self.controller.failed.emit(f"Open frame: no viewer opened {path}")

    def _show_log_of(self, index: int | None) -> None:
        self.log_timer.stop()
        self.log.clear()
        self.log_task, self.log_offset = index, 0
        self._log_was_live = False
        if index is None:
            self.task_heading.setText("LOG")
            self.task_facts.setText("")
            self.log_state.setText("")
            return
        job_id = self.job_id
        self.log_state.setText("reading…")

        def first(chunk: LogChunk) -> None:
            if (job_id, index) != (self.job_id, self.log_task):
                return
            self.log.setPlainText(chunk.data.decode("utf-8", "replace"))
            self.log_offset = chunk.offset + len(chunk.data)
            self._log_scrolled()
            self._follow_if_live()

        def missing(exc: DrQueueError) -> None:
            if (job_id, index) != (self.job_id, self.log_task):
                return
            self.log.setPlainText("")
            self.log_state.setText(
                f"no log yet: {exc}" if isinstance(exc, NotFound) else f"cannot read the log: {exc}"
            )
            self._follow_if_live()

        self.controller.request(
            "Log", lambda c: c.log_chunk(job_id, index, limit=LOG_TAIL_BYTES), first, missing
        )

    def _follow_if_live(self) -> None:
        task = self.tasks.find(self.log_task) if self.log_task is not None else None
        live = task is not None and task.state in LIVE
        was_live, self._log_was_live = self._log_was_live, live
        if live:
            self.log_state.setText(LIVE_TEXT)
            self.log_timer.start()
        elif was_live:  # one last read: what the task wrote as it ended
            self.log_timer.start()
        elif self.log.toPlainText():
            self.log_state.setText(f"{self.log_offset:,} bytes")

    def _poll_log(self) -> None:
        if self.log_task is None or self.job_id is None:
            self.log_timer.stop()
            return
        job_id, index, offset = self.job_id, self.log_task, self.log_offset
        self.log_timer.stop()  # one read at a time: started again after the answer

        def more(chunk: LogChunk) -> None:
            if (job_id, index) != (self.job_id, self.log_task):
                return
            if chunk.size < offset:  # a new attempt writes a new log: read it from the start
                self._show_log_of(index)
                return
            if chunk.data:
                self.log.moveCursor(self.log.textCursor().MoveOperation.End)
                self.log.insertPlainText(shown_log(chunk.data.decode("utf-8", "replace")))
                if self.log.document().characterCount() > LOG_KEEP_CHARS:
                    self.log.setPlainText(self.log.toPlainText()[-LOG_KEEP_CHARS // 2 :])
                self.log_offset = chunk.offset + len(chunk.data)
                self._log_scrolled()
            self._follow_if_live()

        def later(_exc: DrQueueError) -> None:
            if (job_id, index) == (self.job_id, self.log_task):
                self._follow_if_live()

        self.controller.request(
            "Log", lambda c: c.log_chunk(job_id, index, offset=offset), more, later
        )

    def _log_scrolled(self) -> None:
        bar = self.log.verticalScrollBar()
        bar.setValue(bar.maximum())
