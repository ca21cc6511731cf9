"""The master's controller (``drqueue.master.ipcontroller``) with its hub's heap on call.

    DRQUEUE_HUB_PROBES=DIR [DRQUEUE_HUB_TRACE=1] python bench/_traced_controller.py [arguments]

For ``bench/memory.py --heap`` and ``--tracemalloc DIR``: on each SIGUSR1 the hub collects its
garbage and writes ``DIR/<n>.json`` (``n`` counting from 0) with ``blocks``, the objects
CPython's allocator holds for it (``sys.getallocatedblocks()``: a count, free of the
allocator's arenas that RSS also counts, and costing nothing between probes).  With
``DRQUEUE_HUB_TRACE=1`` it also traces its Python allocations (``tracemalloc``, 4 frames) and
writes ``DIR/<n>.snap`` first, a snapshot; tracing makes the hub slower and bigger, so read the
snapshots' differences, not that run's RSS.  Each file is written under a temporary name
first, so a file that exists is whole.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any


def main() -> None:
    folder = Path(os.environ["DRQUEUE_HUB_PROBES"])
    trace = os.environ.get("DRQUEUE_HUB_TRACE") == "1"
    counter = itertools.count()
    if trace:
        tracemalloc.start(4)

    def probe(_signum: int, _frame: Any) -> None:
        # In the main thread, between the hub's callbacks (Python runs signal handlers there).
        n = next(counter)
        gc.collect()
        if trace:
            snap = folder / f"{n}.snap"
            tracemalloc.take_snapshot().dump(f"{snap}.tmp")
            os.replace(f"{snap}.tmp", snap)
        facts = folder / f"{n}.json"
        facts.with_suffix(".tmp").write_text(json.dumps({"blocks": sys.getallocatedblocks()}))
        os.replace(facts.with_suffix(".tmp"), facts)

    signal.signal(signal.SIGUSR1, probe)
    from drqueue.master.ipcontroller import main as controller_main

    controller_main()


if __name__ == "__main__":
    main()
