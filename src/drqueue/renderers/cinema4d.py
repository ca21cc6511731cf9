"""Maxon Cinema 4D's command-line renderer (``Commandline``): one process per block.

    Commandline -render SCENE.c4d -frame START END STEP [-take NAME]
                [-oimage BASE] [-oformat FORMAT] [-threads N]

``-frame`` takes the step itself.  Cinema 4D appends the frame number and the
extension to ``-oimage`` following the scene's "Name" setting (``Name0000.tif``
by default), so ``output`` only names the files to check.  Output looks like
``Rendering frame 12 at <date>`` and ``Progress: 45%``.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer

#: Image formats ``-oformat`` accepts.
FORMATS = (
    "",
    "TIFF",
    "TGA",
    "BMP",
    "IFF",
    "JPG",
    "PICT",
    "PSD",
    "PSB",
    "RLA",
    "RPF",
    "B3D",
    "HDR",
    "EXR",
    "PNG",
    "DPX",
)

_FRAME = re.compile(r"Rendering frame (-?\d+)")
_PERCENT = re.compile(r"Progress: (\d{1,3})%")
_ERROR = re.compile(r"Files cannot be written|Error rendering project|^Error\b")


class Cinema4D(Renderer):
    name = "cinema4d"
    description = "Maxon Cinema 4D (Commandline)"
    executable = "Commandline"
    needs_scene = True
    params = (
        Param("take", "str", "", help="take to render (-take); '' for the current one"),
        Param(
            "image_base", "path", "", help="image path without frame number or extension (-oimage)"
        ),
        Param(
            "image_format",
            "str",
            "",
            help="image format (-oformat); '' keeps the scene's",
            choices=FORMATS,
        ),
        Param(
            "threads",
            "int",
            0,
            minimum=0,
            maximum=1024,
            help="render threads (-threads); 0 for one per core",
        ),
        Param(
            "output",
            "path",
            "",
            help="files each frame must produce, #### is the frame (checked only)",
        ),
    )

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob("cinema4d needs a scene file (.c4d)")
        p = ctx.params
        block = ctx.block
        argv = [
            self.executable,
            "-render",
            ctx.scene,
            "-frame",
            str(block.start),
            str(block.end),
            str(block.step),
        ]
        if p.get("take"):
            argv += ["-take", p["take"]]
        if p.get("image_base"):
            argv += ["-oimage", p["image_base"]]
        if p.get("image_format"):
            argv += ["-oformat", p["image_format"]]
        if p.get("threads"):
            argv += ["-threads", str(p["threads"])]
        return [argv]

    def parse_line(self, line: str) -> LineInfo | None:
        frame = _FRAME.search(line)
        if frame:
            return LineInfo(frame=int(frame.group(1)), frame_fraction=0.0)
        percent = _PERCENT.search(line)
        if percent:
            return LineInfo(frame_fraction=min(1.0, int(percent.group(1)) / 100))
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None
