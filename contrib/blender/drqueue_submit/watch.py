"""The panel's Watch area: the progress of the job submitted last, polled without blocking.

A ``bpy.app.timers`` timer runs on Blender's main thread every :data:`POLL_SECONDS`; it never
waits on the network.  Each tick hands ``GET /jobs/ID`` to a daemon thread (one at a time)
and shows the answer the previous thread left, then redraws the Properties editors.  The
thread touches no ``bpy`` data.  Polling stops when the job ends (finished, error, cancelled),
is deleted, or the artist closes the Watch area.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import bpy

from . import farm

#: Seconds between two reads of the watched job.
POLL_SECONDS = 2.0


@dataclass
class Watched:
    """What the Watch area shows."""

    job_id: int
    master: str
    token: str
    fraction: float = 0.0
    line: str = "submitted, waiting for the master's first answer"
    ended: bool = False


class Watch:
    def __init__(self) -> None:
        self.job: Watched | None = None
        self._answer: tuple[int, dict[str, Any] | farm.FarmError] | None = None
        self._thread: threading.Thread | None = None
        # bpy.app.timers knows a timer by the function object, and each `self._tick` makes a
        # new bound method: keep one, to register, look up and unregister the same.
        self._timer = self._tick

    def start(self, job_id: int, master: str, token: str) -> None:
        """Watch *job_id* (replacing the job watched before)."""
        self.job = Watched(job_id, master, token)
        self._answer = None
        if not bpy.app.timers.is_registered(self._timer):
            bpy.app.timers.register(self._timer, first_interval=0.0, persistent=True)

    def stop(self) -> None:
        self.job = None
        if bpy.app.timers.is_registered(self._timer):
            bpy.app.timers.unregister(self._timer)

    def read_now(self) -> bool:
        """Read the job on the thread, wait for the answer and show it (for scripts; the panel
        never waits); whether the master answered with the job."""
        if self.job is None:
            return False
        self._read(self.job).join()
        answered = self._answer is not None and isinstance(self._answer[1], dict)
        self._show()
        return answered

    def _tick(self) -> float | None:
        job = self.job
        if job is None:
            return None
        self._show()
        if job.ended:
            return None
        self._read(job)
        return POLL_SECONDS

    def _read(self, job: Watched) -> threading.Thread:
        """The thread reading *job*: a new one, unless one is reading still."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._fetch,
                args=(job.job_id, job.master, job.token),
                name="drqueue-watch",
                daemon=True,
            )
            self._thread.start()
        return self._thread

    def _fetch(self, job_id: int, master: str, token: str) -> None:
        # On the thread: no bpy here.  A plain assignment hands the answer over.
        try:
            answer: dict[str, Any] | farm.FarmError = farm.get_job(master, token, job_id)
        except farm.FarmError as exc:
            answer = exc
        self._answer = (job_id, answer)

    def _show(self) -> None:
        answer, job = self._answer, self.job
        if answer is None or job is None or answer[0] != job.job_id:
            return
        self._answer = None
        if isinstance(answer[1], farm.FarmError):
            job.ended = answer[1].status == 404  # deleted: there is nothing more to watch
            again = "" if job.ended else f" (asking again every {POLL_SECONDS:.0f} s)"
            job.line = f"{answer[1]}{again}"
        else:
            job.fraction, job.line = farm.job_progress(answer[1])
            job.ended = answer[1].get("status") in farm.END_STATES
        redraw_properties()


def redraw_properties() -> None:
    """Redraw every Properties editor, where the DrQueue panel lives."""
    for window in getattr(bpy.context.window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type == "PROPERTIES":
                area.tag_redraw()


#: The one Watch of this Blender session.
WATCH = Watch()


class DRQUEUE_OT_stop_watching(bpy.types.Operator):
    bl_idname = "drqueue.stop_watching"
    bl_label = "Stop Watching"
    bl_description = "Stop showing this job's progress (the job itself goes on)"

    def execute(self, context: bpy.types.Context) -> set[str]:
        WATCH.stop()
        redraw_properties()
        return {"FINISHED"}


class DRQUEUE_OT_open_job(bpy.types.Operator):
    bl_idname = "drqueue.open_job"
    bl_label = "Open in Browser"
    bl_description = "Open the job's page in the DrQueue web UI"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return WATCH.job is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = WATCH.job
        bpy.ops.wm.url_open(url=f"{job.master}/jobs/{job.job_id}")
        return {"FINISHED"}


register, _unregister = bpy.utils.register_classes_factory(
    (DRQUEUE_OT_stop_watching, DRQUEUE_OT_open_job)
)


def unregister() -> None:
    WATCH.stop()
    _unregister()
