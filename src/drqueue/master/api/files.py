"""Files on the master, read for a client: task logs and the engine connection file.

Renders write the logs, so every read here opens the file without following a symlink and
checks what it opened (:func:`open_inside`); nothing is read past :data:`LOG_CHUNK_BYTES` per
answer.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from drqueue.errors import Forbidden, NotFound

#: The most bytes one answer reads from a file on the master (a log chunk, the engine file).
LOG_CHUNK_BYTES = 1 << 20


def open_inside(root: Path, path: Path, what: str) -> int:
    """A read-only descriptor of the regular file *path* inside the directory *root*.

    Renders write the logs, so a log may have been swapped for a symlink (to etc/token), a
    FIFO (which would block its reader), a device or a hard link to a file elsewhere.  So each
    component below *root* is opened with O_NOFOLLOW relative to its parent (a symlinked
    directory is refused as well as a symlinked file, and no check-then-open race remains),
    the file with O_NONBLOCK, and the descriptor (never the path) must be a regular file with
    one link.  *root* itself is the admin's and may be a symlink.  Raises NotFound for a
    missing file and Forbidden for any other.
    """
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = ()
    if not parts or any(part in ("..", ".") for part in parts):
        raise Forbidden(f"{what} ({path}) is not inside {root}: refused")
    try:
        fd = open_under(root, parts)
    except FileNotFoundError:
        raise NotFound(f"{what} ({path}) is gone") from None
    except OSError as exc:
        raise Forbidden(
            f"{what} ({path}) is refused: a symlink or unreadable path "
            f"({exc.strerror or exc}); only regular files inside {root} are served"
        ) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        kind = "a hard link" if stat.S_ISREG(st.st_mode) else "not a regular file"
        raise Forbidden(f"{what} ({path}) is refused: it is {kind}")
    return fd


def open_under(root: Path, parts: Sequence[str]) -> int:
    """A read-only descriptor of root/parts[0]/…/parts[-1], each component opened relative to
    the one before with O_NOFOLLOW (a symlink anywhere below *root* is an OSError, and no
    check-then-open race remains), the last with O_NONBLOCK (a FIFO never blocks its reader).
    The caller checks what it got (os.fstat)."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    dir_fd = os.open(root, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            below = os.open(part, flags | os.O_DIRECTORY, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = below
        return os.open(parts[-1], flags | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def read_at(fd: int, offset: int, length: int) -> bytes:
    """Up to *length* bytes of *fd* from *offset* (fewer at the end of the file)."""
    chunks: list[bytes] = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(chunks)
