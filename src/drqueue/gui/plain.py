"""Text from the master shown as written, never as HTML.

Qt guesses whether a label's or a tooltip's text is HTML from the text itself, and an artist
chooses job names: a job named ``<img src="/dev/zero">`` made the wrangler's window read
/dev/zero until it died, on opening the job or on hovering its row.  Every label fed by the
master's words (job names, reasons, its error messages) is a :class:`PlainLabel`, and every
tooltip goes through :func:`plain_tip`.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget


def plain_tip(text: str) -> str:
    """*text* as a tooltip that shows it as written (escaped inside a paragraph of its own)."""
    return f"<p style='white-space:pre-wrap'>{html.escape(text)}</p>" if text else ""


class PlainLabel(QLabel):
    """A label that shows its text as written, never as HTML."""

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(text, parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
