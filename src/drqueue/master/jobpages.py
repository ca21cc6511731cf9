"""The encoded answers of ``GET /api/v1/jobs``, made once per change of the store for every
client that polls the same list.

Listing 10,000 jobs costs the master about 0.2 s of CPU (reading the rows, building each job's
JSON, encoding 5 MB), and every CLI, GUI and script that polls the list pays it again, although
the answer is the same until something is written.  :class:`JobPages` keeps the last few
answers, each with what it was made from: the store's *data version*
(:meth:`Store.data_version`, which changes with every committed write, whoever wrote it) and
the online slots (a job's ETA counts them, and they change without a write).  An answer is
given again only while both are the same, so it is never older than the store; a store that
cannot tell its version (``None``: MongoDB, the memory store) gets no cache.  Clients that ask
at once for an answer not kept wait for one build.  At most :data:`PAGES_KEPT` answers are
kept, the least recently asked going first, and none over :data:`MAX_KEPT_BYTES`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

#: Answers kept (one per distinct query: the CLI's default page, the GUI's whole list...).
PAGES_KEPT = 16
#: An answer larger than this is given but not kept (10,000 jobs are about 6 MB).
MAX_KEPT_BYTES = 32 << 20


@dataclass(frozen=True, slots=True)
class EncodedPage:
    """One answer of GET /jobs: its JSON and how many jobs matched (X-Total-Count)."""

    body: bytes
    total: int


class JobPages:
    """The kept answers (see the module docstring); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pages: OrderedDict[Hashable, tuple[Hashable, EncodedPage]] = OrderedDict()
        self._builders: dict[Hashable, threading.Lock] = {}
        #: Answers built (the rest were given again).
        self.builds = 0

    def get(
        self, query: Hashable, version: Hashable | None, build: Callable[[], EncodedPage]
    ) -> EncodedPage:
        """The answer to *query* made at *version* (read it *before* the store is read):
        kept, or ``build()`` (once for all who ask at the same time).  *version* None: always
        built, never kept."""
        if version is None:
            return self._built(build)
        with self._lock:
            kept = self._kept(query, version)
            if kept is not None:
                return kept
            builder = self._builders.setdefault(query, threading.Lock())
        with builder:
            with self._lock:
                kept = self._kept(query, version)
                if kept is not None:
                    return kept
            page = self._built(build)
            with self._lock:
                if len(page.body) <= MAX_KEPT_BYTES:
                    self._pages[query] = (version, page)
                    self._pages.move_to_end(query)
                    while len(self._pages) > PAGES_KEPT:
                        self._pages.popitem(last=False)
                if self._builders.get(query) is builder:
                    del self._builders[query]
            return page

    def _built(self, build: Callable[[], EncodedPage]) -> EncodedPage:
        page = build()
        with self._lock:
            self.builds += 1
        return page

    def _kept(self, query: Hashable, version: Hashable) -> EncodedPage | None:
        entry = self._pages.get(query)
        if entry is None or entry[0] != version:
            return None
        self._pages.move_to_end(query)
        return entry[1]
