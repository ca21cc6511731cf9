"""Thumbnails of rendered frames, made by the master with Pillow for the web UI.

``GET /api/v1/jobs/ID/thumbnail`` shows the first image output (PNG, JPEG or TIFF, by its
suffix) of a job's last finished task as a JPEG of at most :data:`THUMBNAIL_PX` pixels on its
long side, made once per file and kept in ``$DRQUEUE_ROOT/tmp/thumbnails`` (at most
:data:`CACHE_BYTES`, the oldest dropped first).  Pillow has no OpenEXR reader, so an EXR has no
thumbnail.

A render decides what it writes and which outputs it reports, so every file is treated as
hostile:

- **Only a path the task recorded as its output** is read, mapped to the master's OS
  (``path_map``), absolute.
- **No symlink a render could have made is followed.**  The path is walked one component at a
  time, each opened relative to the last with ``O_NOFOLLOW``; a symlinked directory is followed
  only if root or the master's own user owns it (a mount point an admin made), and the file
  itself must not be a symlink at all.  What the walk reaches must not be inside ``/proc``,
  ``/sys``, ``/dev``, ``/run`` or the master's private folders (``etc``, ``ipython``, ``db``,
  ``tmp`` under ``DRQUEUE_ROOT``).
- **Only a regular file** of 1 byte to :data:`MAX_INPUT_BYTES` is read (a FIFO, a device or
  ``/proc`` file is refused without a read), through one descriptor, into memory; Pillow never
  opens a path.
- **Only Pillow's PNG, JPEG and TIFF decoders** are tried, and the image's size is checked from
  its header before anything is decoded: more than :data:`MAX_PIXELS` pixels (a decompression
  bomb) is refused.  A JPEG is decoded at the smallest scale that still gives the thumbnail.
- **Decoding is bounded**: one image at a time (:data:`DECODERS`), in FastAPI's worker thread
  (Pillow releases the GIL while it decodes, so the event loop and the dispatcher go on); a
  request that waits more than :data:`DECODE_WAIT_SECONDS` for its turn gets 503.
- **Only the re-encoded thumbnail leaves the master**, never the file's bytes; a file that is
  not such an image is a 404 whose message quotes nothing of it.

Refusals are 403 (Forbidden), a missing file or one that is not a readable image 404.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from drqueue.config import Config
from drqueue.errors import DrQueueError, Forbidden, MasterBusy, NotFound
from drqueue.models import Task, TaskState

#: The long side of a thumbnail, in pixels.
THUMBNAIL_PX = 480
#: JPEG quality of a thumbnail.
THUMBNAIL_QUALITY = 85
#: The largest output file read, in bytes.
MAX_INPUT_BYTES = 64 << 20
#: The most pixels an image may have (8K UHD is 33 million); a larger one is not decoded.
MAX_PIXELS = 36_000_000
#: Pillow's decoders tried, and the output suffixes that name them.
FORMATS = ("PNG", "JPEG", "TIFF")
SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
#: The most bytes of thumbnails kept on disk.
CACHE_BYTES = 64 << 20
#: Images decoded at once, and how long a request waits for its turn.
DECODERS = 1
DECODE_WAIT_SECONDS = 10.0
#: Requests that may wait for a decoder; one more is answered 503 at once, so thumbnails never
#: hold more than DECODERS + DECODE_WAITERS of the API's worker threads (a storm of requests
#: for big images once held them all, and every other route waited behind it).
DECODE_WAITERS = 2
#: Files a thumbnail could not be made of, remembered (by path, inode, size and time) so that
#: asking again answers the same refusal without decoding again.
FAILURES_KEPT = 1000
#: Symlinks followed on the way to one file, at most (the kernel's own limit is 40).
MAX_SYMLINKS = 40
#: Where an output may never be read from, whatever the path says.
SYSTEM_TREES = ("/proc", "/sys", "/dev", "/run")

_decoding = threading.BoundedSemaphore(DECODERS)
_admitted = threading.BoundedSemaphore(DECODERS + DECODE_WAITERS)
_failures: dict[str, tuple[type[DrQueueError], str]] = {}
_failures_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Thumbnail:
    jpeg: bytes
    #: The HTTP ETag: the same file (path, inode, size and time) always has the same one.
    etag: str


def thumbnail_of(job_id: int, task: Task | None, config: Config) -> Thumbnail:
    """The thumbnail of *task*'s first image output (from the cache when it was made before)."""
    if task is None:
        raise NotFound(f"job {job_id} has no finished task yet: no thumbnail")
    if task.state != TaskState.FINISHED:
        raise NotFound(
            f"task {task.index} of job {job_id} is {task.state}: only a finished task's "
            "outputs have a thumbnail"
        )
    path = first_image(task.outputs, config)
    if path is None:
        raise NotFound(
            f"task {task.index} of job {job_id} reported no PNG, JPEG or TIFF output: no thumbnail"
        )
    fd = open_output(path, config)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Forbidden(f"output {path} is not a regular file: refused")
        if st.st_nlink != 1:  # a render's hard link to a file it may not read itself
            raise Forbidden(f"output {path} has {st.st_nlink} hard links: refused")
        if st.st_size == 0:
            raise NotFound(f"output {path} is empty: no thumbnail")
        if st.st_size > MAX_INPUT_BYTES:
            raise Forbidden(
                f"output {path} is {st.st_size} bytes, over the {MAX_INPUT_BYTES} a thumbnail "
                "is made from: refused"
            )
        identity = f"{path}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}"
        key = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        cached = read_cached(config, key)
        if cached is not None:
            return Thumbnail(cached, f'"{key}"')
        with _failures_lock:
            failed = _failures.get(key)
        if failed is not None:
            kind, message = failed
            raise kind(message)
        # Imported here: drqueue.master.api imports this module, so a module-level import
        # made thumbnails unimportable before the API (the notifier's mail imports it alone).
        from drqueue.master.api.files import read_at

        data = read_at(fd, 0, MAX_INPUT_BYTES)
    finally:
        os.close(fd)
    try:
        jpeg = make_thumbnail(data, path)
    except (Forbidden, NotFound) as exc:
        with _failures_lock:
            while len(_failures) >= FAILURES_KEPT:
                del _failures[next(iter(_failures))]
            _failures[key] = (type(exc), str(exc))
        raise
    write_cached(config, key, jpeg)
    return Thumbnail(jpeg, f'"{key}"')


