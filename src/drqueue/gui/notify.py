"""A desktop message when one of your jobs finishes or fails.

"Yours" is a job whose owner is the name in the settings (your login name by default, the
owner `drqueue submit` gives a job).  The message is a system-tray balloon where the desktop
has a tray, and always a line in the status bar.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QSystemTrayIcon, QWidget

from drqueue.api_types import Job
from drqueue.gui import states
from drqueue.gui.controller import Controller
from drqueue.gui.theme import app_icon

#: The statuses that bring a message, and how long the balloon stays (ms).
NOTIFIED = ("finished", "error")
BALLOON_MS = 8000
#: The most messages one update brings one by one; more make one message that counts them
#: (200 one-frame jobs ending at once were 200 balloons).
ONE_BY_ONE = 3


class Notifier(QObject):
    notified = Signal(int, str, str)  # job id, title, text

    def __init__(self, controller: Controller, me: Callable[[], str], parent: QWidget):
        super().__init__(parent)
        self.me = me
        self.status: dict[int, str] = {}
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(app_icon(), parent)
            self.tray.setToolTip("DrQueue")
            self.tray.show()
        controller.jobs_loaded.connect(lambda jobs: self.seen(jobs, first=not self.status))
        controller.jobs_changed.connect(lambda jobs, _deleted: self.seen(jobs))

    def seen(self, jobs: list[Job], *, first: bool = False) -> None:
        """Note each job's status; a job of yours that has just finished or failed is news
        (not on the first list, which holds what ended before the window opened)."""
        me = self.me()
        news = []
        for job in jobs:
            before = self.status.get(job.id)
            self.status[job.id] = job.status
            if first or job.owner != me or job.status not in NOTIFIED or before == job.status:
                continue
            news.append(job)
        if len(news) > ONE_BY_ONE:
            self.tell_many(news)
        else:
            for job in news:
                self.tell(job)

    def tell_many(self, jobs: list[Job]) -> None:
        failed = [job for job in jobs if job.status == "error"]
        title = f"{len(jobs):,} of your jobs ended"
        text = f"{len(jobs) - len(failed):,} finished, {len(failed):,} failed"
        if failed:
            text += ": " + ", ".join(f"#{job.id}" for job in failed[:10])
        icon = (
            QSystemTrayIcon.MessageIcon.Critical
            if failed
            else QSystemTrayIcon.MessageIcon.Information
        )
        if self.tray is not None:
            self.tray.showMessage(title, text, icon, BALLOON_MS)
        self.notified.emit(jobs[0].id, title, text)

    def tell(self, job: Job) -> None:
        counts = job.counts
        if job.status == "finished":
            title = f"{states.GLYPHS['finished']} Job {job.id} finished"
            text = f"{job.name or '(unnamed)'}: {counts.finished:,} tasks done"
            icon = QSystemTrayIcon.MessageIcon.Information
        else:
            title = f"{states.GLYPHS['error']} Job {job.id} failed"
            text = f"{job.name or '(unnamed)'}: {counts.error:,} of {counts.total:,} tasks in error"
            icon = QSystemTrayIcon.MessageIcon.Critical
        if self.tray is not None:
            self.tray.showMessage(title, text, icon, BALLOON_MS)
        self.notified.emit(job.id, title, text)
