"""Qt table models over the client's typed objects: jobs, tasks and computers.

Each model is an :class:`ObjectTable`: a list of API objects (``Job``, ``Task``, ``Computer``)
and the :class:`Column` definitions that say how a row shows each one.  The model sorts itself
(one ``sorted()`` over precomputed keys, so 10,000 jobs sort in milliseconds, where a proxy's
``lessThan`` would call Python twice per comparison) and keeps the selection across a sort;
:class:`JobFilter`, a ``QSortFilterProxyModel``, only filters, and hands sorting to the model.

The jobs model also takes the live stream's changes (:meth:`JobsModel.apply`): a changed job
updates its row in place, a new one is added, a deleted one removed, and the order kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from drqueue.api_types import Computer, Job, Task
from drqueue.gui import states
from drqueue.gui.plain import plain_tip

#: The role under which each row answers its object (a Job, Task or Computer).
OBJECT_ROLE = Qt.ItemDataRole.UserRole + 1
#: The role under which the progress column answers the job's Counts (for the bar delegate).
COUNTS_ROLE = Qt.ItemDataRole.UserRole + 2

DASH = "–"


def duration(seconds: float | None) -> str:
    """``4.2s``, ``38s``, ``12m 05s``, ``3h 07m``, ``2d 04h``; a dash when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    days, hours, minutes = whole // 86400, whole % 86400 // 3600, whole % 3600 // 60
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {whole % 60:02d}s" if minutes else f"{whole}s"


def when(epoch: float | None) -> str:
    """The time of day for today, else the date and time."""
    if not epoch:
        return DASH
    stamp = time.localtime(epoch)
    if time.strftime("%Y%m%d", stamp) == time.strftime("%Y%m%d"):
        return time.strftime("%H:%M:%S", stamp)
    return time.strftime("%d %b %H:%M", stamp)


def frames_text(start: int, end: int, step: int = 1) -> str:
    text = str(start) if start == end else f"{start}–{end}"
    return f"{text} /{step}" if step != 1 else text


def percent_done(counts) -> int:
    """The percentage of tasks finished: 100 only when all are (the web UI's rule)."""
    if not counts.total:
        return 0
    if counts.finished == counts.total:
        return 100
    return min(99, int(100 * counts.finished / counts.total))


def progress_label(counts) -> str:
    parts = [f"{counts.finished:,} of {counts.total:,} done"]
    for state, word in (("running", "running"), ("error", "failed"), ("cancelled", "cancelled")):
        if getattr(counts, state):
            parts.append(f"{getattr(counts, state):,} {word}")
    if counts.queued:
        parts.append(f"{counts.queued:,} queued")
    return ", ".join(parts)


@dataclass(frozen=True)
class Column:
    """How a table shows one attribute of its objects."""

    title: str
    text: Callable[[Any], str]
    #: The sort key (None: the text).
    key: Callable[[Any], Any] | None = None
    #: Numbers are right-aligned.
    numeric: bool = False
    #: The tooltip (None: the text, when it may not fit).
    tip: Callable[[Any], str | None] | None = None
    #: The state whose colour the text takes.
    state: Callable[[Any], str] | None = None


class ObjectTable(QAbstractTableModel):
    """A table of API objects, one per row, each with a key (an id, a name)."""

    columns: tuple[Column, ...] = ()

    def __init__(self, key: Callable[[Any], Any]):
        super().__init__()
        self._key = key
        self._items: list[Any] = []
        self._rows: dict[Any, int] = {}
        self._sort: tuple[int, Qt.SortOrder] | None = None

    # -- reading -------------------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._items)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].title
        if role == Qt.ItemDataRole.TextAlignmentRole:  # left: the sort arrow sits at the right
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        item = self._items[index.row()]
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.text(item)
        if role == OBJECT_ROLE:
            return item
        if role == Qt.ItemDataRole.ForegroundRole and column.state is not None:
            return states.colour(column.state(item))
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tip(column.tip(item) if column.tip else column.text(item))
        if role == Qt.ItemDataRole.TextAlignmentRole:
            horizontal = (
                Qt.AlignmentFlag.AlignRight if column.numeric else Qt.AlignmentFlag.AlignLeft
            )
            return int(horizontal | Qt.AlignmentFlag.AlignVCenter)
        return None

    def item(self, row: int) -> Any:
        return self._items[row]

    def items(self) -> list[Any]:
        return list(self._items)

    def row_of(self, key: Any) -> int | None:
        return self._rows.get(key)

    def find(self, key: Any) -> Any | None:
        row = self._rows.get(key)
        return None if row is None else self._items[row]

    # -- changing ------------------------------------------------------------------------------

    def set_items(self, items: Iterable[Any]) -> None:
        """Show *items*: in place when they are the same rows as now (a refresh keeps the
        selection and the scroll), else as a new list."""
        items = list(items)
        if [self._key(i) for i in items] == [self._key(i) for i in self._items]:
            self._items = items
            self._changed_all()
            if self._sort is not None:
                self.sort(*self._sort)
            return
        self.beginResetModel()
        self._items = self._sorted(items)
        self._index()
        self.endResetModel()

    def _changed_all(self) -> None:
        if self._items:
            last = self.index(len(self._items) - 1, len(self.columns) - 1)
            self.dataChanged.emit(self.index(0, 0), last)

    def _index(self) -> None:
        self._rows = {self._key(item): row for row, item in enumerate(self._items)}

    # -- sorting -------------------------------------------------------------------------------

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort = (column, order)
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        keys = [self._key(self._items[i.row()]) for i in before]
        self._items = self._sorted(self._items)
        self._index()
        after = [
            self.index(self._rows[key], i.column()) for key, i in zip(keys, before, strict=True)
        ]
        self.changePersistentIndexList(before, after)
        self.layoutChanged.emit()

    def _sort_key(self) -> Callable[[Any], Any] | None:
        if self._sort is None:
            return None
        column = self.columns[self._sort[0]]
        return column.key or column.text

    def _sorted(self, items: list[Any]) -> list[Any]:
        key = self._sort_key()
        if self._sort is None or key is None:
            return items
        order = self._sort[1]
        decorated = [(key(item), self._key(item), item) for item in items]
        decorated.sort(key=lambda d: (d[0], d[1]), reverse=order == Qt.SortOrder.DescendingOrder)
        return [d[2] for d in decorated]


