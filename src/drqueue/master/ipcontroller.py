"""The ipyparallel controller as the master runs it: ipyparallel's own, with bounded memory.

ipyparallel's Hub remembers the msg_id of every task that ever completed (``all_completed``,
and a list per engine in ``completed``) and never forgets one, even with ``--nodb``: the
controller grows with every task dispatched, for as long as it runs (measured in
docs/performance.md, "Memory").  It also keeps the records of every engine that ever
registered (its id, its queue, its task list and its completed msg_ids) after the engine is
gone, so it grows with every engine restarted too.  DrQueue never asks the Hub about an old
msg_id (its store is the record of every task), so this controller keeps only the newest
:data:`COMPLETED_KEPT`, and forgets a gone engine: its completed msg_ids when it unregisters,
the rest once the Hub has failed the tasks it was running (``registration_timeout`` later).

Run it as ``python -m drqueue.master.ipcontroller`` with ``ipyparallel.controller``'s arguments
(:class:`drqueue.master.controller.Controller` does).
"""

from __future__ import annotations

import collections
from typing import Any

#: Completed msg_ids the Hub remembers overall.
COMPLETED_KEPT = 10_000
#: ... and per engine, at most: a list per engine of up to 2 x 10,000 ids was about 2 MB an
#: engine, 250 MB for 128 engines (hostile review, issue 14).  Only their lengths are read
#: (``queue_status``'s counts), never by DrQueue.
COMPLETED_KEPT_PER_ENGINE = 100


class RecentSet(set):
    """A set that keeps only the newest *size* members added (the oldest go first)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.order: collections.deque = collections.deque()

    def add(self, item: Any) -> None:
        if item in self:
            return
        super().add(item)
        self.order.append(item)
        if len(self.order) > self.size:
            self.discard(self.order.popleft())


class RecentList(list):
    """A list that keeps about the newest *size* items appended (trimmed to *size* at 2 x size)."""

    def __init__(self, size: int, items: Any = ()):
        super().__init__(items)
        self.size = size

    def append(self, item: Any) -> None:
        super().append(item)
        if len(self) > 2 * self.size:
            del self[: -self.size]


class RecentLists(dict):
    """engine id -> a RecentList, however the Hub stores a new engine's list."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, list) and not isinstance(value, RecentList):
            value = RecentList(self.size, value)
        super().__setitem__(key, value)


def bound_hub_memory(size: int = COMPLETED_KEPT) -> None:
    """Make every Hub made from now on keep only the newest *size* completed msg_ids, and
    forget the engines that are gone."""
    from ipyparallel.controller import hub

    if getattr(hub.Hub, "_drqueue_bounded", False):
        return
    original_init = hub.Hub.__init__
    original_unregister = hub.Hub.unregister_engine
    # Private: the Hub's one place where a gone engine's tasks are failed, after its
    # registration_timeout; its queue is read there, so the records go after it.
    original_stranded = hub.Hub._handle_stranded_msgs

    def __init__(self, **kwargs: Any) -> None:
        original_init(self, **kwargs)
        # Both are empty here, so the traits take these objects as they are.
        self.all_completed = RecentSet(size)
        self.completed = RecentLists(min(size, COMPLETED_KEPT_PER_ENGINE))

    def unregister_engine(self, ident: Any, msg: Any) -> None:
        original_unregister(self, ident, msg)
        engine_id = _unregistered_id(msg)
        if engine_id in self.completed and engine_id not in self.engines:
            # Nothing adds to it now: a late reply of a gone engine is not counted.
            self.completed[engine_id] = []

    def _handle_stranded_msgs(self, eid: int, uuid: str) -> None:
        original_stranded(self, eid, uuid)
        if eid not in self.engines:
            self.ids.discard(eid)
            for records in (self.queues, self.tasks, self.completed):
                records.pop(eid, None)

    hub.Hub.__init__ = __init__
    hub.Hub.unregister_engine = unregister_engine
    hub.Hub._handle_stranded_msgs = _handle_stranded_msgs
    hub.Hub._drqueue_bounded = True


def _unregistered_id(msg: Any) -> Any:
    """The engine id of an unregistration request (None if it has none; the Hub logs that)."""
    try:
        return msg["content"]["id"]
    except (KeyError, TypeError):
        return None


def main() -> None:
    """ipyparallel's controller; ``--completed-kept=N`` (ours, taken out of argv) sets the bound."""
    import sys

    size = COMPLETED_KEPT
    for arg in list(sys.argv[1:]):
        if arg.startswith("--completed-kept="):
            size = max(1, int(arg.split("=", 1)[1]))
            sys.argv.remove(arg)
    bound_hub_memory(size)
    from ipyparallel.controller.app import main as controller_main

    controller_main()


if __name__ == "__main__":
    main()
