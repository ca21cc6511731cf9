"""Pieces the views share: the stacked progress bar, the frame grid, the connection banner.

Each state is told by a shape or a pattern as well as its colour: the bar's running segment
is striped and its failed one cross-hatched, and each frame-grid cell has the web UI's shape
(queued a dim square, dispatched an outline with a dot, running half filled, finished
filled, error filled with a cross, cancelled an outline with a slash).
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import QPoint, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import (
    QBoxLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QToolTip,
    QWidget,
)

from drqueue.api_types import Counts, FrameGrid
from drqueue.gui import states
from drqueue.gui.models import COUNTS_ROLE, frames_text, percent_done, progress_label
from drqueue.gui.plain import PlainLabel

#: The bar's segments, in order, and the pattern over each (the rest of the bar is queued).
SEGMENTS = (
    ("finished", Qt.BrushStyle.NoBrush),
    ("running", Qt.BrushStyle.BDiagPattern),
    ("error", Qt.BrushStyle.DiagCrossPattern),
    ("cancelled", Qt.BrushStyle.NoBrush),
)


def paint_progress(painter: QPainter, rect: QRectF, counts: Counts, font: QFont) -> None:
    """A stacked bar of *counts* in *rect*, and the percentage done beside it."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    text_width = 40
    bar = QRectF(rect.left(), rect.center().y() - 5, rect.width() - text_width - 6, 10)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(states.RAISED))
    painter.drawRoundedRect(bar, 3, 3)
    if counts.total:
        painter.setClipRect(bar)
        x = bar.left()
        for state, pattern in SEGMENTS:
            width = bar.width() * getattr(counts, state) / counts.total
            if width <= 0:
                continue
            segment = QRectF(x, bar.top(), width, bar.height())
            painter.fillRect(segment, states.colour(state))
            if pattern != Qt.BrushStyle.NoBrush:
                painter.fillRect(segment, QBrush(QColor(255, 255, 255, 90), pattern))
            x += width
        painter.setClipping(False)
    painter.setPen(QColor(states.TEXT))
    painter.setFont(font)
    text = QRectF(bar.right() + 6, rect.top(), text_width, rect.height())
    align = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
    painter.drawText(text, align, f"{percent_done(counts)}%")
    painter.restore()


