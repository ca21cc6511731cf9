"""The window's look: Qt's Fusion style with a dark palette and one style sheet, in the web
UI's colours (states.py), so a long day in front of it is easy on the eyes and both faces of
DrQueue read alike."""

from __future__ import annotations

from importlib.resources import files

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from drqueue.gui import states

STYLE_SHEET = f"""
QWidget {{ font-size: 10pt; }}
QMainWindow, QDialog {{ background: {states.BACKGROUND}; }}
QToolBar {{ background: #0c0e12; border: none; border-bottom: 1px solid {states.BORDER};
    padding: 4px 8px; spacing: 6px; }}
QToolBar QToolButton {{ color: {states.TEXT}; padding: 5px 10px; border-radius: 5px; }}
QToolBar QToolButton:hover {{ background: {states.RAISED}; }}
QLabel#brand {{ font-weight: 700; font-size: 11pt; padding-right: 14px; }}
QLabel#muted, QLabel#section {{ color: {states.MUTED}; }}
QLabel#section {{ font-size: 8.5pt; font-weight: 600; letter-spacing: 1px; padding-top: 6px; }}
QLabel#jobTitle {{ font-size: 15pt; font-weight: 600; }}
QLabel#statusBadge {{ font-weight: 600; padding: 2px 8px; border: 1px solid {states.BORDER};
    border-radius: 9px; }}
QLabel#dialogTitle {{ font-size: 13pt; font-weight: 600; padding-bottom: 6px; }}
QLabel#reason {{ color: {states.COLOURS["waiting"]}; }}
QLabel#fieldError {{ color: {states.COLOURS["error"]}; font-size: 9pt; }}
QLabel#formError {{ color: #ffd9d9; background: #3a1d20; border: 1px solid #6b2a2e;
    border-radius: 5px; padding: 6px 10px; }}
QLabel#preview {{ background: {states.PANEL}; border: 1px solid {states.BORDER};
    border-radius: 5px; padding: 8px 10px; }}
QLabel#thumbnail {{ background: #0b0d10; border: 1px solid {states.BORDER}; border-radius: 5px;
    color: {states.MUTED}; }}
QFrame#banner[kind="error"] {{ background: #3a1d20; border-bottom: 1px solid #6b2a2e; }}
QFrame#banner[kind="warning"] {{ background: #3a3020; border-bottom: 1px solid #6b5a2a; }}
QFrame#banner QLabel {{ color: #f3e6e6; }}
QLabel#bannerIcon {{ font-size: 16pt; padding-right: 6px; }}
QTabWidget::pane {{ border: none; border-top: 1px solid {states.BORDER}; }}
QTabBar::tab {{ background: transparent; color: {states.MUTED}; padding: 8px 16px;
    border: none; border-bottom: 2px solid transparent; }}
QTabBar::tab:selected {{ color: {states.TEXT}; border-bottom-color: {states.ACCENT}; }}
QTabBar::tab:hover {{ color: {states.TEXT}; }}
QTabBar::tab:disabled {{ color: #3d4450; }}
QTableView {{ background: {states.PANEL}; alternate-background-color: #1c2027;
    border: 1px solid {states.BORDER}; border-radius: 5px; gridline-color: {states.BORDER};
    selection-background-color: #24476b; selection-color: #ffffff; }}
QTableView::item {{ padding: 0 6px; border: none; }}
QHeaderView::section {{ background: {states.PANEL}; color: {states.MUTED}; border: none;
    border-bottom: 1px solid {states.BORDER}; padding: 6px 16px 6px 6px; font-weight: 600; }}
QHeaderView::up-arrow, QHeaderView::down-arrow {{ subcontrol-origin: padding;
    subcontrol-position: center right; width: 8px; height: 8px; right: 4px; }}
QPushButton {{ background: {states.RAISED}; border: 1px solid #3a414d; border-radius: 5px;
    padding: 5px 12px; color: {states.TEXT}; }}
QPushButton:hover {{ background: #2e3440; }}
QPushButton:disabled {{ color: #5d6672; background: #1d2128; border-color: {states.BORDER}; }}
QPushButton#primary {{ background: #2f7fd0; border-color: #2f7fd0; color: white; }}
QPushButton#danger {{ color: {states.COLOURS["error"]}; }}
QLineEdit, QSpinBox, QComboBox, QPlainTextEdit {{ background: #0f1216; border: 1px solid #3a414d;
    border-radius: 5px; padding: 4px 6px; color: {states.TEXT};
    selection-background-color: #24476b; }}
QSpinBox::up-button, QSpinBox::down-button {{ width: 0; border: none; }}
/* (not ButtonSymbols.NoButtons: with this style sheet it hid the number itself) */
QLineEdit:focus, QSpinBox:focus, QComboBox:focus {{ border-color: {states.ACCENT}; }}
QLineEdit[invalid="true"], QSpinBox[invalid="true"] {{ border-color: {states.COLOURS["error"]}; }}
QPlainTextEdit#log {{ background: #0b0d10; font-size: 9pt; }}
QGroupBox {{ border: 1px solid {states.BORDER}; border-radius: 5px; margin-top: 12px;
    padding: 10px 8px 6px 8px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; color: {states.MUTED}; }}
QStatusBar {{ background: #0c0e12; border-top: 1px solid {states.BORDER}; color: {states.MUTED}; }}
QMenu {{ background: {states.RAISED}; border: 1px solid #3a414d; padding: 4px; }}
QMenu::item {{ padding: 5px 22px; border-radius: 4px; }}
QMenu::item:selected {{ background: #24476b; }}
QMenu::item:disabled {{ color: #5d6672; }}
QMenu::separator {{ height: 1px; background: #3a414d; margin: 4px 8px; }}
QScrollBar:vertical {{ background: transparent; width: 11px; margin: 0; }}
QScrollBar:horizontal {{ background: transparent; height: 11px; margin: 0; }}
QScrollBar::handle {{ background: #3a414d; border-radius: 4px; margin: 2px; }}
QScrollBar::handle:vertical {{ min-height: 28px; }}
QScrollBar::handle:horizontal {{ min-width: 28px; }}
QScrollBar::handle:hover {{ background: #4a5361; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: transparent; }}
QSplitter::handle {{ background: {states.BACKGROUND}; }}
QScrollArea {{ background: transparent; }}
QToolTip {{ background: {states.RAISED}; color: {states.TEXT}; border: 1px solid #3a414d; }}
"""


