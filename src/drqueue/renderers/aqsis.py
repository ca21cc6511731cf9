"""Aqsis, the open-source RenderMan renderer: RIB files.

A RIB holding every frame renders a block with ``-frames``; a RIB per frame
(``shot.####.rib``) renders frame by frame::

    aqsis -progress -frames START END SCENE.rib   # step 1
    aqsis -progress -frames F F SCENE.rib         # each frame, step > 1
    aqsis -progress SHOT.0007.rib                 # a RIB per frame

``-progress`` prints ``Frame (7) 45.20% complete [ 3 secs / 4 left ]``.  The
RIB's ``Display`` decides the image files, so ``output`` only names the files
to check.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer, expand_hashes

_PROGRESS = re.compile(r"Frame \((-?\d+)\)\s+([\d.]+)% complete")
_ERROR = re.compile(r"^ERROR\b|\bERROR:")


class Aqsis(Renderer):
    name = "aqsis"
    description = "Aqsis, RenderMan RIB files"
    executable = "aqsis"
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
            raise InvalidJob("aqsis needs a RIB file")
        head = [self.executable, "-progress"]
        block = ctx.block
        if "#" in ctx.scene:
            return [head + [expand_hashes(ctx.scene, frame)] for frame in block.frames]
        if block.step == 1:
            return [head + ["-frames", str(block.start), str(block.end), ctx.scene]]
        return [head + ["-frames", str(frame), str(frame), ctx.scene] for frame in block.frames]

    def parse_line(self, line: str) -> LineInfo | None:
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        progress = _PROGRESS.search(line)
        if progress:
            return LineInfo(
                frame=int(progress.group(1)),
                frame_fraction=min(1.0, float(progress.group(2)) / 100),
            )
        return None
