"""Pixie, the open-source RenderMan renderer (``rndr``): RIB files.

Pixie renders one frame of a multi-frame RIB with ``-f``, so a block runs
frame by frame; a RIB per frame (``shot.####.rib``) is rendered as it is::

    rndr -f FRAME SCENE.rib   # each frame of the block
    rndr SHOT.0007.rib        # a RIB per frame

The RIB's ``Display`` decides the image files, so ``output`` only names the
files to check.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer, expand_hashes

_ERROR = re.compile(r"^(Error|Fatal|ERROR)\b")


class Pixie(Renderer):
    name = "pixie"
    description = "Pixie (rndr), RenderMan RIB files"
    executable = "rndr"
    needs_scene = True
    params = (
        Param(
            "output",
            "path",
            "",
            help="files each frame must produce, #### is the frame (checked only)",
        ),
    )

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob("pixie needs a RIB file")
        head = [self.executable]
        if "#" in ctx.scene:
            return [head + [expand_hashes(ctx.scene, frame)] for frame in ctx.block.frames]
        return [head + ["-f", str(frame), ctx.scene] for frame in ctx.block.frames]

    def parse_line(self, line: str) -> LineInfo | None:
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None
