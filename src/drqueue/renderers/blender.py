"""Blender: one background process renders the whole block, by step.

The command, in the order Blender needs (it applies arguments left to right,
so the scene is loaded first and everything after it overrides the file)::

    blender -b SCENE [-S NAME] [-E ENGINE] [-t THREADS] [-o OUTPUT] -F FORMAT
            -s START -e END -j STEP -a [-- --cycles-device DEVICE]

What Blender 3.4 really does, which this module follows:

* ``-o`` replaces the *last* run of ``#`` in the file name with the frame,
  zero-padded to the run's length (``shot_##_v###`` -> ``shot_##_v007``);
  without ``#`` it appends four digits.  Negative frames keep their sign
  before the padding (``f_-0001``).  The format's extension is appended unless
  the name already ends with one Blender accepts for it (``.jpg``/``.jpeg``,
  ``.tif``/``.tiff``, case-insensitive).  ``//`` is the blend file's folder.
* ``-s`` and ``-e`` read a leading ``-`` as "relative to the scene's range", so
  a negative frame is passed as ``" -5"``: a leading space makes it absolute.
* An unknown ``-F`` format only prints an error and renders in the scene's
  format with exit code 0, so the format is checked here against the list.
* A missing or unreadable scene exits 1 (``Error: Cannot read file '…'``); an
  unknown ``-S`` scene prints ``Can't find scene: …`` and renders the active
  scene with exit code 0, so that line is a fatal error: it fails the task.
* Cycles and EEVEE print ``Fra:N …`` status lines before each ``Saved: '…'``;
  Workbench prints none, only ``Saved:``.  So a saved file's frame is the one
  whose expected output has that name, else the last ``Fra:``, else the next
  frame of the block not yet saved (Blender renders a block in order).
"""

from __future__ import annotations

import os
import re

from drqueue.errors import InvalidJob
from drqueue.failures import FailureRule
from drqueue.models import pad_frame
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer

#: The image formats ``-F`` accepts, each with the extensions Blender takes as
#: already present (the first is the one it appends).  Movie formats are left
#: out: a block of frames must produce one file per frame.
FORMATS: dict[str, tuple[str, ...]] = {
    "PNG": (".png",),
    "JPEG": (".jpg", ".jpeg"),
    "OPEN_EXR": (".exr",),
    "OPEN_EXR_MULTILAYER": (".exr",),
    "TIFF": (".tif", ".tiff"),
    "TGA": (".tga",),
    "RAWTGA": (".tga",),
    "BMP": (".bmp",),
    "HDR": (".hdr",),
    "DPX": (".dpx",),
    "CINEON": (".cin",),
    "JP2": (".jp2",),
    "WEBP": (".webp",),
    "IRIS": (".rgb",),
}

#: Render engines; "" keeps the scene's.  EEVEE is BLENDER_EEVEE_NEXT in 4.2-4.4.
ENGINES = ("", "CYCLES", "BLENDER_EEVEE", "BLENDER_EEVEE_NEXT", "BLENDER_WORKBENCH")

#: Cycles devices for ``-- --cycles-device``; "" keeps the preferences'.
CYCLES_DEVICES = ("", "CPU", "CUDA", "OPTIX", "HIP", "ONEAPI", "METAL")

_FRA = re.compile(r"^Fra:(-?\d+)\s")
# Cycles 2.8x-2.9x: "Rendered 3/16 Tiles, Sample 10/16" counts finished tiles.
_TILES_DONE = re.compile(r"Rendered (\d+)/(\d+) Tiles")
# Cycles 3.x-4.x tiled renders: "Tile 2/4, Sample 8/16" names the tile in progress.
_TILE = re.compile(r"\bTile (\d+)/(\d+)")
_SAMPLE = re.compile(r"\bSample (\d+)/(\d+)")
# EEVEE: "Rendering 26 / 64 samples".
_EEVEE = re.compile(r"\bRendering (\d+) / (\d+) samples")
_SAVED = re.compile(r"^Saved: '(.*)'")

#: What a missing file prints (the check below), and the exit status it ends Blender with.
MISSING_FILE_LINE = "drqueue: missing file: "
MISSING_FILE_EXIT = 3
#: Run by ``--python-expr`` once the scene is loaded and before it renders (``missing_files``
#: "fail"): Blender 3.4 renders a missing image texture pink with exit code 0 and not a word
#: in its output (measured), so every frame would "finish" wrong.  It lists the images and
#: linked libraries whose file is missing (packed and generated images have none) and exits 3,
#: so the task fails in seconds, with the path.
MISSING_FILES_CHECK = f"""\
import os, sys, bpy
def _missing(path, library=None):
    full = bpy.path.abspath(path, library=library)
    return full if path and not os.path.exists(full) else None
found = [_missing(i.filepath, i.library) for i in bpy.data.images
         if i.source == 'FILE' and i.packed_file is None]
found += [_missing(lib.filepath) for lib in bpy.data.libraries if lib.packed_file is None]
for path in sorted({{p for p in found if p}}):
    print({MISSING_FILE_LINE!r} + path, flush=True)
if any(found):
    sys.exit({MISSING_FILE_EXIT})
"""


