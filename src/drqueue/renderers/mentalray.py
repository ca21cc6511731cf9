"""mental ray Standalone (``ray``): .mi scene files.

One .mi file holding every frame renders a block with ``-render``; a file per
frame (``shot.####.mi``) renders frame by frame::

    ray -verbose 5 [-threads N] -render START END SCENE.mi     # step 1
    ray -verbose 5 [-threads N] -render FRAME FRAME SCENE.mi   # each frame, step > 1
    ray -verbose 5 [-threads N] SHOT.0007.mi                   # a file per frame

``-render`` counts the frames (render statements) of the .mi file from 1, so
export the scene with its first frame numbered 1.  Verbosity 5 prints the
``progr:`` lines read for progress; messages look like
``JOB  0.3  progr:  45.2% rendered on host`` and
``PHEN 0.0  error 051011: shader "x" not found``.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer, expand_hashes

_PROGRESS = re.compile(r"progr:\s+([\d.]+)% rendered")
_FRAME = re.compile(r"begin scene preprocessing for frame (-?\d+)")
_ERROR = re.compile(r"\b(error|fatal)\s+\d+:")


class MentalRay(Renderer):
    name = "mentalray"
    description = "mental ray Standalone (ray), .mi files"
    executable = "ray"
    needs_scene = True
    params = (
        Param(
            "threads",
            "int",
            0,
            minimum=0,
            maximum=1024,
            help="render threads (-threads); 0 for mental ray's default",
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
            raise InvalidJob("mentalray needs a scene file")
        head = [self.executable, "-verbose", "5"]
        if ctx.params.get("threads"):
            head += ["-threads", str(ctx.params["threads"])]
        block = ctx.block
        if "#" in ctx.scene:
            return [head + [expand_hashes(ctx.scene, frame)] for frame in block.frames]
        if block.step == 1:
            return [head + ["-render", str(block.start), str(block.end), ctx.scene]]
        return [head + ["-render", str(frame), str(frame), ctx.scene] for frame in block.frames]

    def parse_line(self, line: str) -> LineInfo | None:
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        progress = _PROGRESS.search(line)
        if progress:
            return LineInfo(frame_fraction=min(1.0, float(progress.group(1)) / 100))
        frame = _FRAME.search(line)
        if frame:
            return LineInfo(frame=int(frame.group(1)))
        return None