# -- jobs ---------------------------------------------------------------------------------------


def _eta(job: Job) -> str:
    return DASH if job.status in states.ENDED else duration(job.eta_seconds)


def _eta_key(job: Job) -> float:
    if job.counts.total and job.counts.finished + job.counts.cancelled >= job.counts.total:
        return 0.0
    return job.eta_seconds if job.eta_seconds is not None else math.inf


class JobsModel(ObjectTable):
    """Every job the master lists, one per row, as the web UI's jobs page shows them."""

    columns = (
        Column("ID", lambda j: str(j.id), key=lambda j: j.id, numeric=True),
        Column("Name", lambda j: j.name or "(unnamed)", key=lambda j: j.name.casefold()),
        Column("Owner", lambda j: j.owner),
        Column(
            "Status",
            lambda j: states.label(j.status),
            key=lambda j: j.status,
            tip=lambda j: j.waiting_reason or j.status,
            state=lambda j: j.status,
        ),
        Column(
            "Progress",
            lambda j: f"{percent_done(j.counts)}%",
            key=lambda j: j.counts.finished / j.counts.total if j.counts.total else 0.0,
            tip=lambda j: progress_label(j.counts),
        ),
        Column("Priority", lambda j: str(j.priority), key=lambda j: j.priority, numeric=True),
        Column("ETA", _eta, key=_eta_key, numeric=True),
        Column("Renderer", lambda j: j.renderer),
        Column(
            "Submitted",
            lambda j: when(j.submitted_at),
            key=lambda j: j.submitted_at,
            tip=lambda j: time.ctime(j.submitted_at),
        ),
    )
    PROGRESS = 4

    def __init__(self):
        super().__init__(key=lambda job: job.id)

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole) -> Any:
        if role == COUNTS_ROLE and index.isValid():
            return self._items[index.row()].counts
        return super().data(index, role)

    def job(self, job_id: int) -> Job | None:
        return self.find(job_id)

    def apply(self, changed: Iterable[Job], deleted: Iterable[int] = ()) -> None:
        """The live stream's news: *changed* jobs updated or added, *deleted* ids removed."""
        for job_id in deleted:
            row = self._rows.get(job_id)
            if row is None:
                continue
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._items[row]
            self._index()
            self.endRemoveRows()
        added: list[Job] = []
        moved = False  # whether a changed job's sort key changed: only then is a sort needed
        sort_key = self._sort_key()
        for job in changed:
            row = self._rows.get(job.id)
            if row is None:
                added.append(job)
                continue
            moved = moved or (sort_key is not None and sort_key(self._items[row]) != sort_key(job))
            self._items[row] = job
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))
        if added:
            first = len(self._items)
            self.beginInsertRows(QModelIndex(), first, first + len(added) - 1)
            self._items.extend(added)
            self._index()
            self.endInsertRows()
        if self._sort is not None and (added or moved):
            self.sort(*self._sort)


class ModelSorted(QSortFilterProxyModel):
    """A filter over an ObjectTable that leaves the sorting to the table itself."""

    def __init__(self, model: ObjectTable):
        super().__init__()
        self.setSourceModel(model)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.sourceModel().sort(column, order)


