"""The master's controller (``drqueue.master.ipcontroller``) with ``tracemalloc`` on in its hub.

    python bench/_traced_controller.py [ipyparallel.controller's arguments]

For ``bench/memory.py --tracemalloc DIR``: the hub traces its Python allocations (4 frames) and,
on each SIGUSR1, writes a snapshot to ``$DRQUEUE_HUB_SNAPSHOTS/<n>.snap`` (``n`` counting from
0; written to a temporary name first, so a file that exists is whole).  Tracing makes the hub
slower and bigger: read the snapshots' differences, not this run's RSS.
"""

from __future__ import annotations

import itertools
import os
import signal
import tracemalloc
from pathlib import Path
from typing import Any


def main() -> None:
    folder = Path(os.environ["DRQUEUE_HUB_SNAPSHOTS"])
    counter = itertools.count()
    tracemalloc.start(4)

    def write_snapshot(_signum: int, _frame: Any) -> None:
        # In the main thread, between the hub's callbacks (Python runs signal handlers there).
        path = folder / f"{next(counter)}.snap"
        tracemalloc.take_snapshot().dump(str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)

    signal.signal(signal.SIGUSR1, write_snapshot)
    from drqueue.master.ipcontroller import main as controller_main

    controller_main()


if __name__ == "__main__":
    main()
