"""The frame grid's answer (``GET /api/v1/jobs/ID/frames``), read once per change of its job
for every page that shows it.

A job page reads its job's grid again each time the live stream says the job changed, so with
50 pages open on a running job of 10,000 tasks the master would read the same 10,000 task
states from the store 50 times a second (about 8 ms of CPU each here), one read per browser.
:class:`FrameGrids` keeps the last answer of each job with the job's version
(:meth:`JobChanges.version`, which every noted write changes) and gives it again while the
version holds and the answer is at most :data:`MAX_AGE_SECONDS` old (the age bounds what a
change nobody noted can leave behind).  Pages that ask at once for a grid not kept wait for one
read.  At most :data:`GRIDS_KEPT` answers are kept, the least recently asked going first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Seconds an answer is given again at most, even if its job was not noted changed.
MAX_AGE_SECONDS = 2.0
#: Jobs whose grid is kept.
GRIDS_KEPT = 64


@dataclass
class _Grid:
    version: int
    read_at: float  # monotonic
    answer: dict[str, Any]


class FrameGrids:
    """The kept grids (see the module docstring); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._grids: OrderedDict[int, _Grid] = OrderedDict()
        self._readers: dict[int, threading.Lock] = {}
        #: Answers read from the store (the rest were given again).
        self.reads = 0

    def get(self, job_id: int, version: int, read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Job *job_id*'s grid at *version* or newer: kept, or ``read()`` (once for all who ask
        at the same time)."""
        with self._lock:
            kept = self._kept(job_id, version)
            if kept is not None:
                return kept
            reader = self._readers.setdefault(job_id, threading.Lock())
        with reader:
            with self._lock:
                kept = self._kept(job_id, version)
                if kept is not None:
                    return kept
            answer = read()
            with self._lock:
                self.reads += 1
                self._grids[job_id] = _Grid(version, time.monotonic(), answer)
                self._grids.move_to_end(job_id)
                while len(self._grids) > GRIDS_KEPT:
                    self._grids.popitem(last=False)
                if self._readers.get(job_id) is reader:
                    del self._readers[job_id]
            return answer

    def _kept(self, job_id: int, version: int) -> dict[str, Any] | None:
        grid = self._grids.get(job_id)
        if (
            grid is None
            or grid.version != version
            or time.monotonic() - grid.read_at > MAX_AGE_SECONDS
        ):
            return None
        self._grids.move_to_end(job_id)
        return grid.answer
