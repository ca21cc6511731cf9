"""3Delight's RIB renderer, ``renderdl``.

A RIB holding every frame (``FrameBegin n``) renders a block with ``-frames``;
a RIB per frame (``shot.####.rib``) renders frame by frame::

    renderdl -progress [-t THREADS] -frames START END SCENE.rib   # step 1
    renderdl -progress [-t THREADS] -frames F F SCENE.rib         # each frame, step > 1
    renderdl -progress [-t THREADS] SHOT.0007.rib                 # a RIB per frame

The RIB's ``Display`` decides the image files, so ``output`` only names the
files to check.  Messages look like ``3DL ERROR R2050: cannot open file``.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer, expand_hashes

_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_ERROR = re.compile(r"\b3DL (ERROR|SEVERE)\b")


class Delight(Renderer):
    name = "3delight"
    description = "3Delight (renderdl), RenderMan RIB files"
    executable = "renderdl"
    needs_scene = True
    params = (
        Param(
            "threads",
            "int",
            0,
            minimum=0,
            maximum=1024,
            help="render threads (-t); 0 for one per core",
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
            raise InvalidJob("3delight needs a RIB file")
        head = [self.executable, "-progress"]
        if ctx.params.get("threads"):
            head += ["-t", str(ctx.params["threads"])]
        block = ctx.block
        if "#" in ctx.scene:
            return [head + [expand_hashes(ctx.scene, frame)] for frame in block.frames]
        if block.step == 1:
            return [head + ["-frames", str(block.start), str(block.end), ctx.scene]]
        return [head + ["-frames", str(frame), str(frame), ctx.scene] for frame in block.frames]

    def parse_line(self, line: str) -> LineInfo | None:
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        percent = _PERCENT.search(line)
        if percent:
            return LineInfo(frame_fraction=min(1.0, float(percent.group(1)) / 100))
        return None