def app_icon() -> QIcon:
    """The web UI's favicon: a frame grid, two finished, one running, one queued."""
    return QIcon(str(files("drqueue") / "web" / "static" / "favicon.svg"))


def apply(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    for role, colour in (
        (QPalette.ColorRole.Window, states.BACKGROUND),
        (QPalette.ColorRole.WindowText, states.TEXT),
        (QPalette.ColorRole.Base, states.PANEL),
        (QPalette.ColorRole.AlternateBase, "#1c2027"),
        (QPalette.ColorRole.Text, states.TEXT),
        (QPalette.ColorRole.Button, states.RAISED),
        (QPalette.ColorRole.ButtonText, states.TEXT),
        (QPalette.ColorRole.Highlight, "#24476b"),
        (QPalette.ColorRole.HighlightedText, "#ffffff"),
        (QPalette.ColorRole.ToolTipBase, states.RAISED),
        (QPalette.ColorRole.ToolTipText, states.TEXT),
        (QPalette.ColorRole.PlaceholderText, "#5d6672"),
        (QPalette.ColorRole.Link, states.ACCENT),
    ):
        palette.setColor(role, QColor(colour))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#5d6672"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#5d6672"))
    app.setPalette(palette)
    app.setStyleSheet(STYLE_SHEET)
    app.setWindowIcon(app_icon())
