"""The submit dialog: a form made from the renderers' parameter schemas (GET /renderers), and
the master's own checks of the job as you type.

A change to any field asks the master for a preview of the job (POST /jobs/preview, the
same checks as a submit, with nothing stored) after PREVIEW_DELAY_MS of quiet; its answer
says how many tasks and frames the job makes, and its refusal is shown under the field it
names (the web UI's rule, :func:`field_of`) and above the form.  Submit sends POST /jobs with
an Idempotency-Key (``Client.submit``).
"""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from drqueue.api_types import Preview, RendererInfo, Submitted
from drqueue.errors import DrQueueError, InvalidJob, InvalidRequest, NotFound
from drqueue.gui.controller import Controller
from drqueue.gui.plain import PlainLabel, plain_tip

#: The "Where and how it runs" fields: (body key, label, hint); requirements.* go into the
#: job's requirements.  The same options as `drqueue submit`'s.
MORE_OPTIONS = (
    ("requirements.min_ram_gb", "Min RAM (GB)", "any"),
    ("requirements.min_cores", "Min cores", "any"),
    ("requirements.gpus", "GPUs a task", "0: runs on CPU slots"),
    ("requirements.hosts", "Only hosts", "globs, separated by commas: render0*"),
    ("requirements.exclude_hosts", "Never hosts", "globs, separated by commas"),
    ("timeout", "Task timeout (s)", "none"),
    ("max_parallel", "At most at once", "no limit"),
    ("after", "After jobs", "job numbers, separated by commas; 12:frames waits frame by frame"),
    ("owner", "Owner", "you (an admin may name someone else)"),
)
#: How each of those fields is read (the rest are text).
MORE_KINDS = {
    "requirements.min_ram_gb": "float",
    "requirements.min_cores": "int",
    "requirements.gpus": "int",
    "requirements.hosts": "list",
    "requirements.exclude_hosts": "list",
    "timeout": "float",
    "max_parallel": "int",
    "after": "list",
}

#: Milliseconds of quiet after a change before the master is asked for a preview.
PREVIEW_DELAY_MS = 350
#: The frame numbers a spin box takes (the API's FRAME_LIMIT is larger; the master says so).
FRAME_RANGE = (-1_000_000, 10_000_000)
#: The errors that are about what was typed (the rest: the master, the network, the token).
FORM_ERRORS = (InvalidJob, InvalidRequest, NotFound)


def field_of(detail: str, fields: set[str]) -> str | None:
    """The field an API error names: ``parameter 'cmd' ...``, ``block_size: ...``,
    ``requirements.pools.0: ...``, or a frame or scene in its words (the web UI's rule)."""
    param = re.search(r"parameter '([^']+)'", detail)
    if param and f"params.{param[1]}" in fields:
        return f"params.{param[1]}"
    prefix = re.match(r"^([A-Za-z_][\w.]*?)(?:\.\d+)?: ", detail)
    if prefix:
        path = prefix[1]
        while path and path not in fields:
            path = path.rpartition(".")[0]
        if path:
            return path
    for pattern, field in (
        (r"scene", "scene"),
        (r"end frame|start frame", "end"),
        (r"step must", "step"),
        (r"block size", "block_size"),
    ):
        if re.search(pattern, detail):
            return field
    return None


class Field:
    """One input of the form, the label under it for the master's complaint, and its value."""

    def __init__(self, widget: QWidget, error: QLabel):
        self.widget, self.error = widget, error

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))
        self.widget.setProperty("invalid", bool(text))
        self.widget.style().unpolish(self.widget)
        self.widget.style().polish(self.widget)