class Blender(Renderer):
    name = "blender"
    description = "Blender (Cycles, EEVEE, Workbench), one process per block"
    executable = "blender"
    needs_scene = True
    params = (
        Param(
            "output",
            "path",
            "",
            help="output pattern, #### is the frame (e.g. /r/shot/f_####); '' keeps the scene's",
        ),
        Param("format", "str", "PNG", help="image format (-F)", choices=tuple(FORMATS)),
        Param(
            "engine", "str", "", help="render engine (-E); '' keeps the scene's", choices=ENGINES
        ),
        Param(
            "scene_name",
            "str",
            "",
            help="scene inside the .blend to render (-S); '' for the active one",
        ),
        Param(
            "threads",
            "int",
            0,
            minimum=0,
            maximum=1024,
            help="render threads (-t); 0 for one per core",
        ),
        Param(
            "cycles_device",
            "str",
            "",
            help="Cycles device; '' keeps the preferences'",
            choices=CYCLES_DEVICES,
        ),
        Param(
            "missing_files",
            "str",
            "fail",
            help="a missing texture or library: 'fail' the task before it renders, or 'ignore'",
            choices=("fail", "ignore"),
        ),
    )
    #: A missing file (the check's line, or Blender's own for a scene or library it cannot
    #: read) is a missing asset, with its path.
    failure_patterns = (
        FailureRule.of(re.escape(MISSING_FILE_LINE) + r"(?P<path>.+)", "missing-asset"),
        FailureRule.of(r"^Error: Cannot read file '(?P<path>[^']+)'", "missing-asset"),
        FailureRule.of(r"^Warning: Unable to open '?(?P<path>[^']+)", "missing-asset"),
    )

    def __init__(self) -> None:
        self._frame: int | None = None
        # Set by commands(): the block's frames and each expected file's frame, to name the
        # frame of a "Saved:" line when the engine prints no "Fra:" lines (Workbench).
        self._frames: list[int] = []
        self._frame_of_file: dict[str, int] = {}
        self._saved: set[int] = set()

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        p = ctx.params
        block = ctx.block
        if not ctx.scene:
            raise InvalidJob("blender needs a scene file")
        argv = [self.executable, "-b", ctx.scene]
        if p.get("missing_files", "fail") == "fail":
            argv += ["--python-expr", MISSING_FILES_CHECK]
        if p.get("scene_name"):
            argv += ["-S", p["scene_name"]]
        if p.get("engine"):
            argv += ["-E", p["engine"]]
        if p.get("threads"):
            argv += ["-t", str(p["threads"])]
        if p.get("output"):
            argv += ["-o", p["output"]]
        argv += ["-F", p.get("format") or "PNG"]
        argv += [
            "-s",
            _absolute(block.start),
            "-e",
            _absolute(block.end),
            "-j",
            str(block.step),
            "-a",
        ]
        if p.get("cycles_device"):
            argv += ["--", "--cycles-device", p["cycles_device"]]
        self._frames = list(block.frames)
        self._frame_of_file = dict(zip(self.outputs(ctx), self._frames, strict=False))
        return [argv]

    def outputs(self, ctx: RenderContext) -> list[str]:
        pattern = ctx.params.get("output")
        if not pattern:
            return []  # the scene's own output path decides
        if pattern.startswith("//"):
            pattern = os.path.join(os.path.dirname(ctx.scene or ""), pattern[2:])
        extensions = FORMATS[ctx.params.get("format") or "PNG"]
        return [blender_frame_path(pattern, frame, extensions) for frame in ctx.block.frames]

    def parse_line(self, line: str) -> LineInfo | None:
        fra = _FRA.match(line)
        if fra:
            self._frame = int(fra.group(1))
            return LineInfo(frame=self._frame, frame_fraction=_fraction(line))
        saved = _SAVED.match(line)
        if saved:
            path = saved.group(1)
            frame = self._frame_of_file.get(path, self._frame)
            if frame is None:
                frame = next((f for f in self._frames if f not in self._saved), None)
            if frame is not None:
                self._saved.add(frame)
            return LineInfo(saved=path, frame_done=frame)
        if line.startswith("Error: ") and not line.startswith("Error: Not freed memory blocks"):
            return LineInfo(error=line.strip())
        if line.startswith("Can't find scene:"):
            return LineInfo(error=line.strip(), fatal=True)  # it renders another scene, exit 0
        if line.startswith("Warning: Unable to open"):
            return LineInfo(error=line.strip())
        if line.startswith(MISSING_FILE_LINE):
            return LineInfo(error=line.strip(), fatal=True)
        return None


def blender_frame_path(pattern: str, frame: int, extensions: tuple[str, ...] = (".png",)) -> str:
    """The file Blender writes for *frame* with ``-o pattern``, as Blender names it."""
    cut = max(pattern.rfind("/"), pattern.rfind("\\")) + 1
    folder, name = pattern[:cut], pattern[cut:]
    last = name.rfind("#")
    if last < 0:
        name += pad_frame(frame, 4)
    else:
        first = last
        while first > 0 and name[first - 1] == "#":
            first -= 1
        name = name[:first] + pad_frame(frame, last + 1 - first) + name[last + 1 :]
    if not name.lower().endswith(extensions):
        name += extensions[0]
    return folder + name


def _absolute(frame: int) -> str:
    # Blender parses "-5" as "5 before the scene's end"; strtol skips the space.
    return f" {frame}" if frame < 0 else str(frame)


def _fraction(line: str) -> float | None:
    done = _TILES_DONE.search(line)
    if done:
        return _ratio(done)
    eevee = _EEVEE.search(line)
    if eevee:
        return _ratio(eevee)
    sample = _SAMPLE.search(line)
    if sample is None:
        return 1.0 if line.rstrip().endswith("| Finished") else None
    fraction = _ratio(sample)
    tile = _TILE.search(line)
    if tile and int(tile.group(2)) > 0:
        fraction = (int(tile.group(1)) - 1 + fraction) / int(tile.group(2))
    return fraction


def _ratio(match: re.Match[str]) -> float:
    done, total = int(match.group(1)), int(match.group(2))
    return max(0.0, min(1.0, done / total)) if total else 0.0
