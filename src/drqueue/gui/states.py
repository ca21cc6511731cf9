"""Each state's colour, glyph and word: one vocabulary for jobs, tasks and computers.

A state is never told by colour alone (as on the web UI, docs/web.md): each has a glyph beside
its word, and the frame grid a shape.  The colours are the web UI's (app.css), so a wrangler who
uses both reads them alike.
"""

from __future__ import annotations

from PySide6.QtGui import QColor

#: The colour of each state (the web UI's app.css variables).
COLOURS: dict[str, str] = {
    "queued": "#7d8796",
    "dispatched": "#8cc8ff",
    "running": "#4ea1f3",
    "finished": "#3fb57a",
    "error": "#ef5d60",
    "cancelled": "#c49a4a",
    "stopped": "#c49a4a",
    "stopping": "#c49a4a",
    "waiting": "#a88be0",
    "busy": "#4ea1f3",
    "idle": "#3fb57a",
    "offline": "#5d6672",
    "disabled": "#c49a4a",
}

#: The glyph beside each state's word.
GLYPHS: dict[str, str] = {
    "queued": "○",
    "dispatched": "→",
    "running": "▶",
    "stopping": "‖",
    "stopped": "‖",
    "waiting": "◷",
    "finished": "✓",
    "error": "✕",
    "cancelled": "⊘",
    "busy": "▶",
    "idle": "○",
    "offline": "◌",
    "disabled": "⊘",
}

#: A task's state by its letter in GET /jobs/ID/frames (api_types.FrameGrid).
TASK_LETTERS: dict[str, str] = {
    "q": "queued",
    "d": "dispatched",
    "r": "running",
    "f": "finished",
    "e": "error",
    "c": "cancelled",
}

#: The states in which a job has ended: no ETA, and a tray message when one of yours gets here.
ENDED = ("finished", "error", "cancelled")

#: Colours of the window (the web UI's too).
PANEL = "#181b21"
BACKGROUND = "#111318"
RAISED = "#262b34"
BORDER = "#2b313b"
TEXT = "#d9dde3"
MUTED = "#8d96a3"
ACCENT = "#5aa9f5"


def colour(state: str) -> QColor:
    return QColor(COLOURS.get(state, MUTED))


def label(state: str) -> str:
    """The state as the tables show it: its glyph and its word (``✓ finished``)."""
    return f"{GLYPHS.get(state, '•')} {state}"


def computer_state(computer) -> str:
    """busy, idle, offline or disabled: what a computer is doing, in one word."""
    if not computer.enabled:
        return "disabled"
    if not computer.online:
        return "offline"
    return "busy" if computer.running else "idle"