class ProgressDelegate(QStyledItemDelegate):
    """Draws a job's progress column as a stacked bar."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        counts = index.data(COUNTS_ROLE)
        if counts is None:
            super().paint(painter, option, index)
            return
        style = option.widget.style() if option.widget else None
        if style is not None:  # the row's background and selection
            plain = QStyleOptionViewItem(option)
            self.initStyleOption(plain, index)
            plain.text = ""
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, plain, painter, option.widget)
        paint_progress(painter, QRectF(option.rect).adjusted(6, 2, -6, -2), counts, option.font)

    def sizeHint(self, option: QStyleOptionViewItem, index) -> QSize:
        return QSize(160, super().sizeHint(option, index).height())


class ProgressBar(QWidget):
    """The stacked bar as a widget (the job detail's header)."""

    def __init__(self):
        super().__init__()
        self.counts = Counts()
        self.setMinimumHeight(22)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_counts(self, counts: Counts) -> None:
        self.counts = counts
        self.setToolTip(progress_label(counts))
        self.update()

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        paint_progress(painter, QRectF(self.rect()), self.counts, self.font())


# -- the frame grid -----------------------------------------------------------------------------


def paint_cell(painter: QPainter, cell: QRectF, state: str) -> None:
    """One task's cell: its state's colour and shape."""
    colour = states.colour(state)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.setPen(QPen(colour, 1.2))
    inner = cell.adjusted(0.5, 0.5, -0.5, -0.5)
    if state == "queued":
        dim = QColor(colour)
        dim.setAlpha(70)
        painter.fillRect(inner, dim)
    elif state == "dispatched":
        painter.drawRect(inner)
        painter.setBrush(colour)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawEllipse(inner.center(), inner.width() / 6, inner.height() / 6)
    elif state == "running":
        painter.drawRect(inner)
        painter.fillRect(
            QRectF(inner.left(), inner.top(), inner.width() / 2, inner.height()), colour
        )
    elif state == "finished":
        painter.fillRect(inner, colour)
    elif state == "error":
        painter.fillRect(inner, colour)
        painter.setPen(QPen(QColor("#1b0a0a"), 1.6))
        pad = inner.width() / 4
        painter.drawLine(
            inner.topLeft() + QPointF(pad, pad), inner.bottomRight() - QPointF(pad, pad)
        )
        painter.drawLine(
            inner.topRight() + QPointF(-pad, pad), inner.bottomLeft() + QPointF(pad, -pad)
        )
    else:  # cancelled, or a state a newer master adds
        painter.drawRect(inner)
        painter.drawLine(inner.bottomLeft(), inner.topRight())


class FrameGridView(QWidget):
    """One cell per task of a job, coloured and shaped by its state; a click picks a task."""

    task_clicked = Signal(int)

    CELL = 14
    GAP = 3

    def __init__(self):
        super().__init__()
        self.grid: FrameGrid | None = None
        self.selected: int | None = None
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def set_grid(self, grid: FrameGrid | None) -> None:
        self.grid = grid
        self.updateGeometry()
        self.update()

    def states(self) -> list[str]:
        if self.grid is None:
            return []
        return [states.TASK_LETTERS.get(letter, "queued") for letter in self.grid.states]

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for state in self.states():
            found[state] = found.get(state, 0) + 1
        return found

    def _per_row(self, width: int | None = None) -> int:
        return max(1, ((width or self.width()) + self.GAP) // (self.CELL + self.GAP))

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        count = len(self.grid.states) if self.grid else 0
        rows = -(-count // self._per_row(width)) if count else 1
        return rows * (self.CELL + self.GAP)

    def sizeHint(self) -> QSize:
        return QSize(400, self.heightForWidth(400))

    def cell_rect(self, index: int) -> QRectF:
        per_row = self._per_row()
        step = self.CELL + self.GAP
        return QRectF(index % per_row * step, index // per_row * step, self.CELL, self.CELL)

    def index_at(self, x: float, y: float) -> int | None:
        step = self.CELL + self.GAP
        column, row = int(x // step), int(y // step)
        if column >= self._per_row() or x % step > self.CELL or y % step > self.CELL:
            return None
        index = row * self._per_row() + column
        return index if self.grid and 0 <= index < len(self.grid.states) else None

    def frames_of(self, index: int) -> str:
        grid = self.grid
        first = grid.start + index * grid.block_size * grid.step
        last = min(grid.end, first + (grid.block_size - 1) * grid.step)
        return frames_text(first, last, grid.step)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        # Only the rows the repaint asks for (the grid sits in a scroll area): a 100,000-task
        # job painted every cell, 0.9 s a repaint, the window frozen meanwhile.
        step = self.CELL + self.GAP
        per_row = self._per_row()
        area = event.rect()
        states_ = self.states()
        first = max(0, area.top() // step) * per_row
        last = min(len(states_), (area.bottom() // step + 1) * per_row)
        for index in range(first, last):
            paint_cell(painter, self.cell_rect(index), states_[index])
        if self.selected is not None and self.grid and self.selected < len(self.grid.states):
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(QColor("#ffd866"), 2))
            painter.drawRect(self.cell_rect(self.selected).adjusted(-2, -2, 2, 2))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        index = self.index_at(event.position().x(), event.position().y())
        if index is None:
            QToolTip.hideText()
            return
        state = self.states()[index]
        text = f"Task {index} · frames {self.frames_of(index)} · {states.label(state)}"
        QToolTip.showText(event.globalPosition().toPoint(), text, self)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        index = self.index_at(event.position().x(), event.position().y())
        if index is not None:
            self.select(index)
            self.task_clicked.emit(index)

    def select(self, index: int | None) -> None:
        self.selected = index
        self.update()


class Legend(QWidget):
    """Each task state's cell and how many tasks are in it."""

    ORDER = ("queued", "dispatched", "running", "finished", "error", "cancelled")

    def __init__(self):
        super().__init__()
        self.found: dict[str, int] = {}
        self.setMinimumHeight(22)

    def set_counts(self, found: dict[str, int]) -> None:
        self.found = found
        self.update()

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        x = 0.0
        metrics = self.fontMetrics()
        for state in self.ORDER:
            paint_cell(painter, QRectF(x, 4, 12, 12), state)
            text = f"{state} {self.found.get(state, 0):,}"
            painter.setPen(QColor(states.MUTED))
            painter.drawText(QPointF(x + 17, 4 + metrics.ascent() - 1), text)
            x += 17 + metrics.horizontalAdvance(text) + 16


# -- controls ---------------------------------------------------------------------------------


def add_buttons(
    layout: QBoxLayout, controls: tuple[tuple[str, str], ...], run: Callable[[str], None]
) -> dict[str, QPushButton]:
    """A button per (action, label) added to *layout*, each calling ``run(action)``."""
    buttons = {}
    for action, label in controls:
        button = QPushButton(label)
        button.clicked.connect(lambda _=False, a=action: run(a))
        buttons[action] = button
        layout.addWidget(button)
    return buttons


def popup_menu(table: QTableView, pos: QPoint, build: Callable[[], QMenu]) -> QMenu | None:
    """A table's right-click menu at *pos*: the row under the pointer is selected first when no
    row is; the menu is *build()*'s, shown without waiting (popup, not exec)."""
    if not table.selectionModel().hasSelection():
        index = table.indexAt(pos)
        if not index.isValid():
            return None
        table.selectRow(index.row())
    menu = build()
    menu.popup(table.viewport().mapToGlobal(pos))
    return menu


# -- the banner ---------------------------------------------------------------------------------


class Banner(QFrame):
    """A strip across the top of the window: the master out of reach, or the token refused."""

    action_clicked = Signal()

    def __init__(self):
        super().__init__()
        self.setObjectName("banner")
        self.icon = PlainLabel()
        self.icon.setObjectName("bannerIcon")
        self.text = QLabel()
        self.text.setObjectName("bannerText")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.button = QPushButton("Settings…")
        self.button.clicked.connect(self.action_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 8, 14, 8)
        layout.addWidget(self.icon)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.button)
        self.hide()

    def show_message(self, kind: str, title: str, detail: str) -> None:
        """kind: "error" (red) or "warning" (amber)."""
        self.setProperty("kind", kind)
        self.style().unpolish(self)
        self.style().polish(self)
        self.icon.setText("✕" if kind == "error" else "⚠")
        self.text.setText(f"<b>{title}</b><br>{html.escape(detail)}")
        self.show()
