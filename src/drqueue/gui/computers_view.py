"""The computers view: each slave's state, load, memory, what it runs and its pools, and the
CLI's `drqueue computer` and `drqueue pool` controls: enable, disable, the task limit, adding
to and removing from a pool, creating and deleting a pool.

The table is read again on each of the live stream's ``farm`` messages (every 2 s).
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from drqueue.api_types import Computer, Pool
from drqueue.gui.controller import Controller
from drqueue.gui.models import OBJECT_ROLE, ComputersModel, ModelSorted
from drqueue.gui.plain import PlainLabel
from drqueue.gui.widgets import add_buttons, popup_menu

#: The controls of `drqueue computer` and `drqueue pool` on the selected computers.
COMPUTER_CONTROLS = (
    ("enable", "Enable"),
    ("disable", "Disable"),
    ("limit", "Task limit…"),
    ("pool-add", "Add to pool…"),
    ("pool-remove", "Remove from pool…"),
)


class ComputersView(QWidget):
    def __init__(self, controller: Controller):
        super().__init__()
        self.controller = controller
        self.model = ComputersModel()
        self.pools: list[Pool] = []
        self.menu: QMenu | None = None
        self.proxy = ModelSorted(self.model)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search computers, pools, jobs")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.setFilterFixedString)
        self.summary = PlainLabel()
        self.summary.setObjectName("muted")
        bar = QHBoxLayout()
        bar.addWidget(self.search, 2)
        self.buttons = add_buttons(bar, COMPUTER_CONTROLS, self.run)
        bar.addStretch(1)
        bar.addWidget(self.summary)
        pools_button = QPushButton("Pools")
        pools_menu = QMenu(pools_button)
        pools_menu.addAction("Create pool…").triggered.connect(self.create_pool)
        pools_menu.addAction("Delete pool…").triggered.connect(self.delete_pool)
        pools_button.setMenu(pools_menu)
        bar.addWidget(pools_button)

        self.table = QTableView()
        self.table.setObjectName("computersTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self.show_menu)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in enumerate((130, 110, 90, 130, 220, 120, 70, 100, 70, 110)):
            self.table.setColumnWidth(column, width)
        self.table.selectionModel().selectionChanged.connect(self._selection)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.addLayout(bar)
        layout.addWidget(self.table)
        controller.computers_loaded.connect(self.set_computers)
        controller.pools_loaded.connect(self.set_pools)
        self._selection()

    def set_computers(self, computers: list[Computer]) -> None:
        self.model.set_items(computers)
        online = sum(c.online for c in computers)
        slots = sum(c.slots for c in computers if c.online and c.enabled)
        busy = sum(len(c.running) for c in computers)
        self.summary.setText(
            f"{len(computers)} computers · {online} online · {busy} of {slots} slots busy"
        )

    def set_pools(self, pools: list[Pool]) -> None:
        self.pools = pools

    def selected(self) -> list[Computer]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.proxy.index(row, 0).data(OBJECT_ROLE) for row in rows]

    def select(self, name: str) -> bool:
        row = self.model.row_of(name)
        if row is None:
            return False
        self.table.selectRow(self.proxy.mapFromSource(self.model.index(row, 0)).row())
        return True

    def _selection(self, *_args) -> None:
        chosen = bool(self.selected())
        for button in self.buttons.values():
            button.setEnabled(chosen)

    def computer_menu(self) -> QMenu:
        menu = QMenu(self)
        chosen = self.selected()
        menu.addSection(chosen[0].name if len(chosen) == 1 else f"{len(chosen)} computers")
        for action, button in self.buttons.items():
            menu.addAction(button.text()).triggered.connect(lambda _=False, a=action: self.run(a))
        return menu

    def show_menu(self, pos: QPoint) -> None:
        self.menu = popup_menu(self.table, pos, self.computer_menu)

    def run(self, action: str) -> None:
        names = [c.name for c in self.selected()]
        if not names:
            return
        if action in ("enable", "disable"):
            self.controller.computer_action(names, action)
        elif action == "limit":
            current = self.selected()[0].max_tasks
            value, ok = QInputDialog.getInt(
                self,
                "Task limit",
                "Most tasks at once (0: no limit beyond its slots):",
                current or 0,
                0,
                10_000,
            )
            if ok:
                self.controller.computer_limit(names, value or None)
        elif action == "pool-add":
            pool = self._pick_pool("Add to pool", [p.name for p in self.pools])
            if pool:
                self.controller.pool_member(pool, names, True)
        elif action == "pool-remove":
            theirs = sorted({p for c in self.selected() for p in c.pools})
            pool = self._pick_pool("Remove from pool", theirs)
            if pool:
                self.controller.pool_member(pool, names, False)

    def _pick_pool(self, title: str, names: list[str]) -> str | None:
        if not names:
            QMessageBox.information(self, title, "There is no pool to choose: create one first.")
            return None
        name, ok = QInputDialog.getItem(self, title, "Pool:", names, 0, False)
        return name if ok else None

    def create_pool(self) -> None:
        name, ok = QInputDialog.getText(self, "Create pool", "Name of the new pool:")
        if ok and name.strip():
            self.controller.create_pool(name.strip())

    def delete_pool(self) -> None:
        name = self._pick_pool("Delete pool", [p.name for p in self.pools])
        if name:
            self.controller.delete_pool(name)