def first_image(outputs: list[str], config: Config) -> str | None:
    """The first of *outputs* Pillow may read here (by suffix), as the master sees its path."""
    for output in outputs:
        if Path(output).suffix.lower() in SUFFIXES:
            if config.path_map:
                from drqueue.pathmap import map_path
                from drqueue.slave.runner import host_os

                return map_path(output, config.path_map, host_os())
            return output
    return None


def _trusted_link_owners() -> frozenset[int]:
    return frozenset({0, os.geteuid()})


def open_output(path: str, config: Config) -> int:
    """A read-only descriptor of the output file *path*, reached as the module docstring says
    (Forbidden for a refused path, NotFound for a missing one)."""
    if not path.startswith("/") or "\0" in path:
        raise Forbidden(f"output {path!r} is not an absolute path: refused")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts:
        raise Forbidden(f"output {path!r} names no file: refused")
    trusted = _trusted_link_owners()
    directory = os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY
    fd = os.open("/", directory)
    reached: list[str] = []
    links = 0
    try:
        while True:
            part = parts.pop(0)
            if part == "..":
                if not parts:
                    raise Forbidden(f"output {path} names a folder: refused")
                above = os.open("..", directory, dir_fd=fd)
                os.close(fd)
                fd = above
                if reached:
                    reached.pop()
                continue
            st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                if not parts:
                    raise Forbidden(f"output {path} is a symlink: refused")
                links += 1
                if st.st_uid not in trusted or links > MAX_SYMLINKS:
                    raise Forbidden(
                        f"output {path} is reached through a symlink a render may have made "
                        f"(/{'/'.join([*reached, part])}): refused"
                    )
                target = os.readlink(part, dir_fd=fd)
                if target.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", directory)
                    reached = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            if not parts:
                break
            below = os.open(part, directory | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = below
            reached.append(part)
        real = "/" + "/".join([*reached, part])
        if any(inside(real, tree) for tree in refused_trees(config)):
            raise Forbidden(f"output {path} is inside a folder no output is read from: refused")
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
        return os.open(part, flags, dir_fd=fd)
    except FileNotFoundError:
        raise NotFound(f"output {path} is gone: no thumbnail") from None
    except OSError as exc:
        raise Forbidden(
            f"output {path} cannot be opened safely ({exc.strerror or exc}): refused"
        ) from None
    finally:
        os.close(fd)


def refused_trees(config: Config) -> list[str]:
    private = (config.etc_dir, config.profile_dir, config.db_dir, config.tmp_dir)
    return [*SYSTEM_TREES, *(os.path.realpath(folder) for folder in private)]


def inside(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def make_thumbnail(data: bytes, path: str) -> bytes:
    """A JPEG thumbnail of the image in *data* (refused or NotFound as the docstring says)."""
    from PIL import Image, UnidentifiedImageError

    busy = MasterBusy("the master is busy making other thumbnails: ask again in a moment")
    if not _admitted.acquire(blocking=False):
        raise busy
    if not _decoding.acquire(timeout=DECODE_WAIT_SECONDS):
        _admitted.release()
        raise busy
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            width, height = image.size
            if width < 1 or height < 1 or width * height > MAX_PIXELS:
                raise Forbidden(
                    f"output {path} is {width}x{height} pixels, over the {MAX_PIXELS} a "
                    "thumbnail is made from: refused"
                )
            image.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))  # a JPEG decodes at 1/2 … 1/8
            small = as_rgb(image)
            small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), reducing_gap=2.0)
            out = io.BytesIO()
            small.save(out, "JPEG", quality=THUMBNAIL_QUALITY)
            return out.getvalue()
    except Image.DecompressionBombError:
        raise Forbidden(f"output {path} is too large an image: refused") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise NotFound(f"output {path} is not a readable PNG, JPEG or TIFF image") from None
    finally:
        _decoding.release()
        _admitted.release()


