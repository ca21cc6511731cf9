"""The master lock: one master, or one import, at a time on a DRQUEUE_ROOT.

A master holds an flock on ``tmp/master.lock`` for its whole life: a second master on the
same root would requeue the first one's running tasks and kill its controller as "left by
an earlier master".  ``drqueue store import`` takes the same lock while it writes the
store, so that it never writes under a running master and no master starts on a store half
imported.  The lock goes with the process, however it dies, so a crashed holder never
blocks the next one.
"""

from __future__ import annotations

import fcntl
import os
from typing import IO

from drqueue.config import Config
from drqueue.errors import DrQueueError


def take_master_lock(config: Config, *, refusal: str) -> IO[str]:
    """Take the root's master lock and write this process's pid in the lock file; return the
    open file, which holds the lock until it is closed.  If another process holds it:
    DrQueueError(*refusal*), its ``{root}`` and ``{pid}`` filled in (the holder's pid)."""
    path = config.tmp_dir / "master.lock"
    handle = open(path, "a+")  # noqa: SIM115 (the caller holds it: closing it unlocks)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise DrQueueError(refusal.format(root=config.root, pid=holder)) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
