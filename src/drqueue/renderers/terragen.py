"""Planetside Terragen 3/4 from the command line (``tgdcli``): one process per frame.

    tgdcli -p PROJECT.tgd -hide -exit -r [-rendernode NODE] [-o OUTPUT] -f FRAME

Terragen renders one frame per ``-f``, and loading a project is quick next to
rendering a frame, so each frame of the block is its own command.  ``-o``
takes a printf pattern (``/r/shot.%04d.exr``); the ``output`` parameter is
written with ``####`` like every renderer's and converted.  ``tgdcli`` is the
command-line program of the Windows and Linux installs (on macOS it is
``Terragen 4.app/Contents/MacOS/Terragen 4``; link it as ``tgdcli``).
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import (
    LineInfo,
    Param,
    RenderContext,
    Renderer,
    hashes_to_printf,
)

_ERROR = re.compile(r"^(Error|ERROR)\b")


class Terragen(Renderer):
    name = "terragen"
    description = "Planetside Terragen (tgdcli), one frame per process"
    executable = "tgdcli"
    needs_scene = True
    params = (
        Param(
            "render_node", "str", "", help="render node to use (-rendernode); '' for the default"
        ),
        Param(
            "output",
            "path",
            "",
            help="output pattern, #### is the frame (-o); '' keeps the project's",
        ),
    )

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        if params["output"] and "#" not in params["output"]:
            raise InvalidJob("parameter 'output' needs #### where the frame number goes")
        return params

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob("terragen needs a project file (.tgd)")
        p = ctx.params
        head = [self.executable, "-p", ctx.scene, "-hide", "-exit", "-r"]
        if p.get("render_node"):
            head += ["-rendernode", p["render_node"]]
        if p.get("output"):
            head += ["-o", hashes_to_printf(p["output"])]
        return [head + ["-f", str(frame)] for frame in ctx.block.frames]

    def parse_line(self, line: str) -> LineInfo | None:
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None