class JobFilter(ModelSorted):
    """The jobs shown: a search (name, owner, renderer or #id), a status, an owner.  Sorting is
    the model's own (ObjectTable.sort), so this proxy keeps the model's order."""

    def __init__(self, model: JobsModel):
        super().__init__(model)
        self.search = ""
        self.status = ""
        self.owner = ""

    def set_filter(self, *, search: str | None = None, status: str | None = None, owner=None):
        # Qt 6.9 deprecates invalidateFilter for begin/endFilterChange around the change.
        begin = getattr(self, "beginFilterChange", None)
        if begin is not None:
            begin()
        if search is not None:
            self.search = search.strip().casefold()
        if status is not None:
            self.status = status
        if owner is not None:
            self.owner = owner
        if begin is not None:
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:
        job: Job = self.sourceModel().item(row)
        if self.status and job.status != self.status:
            return False
        if self.owner and job.owner != self.owner:
            return False
        if not self.search:
            return True
        if self.search.startswith("#"):
            return self.search[1:] == str(job.id)
        return any(self.search in text.casefold() for text in (job.name, job.owner, job.renderer))

    def job(self, row: int) -> Job:
        return self.data(self.index(row, 0), OBJECT_ROLE)


# -- tasks --------------------------------------------------------------------------------------


def _took(task: Task) -> float | None:
    if task.started_at is None:
        return None
    return (task.ended_at or time.time()) - task.started_at


class TasksModel(ObjectTable):
    """One job's tasks by index."""

    columns = (
        Column("Task", lambda t: str(t.index), key=lambda t: t.index, numeric=True),
        Column("Frames", lambda t: frames_text(t.start, t.end, t.step), key=lambda t: t.start),
        Column(
            "State", lambda t: states.label(t.state), key=lambda t: t.state, state=lambda t: t.state
        ),
        Column(
            "Progress", lambda t: f"{t.progress * 100:.0f}%", key=lambda t: t.progress, numeric=True
        ),
        Column("Host", lambda t: t.computer or DASH),
        Column("Tries", lambda t: str(t.attempts), key=lambda t: t.attempts, numeric=True),
        Column("Time", lambda t: duration(_took(t)), key=lambda t: _took(t) or 0.0, numeric=True),
        Column(
            "CPU",
            lambda t: duration(t.cpu_seconds),
            key=lambda t: t.cpu_seconds or 0.0,
            numeric=True,
        ),
        Column(
            "Peak memory",
            lambda t: f"{t.peak_rss_kb / 1024:,.0f} MB" if t.peak_rss_kb else DASH,
            key=lambda t: t.peak_rss_kb or 0,
            numeric=True,
        ),
        Column(
            "Exit",
            lambda t: DASH if t.exit_code is None else str(t.exit_code),
            key=lambda t: t.exit_code if t.exit_code is not None else -(10**9),
            numeric=True,
        ),
        Column(
            "Failure",
            lambda t: t.failure_class or "",
            tip=lambda t: t.failure_detail or t.failure_class,
        ),
        Column("Reason", lambda t: t.reason or ""),
    )

    def __init__(self):
        super().__init__(key=lambda task: task.index)


# -- computers ----------------------------------------------------------------------------------


def _memory(c: Computer) -> str:
    if not c.ram_mb:
        return DASH
    used = c.ram_mb - c.free_ram_mb
    return f"{used / 1024:.1f} / {c.ram_mb / 1024:.1f} GB"


def _running(c: Computer) -> str:
    return (
        ", ".join(f"job {r.job_id} task {r.task_index} ({r.progress:.0%})" for r in c.running)
        or DASH
    )


def _load(c: Computer) -> str:
    if not c.online:
        return DASH
    return f"{c.load:.2f}" + (f" / {c.cores}" if c.cores else "")


class ComputersModel(ObjectTable):
    """The slaves the master knows, online or not."""

    columns = (
        Column("Name", lambda c: c.name, tip=lambda c: f"{c.name} ({c.hostname})"),
        Column(
            "State",
            lambda c: states.label(states.computer_state(c)),
            key=states.computer_state,
            state=states.computer_state,
        ),
        Column("Load", _load, key=lambda c: c.load, numeric=True),
        Column("Memory", _memory, key=lambda c: c.ram_mb - c.free_ram_mb, numeric=True),
        Column("Running", _running, key=lambda c: len(c.running)),
        Column("Pools", lambda c: ", ".join(c.pools) or DASH),
        Column("Slots", lambda c: str(c.slots), key=lambda c: c.slots, numeric=True),
        Column(
            "Task limit",
            lambda c: DASH if c.max_tasks is None else str(c.max_tasks),
            key=lambda c: c.max_tasks if c.max_tasks is not None else math.inf,
            numeric=True,
        ),
        Column("GPUs", lambda c: str(c.gpus), key=lambda c: c.gpus, numeric=True),
        Column("OS", lambda c: f"{c.os} {c.arch}".strip() or DASH),
        Column("Last seen", lambda c: when(c.last_seen), key=lambda c: c.last_seen or 0.0),
    )

    def __init__(self):
        super().__init__(key=lambda computer: computer.name)