class SubmitDialog(QDialog):
    submitted = Signal(int)  # the new job's id

    def __init__(
        self, parent: QWidget | None, controller: Controller, renderers: list[RendererInfo]
    ):
        super().__init__(parent)
        self.setWindowTitle("Submit a job")
        self.setMinimumWidth(620)
        self.controller = controller
        self.renderers = {r.name: r for r in renderers}
        self.fields: dict[str, Field] = {}
        self._ticket = 0
        self.preview_answer: Preview | None = None

        self.renderer = QComboBox()
        for info in renderers:
            self.renderer.addItem(info.name, info.name)
            self.renderer.setItemData(
                self.renderer.count() - 1, info.description, Qt.ItemDataRole.ToolTipRole
            )
        self.renderer_help = PlainLabel()
        self.renderer_help.setObjectName("muted")
        self.renderer_help.setWordWrap(True)
        self.name = QLineEdit()
        self.name.setPlaceholderText("shown in the jobs table")
        self.scene = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        scene_row = QWidget()
        scene_layout = QHBoxLayout(scene_row)
        scene_layout.setContentsMargins(0, 0, 0, 0)
        scene_layout.addWidget(self.scene, 1)
        scene_layout.addWidget(browse)
        self.start = self._spin(1, *FRAME_RANGE)
        self.end = self._spin(10, *FRAME_RANGE)
        self.step = self._spin(1, 1, 1_000_000)
        self.block_size = self._spin(1, 1, 1_000_000)
        self.priority = self._spin(50, -1_000_000, 1_000_000)
        self.retries = self._spin(3, 0, 100)
        self.pools = QLineEdit()
        self.pools.setPlaceholderText("any host (or pools, separated by commas)")

        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._row("Renderer", "renderer", self.renderer)
        self.form.addRow("", self.renderer_help)
        self._row("Name", "name", self.name)
        self._row("Scene", "scene", scene_row, focus=self.scene)
        frames = QWidget()
        frames_layout = QHBoxLayout(frames)
        frames_layout.setContentsMargins(0, 0, 0, 0)
        for label, spin in (("from", self.start), ("to", self.end), ("step", self.step)):
            frames_layout.addWidget(PlainLabel(label))
            frames_layout.addWidget(spin, 1)
        self._row("Frames", "start", frames, focus=self.start)
        self.fields["end"] = self.fields["step"] = self.fields["start"]
        self._row("Frames a task", "block_size", self.block_size)
        self._row("Priority", "priority", self.priority)
        self._row("Retries", "retries", self.retries)
        self._row("Pools", "requirements", self.pools)
        self._more_options()
        self.params_box = QGroupBox("Renderer parameters")
        self.params_form = QFormLayout(self.params_box)
        self.params_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.param_inputs: dict[str, QWidget] = {}

        self.problem = PlainLabel()
        self.problem.setObjectName("formError")
        self.problem.setWordWrap(True)
        self.problem.hide()
        self.preview_label = QLabel("…")  # rich: numbers only
        self.preview_label.setObjectName("preview")
        self.preview_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.submit_button = self.buttons.addButton(
            "Submit", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.submit_button.setObjectName("primary")
        self.submit_button.setDefault(True)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)

        title = PlainLabel("Submit a job")
        title.setObjectName("dialogTitle")
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.problem)
        layout.addLayout(self.form)
        layout.addWidget(self.more_box)
        layout.addWidget(self.params_box)
        layout.addWidget(self.preview_label)
        layout.addWidget(self.buttons)

        self.preview_timer = QTimer(self)
        self.preview_timer.setSingleShot(True)
        self.preview_timer.setInterval(PREVIEW_DELAY_MS)
        self.preview_timer.timeout.connect(self.preview)
        self.renderer.currentIndexChanged.connect(self._renderer_changed)
        for line in (self.name, self.scene, self.pools, *self.more_lines.values()):
            line.textChanged.connect(self.changed)
        self.os.currentIndexChanged.connect(self.changed)
        self.env.textChanged.connect(self.changed)
        for spin in (self.start, self.end, self.step, self.block_size, self.priority, self.retries):
            spin.valueChanged.connect(self.changed)
        index = self.renderer.findData("shell")
        self.renderer.setCurrentIndex(max(index, 0))
        self._renderer_changed()

    # -- building the form ---------------------------------------------------------------------

    def _more_options(self) -> None:
        """The rest of `drqueue submit`'s options, in a group of their own: where the job may
        run, how long a task may take, what it waits for, its environment and its owner."""
        self.more_box = QGroupBox("Where and how it runs")
        self.more_box.setCheckable(True)  # unticked: folded away, and none of it is sent
        self.more_box.setChecked(False)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        inner = QWidget()
        inner.setLayout(form)
        box_layout = QVBoxLayout(self.more_box)
        box_layout.addWidget(inner)
        self.more_box.toggled.connect(inner.setVisible)
        self.more_box.toggled.connect(self.changed)
        inner.setVisible(False)
        self.os = QComboBox()
        for label, value in (
            ("any", None),
            ("Linux", "linux"),
            ("Windows", "windows"),
            ("macOS", "darwin"),
        ):
            self.os.addItem(label, value)
        self.more_lines: dict[str, QLineEdit] = {}
        self._row("Slave OS", "requirements.os", self.os, form=form)
        for key, label, hint in MORE_OPTIONS:
            line = QLineEdit()
            line.setPlaceholderText(hint)
            self.more_lines[key] = line
            self._row(label, key, line, form=form)
        self.env = QPlainTextEdit()
        self.env.setPlaceholderText("NAME=VALUE, one a line")
        self.env.setFixedHeight(60)
        self._row("Environment", "env", self.env, form=form)

    def _spin(self, value: int, low: int, high: int) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setValue(value)
        spin.setGroupSeparatorShown(False)
        return spin

    def _error_label(self) -> QLabel:
        error = PlainLabel()
        error.setObjectName("fieldError")
        error.setWordWrap(True)
        error.hide()
        return error

    def _row(
        self,
        label: str,
        path: str,
        widget: QWidget,
        *,
        focus: QWidget | None = None,
        form: QFormLayout | None = None,
    ) -> None:
        """A row of *form* (the main one by default): the input, the error line under it."""
        error = self._error_label()
        box = QWidget()
        box_layout = QVBoxLayout(box)
        box_layout.setContentsMargins(0, 0, 0, 0)
        box_layout.setSpacing(2)
        box_layout.addWidget(widget)
        box_layout.addWidget(error)
        (form or self.form).addRow(label, box)
        self.fields[path] = Field(focus or widget, error)

    def _renderer_changed(self, *_args) -> None:
        info = self.renderers.get(self.renderer.currentData())
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        for path in [p for p in self.fields if p.startswith("params.")]:
            del self.fields[path]
        self.param_inputs = {}
        if info is None:
            return
        self.renderer_help.setText(info.description)
        self.scene.setPlaceholderText(
            "the scene file, as the slaves see it"
            if info.needs_scene
            else "optional for this renderer"
        )
        for param in info.params:
            widget = self._param_input(param)
            self.param_inputs[param.name] = widget
            label = param.name + (" *" if param.required else "")
            self._row(label, f"params.{param.name}", widget, form=self.params_form)
        self.params_box.setVisible(bool(info.params))
        self.changed()

    def _param_input(self, param) -> QWidget:
        if param.type == "bool":
            widget: QWidget = QCheckBox(param.help)
            widget.setChecked(bool(param.default))
            widget.toggled.connect(self.changed)
            return widget
        if param.choices:
            widget = QComboBox()
            if not param.required:
                widget.addItem(
                    f"(default: {param.default})" if param.default is not None else "(none)", None
                )
            for choice in param.choices:
                widget.addItem(str(choice), choice)
            widget.currentIndexChanged.connect(self.changed)
            widget.setToolTip(plain_tip(param.help))
            return widget
        widget = QLineEdit()
        widget.setPlaceholderText(
            param.help or (f"default {param.default}" if param.default is not None else "")
        )
        widget.setToolTip(
            plain_tip(
                f"{param.help} ({param.type}"
                + (f", default {param.default})" if param.default is not None else ")")
            )
        )
        widget.textChanged.connect(self.changed)
        return widget

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Scene", self.scene.text())
        if path:
            self.scene.setText(path)

    # -- the job -------------------------------------------------------------------------------

    def body(self) -> dict[str, Any]:
        """The JSON of POST /jobs the form says."""
        out: dict[str, Any] = {
            "renderer": self.renderer.currentData() or "",
            "start": self.start.value(),
            "end": self.end.value(),
            "step": self.step.value(),
            "block_size": self.block_size.value(),
            "priority": self.priority.value(),
            "retries": self.retries.value(),
        }
        if self.name.text().strip():
            out["name"] = self.name.text().strip()
        if self.scene.text().strip():
            out["scene"] = self.scene.text().strip()
        requirements: dict[str, Any] = {}
        pools = [p.strip() for p in self.pools.text().split(",") if p.strip()]
        if pools:
            requirements["pools"] = pools
        if self.more_box.isChecked():
            self._more_body(out, requirements)
        if requirements:
            out["requirements"] = requirements
        info = self.renderers.get(out["renderer"])
        params: dict[str, Any] = {}
        for param in info.params if info else []:
            widget = self.param_inputs[param.name]
            if isinstance(widget, QCheckBox):
                if widget.isChecked() != bool(param.default):
                    params[param.name] = widget.isChecked()
            elif isinstance(widget, QComboBox):
                if widget.currentData() is not None:
                    params[param.name] = widget.currentData()
            elif widget.text().strip():
                params[param.name] = _typed(param.type, widget.text())
        if params:
            out["params"] = params
        return out

    def _more_body(self, out: dict[str, Any], requirements: dict[str, Any]) -> None:
        """The "Where and how it runs" group's fields into the body; the master checks them
        (a number typed wrong is sent as typed, and its message shown at its field)."""
        if self.os.currentData():
            requirements["os"] = self.os.currentData()
        for key, _label, _hint in MORE_OPTIONS:
            text = self.more_lines[key].text().strip()
            if not text:
                continue
            kind = MORE_KINDS.get(key, "str")
            if kind == "list":
                value: Any = [part.strip() for part in text.split(",") if part.strip()]
                if key == "after":  # "12" waits for the whole job, "12:frames" frame by frame
                    frames = [part for part in value if part.endswith(":frames")]
                    if frames:
                        out["after_frames"] = [
                            _typed("int", part.removesuffix(":frames")) for part in frames
                        ]
                    value = [_typed("int", part) for part in value if part not in frames]
                    if not value:
                        continue
            else:
                value = _typed(kind, text)
            if key.startswith("requirements."):
                requirements[key.split(".", 1)[1]] = value
            else:
                out[key] = value
        env = {}
        for line in self.env.toPlainText().splitlines():
            if line.strip():
                name, _, value = line.partition("=")
                env[name.strip()] = value
        if env:
            out["env"] = env

    def changed(self, *_args) -> None:
        self.preview_timer.start()

    def preview(self) -> None:
        self._ticket += 1
        ticket = self._ticket

        def shown(answer: Preview) -> None:
            if ticket == self._ticket:
                self.preview_answer = answer
                self.show_problem("")
                self._show_preview(answer)

        def refused(exc: DrQueueError) -> None:
            if ticket == self._ticket:
                self.preview_answer = None
                self.show_problem(str(exc), form=isinstance(exc, FORM_ERRORS))
                self.preview_label.setText("✕ Not valid yet")

        self.controller.preview(self.body(), shown, refused)

    def _show_preview(self, answer: Preview) -> None:
        blocks = ", ".join(
            f"{start}" if start == end else f"{start}–{end}"
            for start, end, _step in answer.blocks[:6]
        )
        more = "…" if answer.tasks > 6 else ""
        tasks = "task" if answer.tasks == 1 else "tasks"
        frames = "frame" if answer.frames == 1 else "frames"
        self.preview_label.setText(
            f"✓ <b>{answer.tasks:,}</b> {tasks} · <b>{answer.frames:,}</b> {frames}"
            f"<br><span style='color:#8d96a3'>tasks: {blocks}{more}</span>"
        )

    def show_problem(self, text: str, *, form: bool = True) -> None:
        """The master's complaint at the top, and under the field it names."""
        for field in {id(f): f for f in self.fields.values()}.values():
            field.show_error("")
        self.problem.setText(text)
        self.problem.setVisible(bool(text))
        if text and form:
            path = field_of(text, set(self.fields))
            if path is not None:
                self.fields[path].show_error(text)

    def submit(self) -> None:
        self.preview_timer.stop()
        self._ticket += 1  # a preview on its way is out of date
        self.submit_button.setEnabled(False)

        def done(answer: Submitted) -> None:
            self.submit_button.setEnabled(True)
            self.submitted.emit(answer.id)
            self.accept()

        def refused(exc: DrQueueError) -> None:
            self.submit_button.setEnabled(True)
            self.show_problem(str(exc), form=isinstance(exc, FORM_ERRORS))
            path = field_of(str(exc), set(self.fields))
            if path is not None:
                self.fields[path].widget.setFocus()

        self.controller.submit(self.body(), done, refused)


def _typed(kind: str, text: str) -> Any:
    """A number parameter as a number (the master checks it), else the text as typed."""
    if kind in ("int", "float"):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            return text.strip()
    return text