def as_rgb(image: object) -> object:
    """*image* (a Pillow image of any mode) as 8-bit RGB; transparency shows on dark grey, and
    16-bit and float frames are scaled to 8 bits."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16"):
        image, mode = image.convert("I"), "I"
    if mode == "I":
        return image.point(lambda value: value * (1 / 256)).convert("L").convert("RGB")
    if mode == "F":
        return image.point(lambda value: value * 255).convert("L").convert("RGB")
    if "A" in mode or "transparency" in image.info:
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGB", rgba.size, (32, 32, 32))
        backdrop.paste(rgba, mask=rgba.getchannel("A"))
        return backdrop
    return image.convert("RGB")


# -- the cache --------------------------------------------------------------------------------


def cache_dir(config: Config) -> Path:
    return config.tmp_dir / "thumbnails"


def read_cached(config: Config, key: str) -> bytes | None:
    try:
        return (cache_dir(config) / f"{key}.jpg").read_bytes()
    except OSError:
        return None


def write_cached(config: Config, key: str, jpeg: bytes) -> None:
    """Keep *jpeg* (written whole, then renamed), then drop the oldest beyond CACHE_BYTES."""
    folder = cache_dir(config)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{key}.{threading.get_ident()}.part"
        partial.write_bytes(jpeg)
        os.replace(partial, folder / f"{key}.jpg")
        files = []
        for entry in os.scandir(folder):
            if entry.name.endswith(".jpg") and entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                files.append((st.st_mtime_ns, st.st_size, entry.path))
        total = sum(size for _, size, _ in files)
        for _, size, name in sorted(files):
            if total <= CACHE_BYTES:
                break
            Path(name).unlink(missing_ok=True)
            total -= size
    except OSError:
        pass  # a cache that cannot be written is only slower
