"""Natron, the open-source compositor, rendering a project's Write node: one process per block.

    NatronRenderer -w WRITER [/r/comp_####.png] START-END[:STEP] PROJECT.ntp

Natron takes the frame range and its step (``1-99:2``) after the Write node
and its optional file name, in which ``#`` stands for the padded frame as it
does everywhere in DrQueue.  Natron wants absolute file names there.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer

_NODE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_RENDERED = re.compile(r"Frame rendered: (-?\d+)")
_ERROR = re.compile(r"Worker process failed|^Error\b|^ERROR\b")


class Natron(Renderer):
    name = "natron"
    description = "Natron compositor (NatronRenderer), one Write node"
    executable = "NatronRenderer"
    needs_scene = True
    params = (
        Param("writer", "str", required=True, help="Write node to render (-w), e.g. Write1"),
        Param(
            "output",
            "path",
            "",
            help="output pattern, #### is the frame; '' keeps the Write node's",
        ),
    )

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        if not _NODE.match(params["writer"]):
            raise InvalidJob("parameter 'writer' must be a node name like Write1")
        if params["output"] and "#" not in params["output"]:
            raise InvalidJob("parameter 'output' needs #### where the frame number goes")
        return params

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob("natron needs a project file (.ntp)")
        p = ctx.params
        block = ctx.block
        argv = [self.executable, "-w", p["writer"]]
        if p.get("output"):
            argv.append(p["output"])
        argv += [
            f"{block.start}-{block.end}" + (f":{block.step}" if block.step > 1 else ""),
            ctx.scene,
        ]
        return [argv]

    def parse_line(self, line: str) -> LineInfo | None:
        rendered = _RENDERED.search(line)
        if rendered:
            return LineInfo(frame_done=int(rendered.group(1)))
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None
