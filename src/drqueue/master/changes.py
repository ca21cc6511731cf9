"""Which jobs changed: noted by the dispatcher and the API, drained by the live stream.

The live stream (``GET /api/v1/stream``, :mod:`drqueue.master.fanout`) sends each browser the
jobs that changed, without listing every job twice a second to find them: whoever writes a
change to a job in the store notes its id here *after* the write, and the fan-out takes the
whole set at each tick and reads just those jobs.  Noting costs a set insert under an
uncontended lock, so the dispatcher's hot path does not feel it.

A job noted twice between two ticks is read once.  A change the store makes that nobody noted
(a job no longer waiting because the job it waited for finished) reaches the browsers with
that job's next noted change; the UI re-reads what it shows when the stream reconnects.

The same notes give each job a *version* (:meth:`JobChanges.version`), a number that changes
with every noted change of the job, so that an answer read once can be given again to every
page that asks before the job changes (:mod:`drqueue.master.framegrids`).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict

#: Jobs whose version is kept (the most recently asked); a job asked again after it was
#: forgotten gets a new number, so a forgotten version costs a read, never a stale answer.
VERSIONS_KEPT = 4096


class JobChanges:
    """A thread-safe set of changed and deleted job ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed: set[int] = set()
        self._deleted: set[int] = set()
        self._versions: OrderedDict[int, int] = OrderedDict()
        self._numbers = itertools.count(1)

    def note(self, job_id: int) -> None:
        """Job *job_id* changed in the store (call after the write is committed)."""
        with self._lock:
            self._changed.add(job_id)
            if job_id in self._versions:
                self._versions[job_id] = next(self._numbers)

    def note_deleted(self, job_id: int) -> None:
        with self._lock:
            self._deleted.add(job_id)
            self._changed.discard(job_id)
            self._versions.pop(job_id, None)

    def version(self, job_id: int) -> int:
        """A number that stays the same until job *job_id* is noted changed or deleted.

        Ask it *before* reading the job: an answer read after it is at least that new."""
        with self._lock:
            version = self._versions.get(job_id)
            if version is None:
                version = self._versions[job_id] = next(self._numbers)
                if len(self._versions) > VERSIONS_KEPT:
                    self._versions.popitem(last=False)
            else:
                self._versions.move_to_end(job_id)
            return version

    def drain(self) -> tuple[set[int], set[int]]:
        """(changed, deleted) since the last drain; both empty afterwards."""
        with self._lock:
            changed, deleted = self._changed, self._deleted
            self._changed, self._deleted = set(), set()
        return changed - deleted, deleted
