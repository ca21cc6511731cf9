"""Autodesk Softimage (XSI) batch rendering, ``xsibatch -render``: one process per block.

    xsibatch -render SCENE.scn -frames START,END,STEP [-pass PASS] [-output_dir DIR] -skip off

``-frames start,end,step`` overrides every pass's frame range, step included.
``-skip off`` renders frames whose images already exist (a rerun must redo
them).  The passes decide the file names, so ``output`` only names the files
to check.  Softimage logs ``' INFO : Rendering frame 12`` and
``' ERROR : 2000 - …``.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer

_FRAME = re.compile(r"Rendering frame (-?\d+)")
_PERCENT = re.compile(r"progr:\s*([\d.]+)%\s*rendered")
_ERROR = re.compile(r"\bERROR\s*:")


class XSI(Renderer):
    name = "xsi"
    description = "Autodesk Softimage XSI (xsibatch -render)"
    executable = "xsibatch"
    needs_scene = True
    params = (
        Param(
            "render_pass", "str", "", help="pass(es) to render, comma-separated (-pass); '' for all"
        ),
        Param("output_dir", "path", "", help="folder for the images (-output_dir)"),
        Param(
            "output",
            "path",
            "",
            help="files each frame must produce, #### is the frame (checked only)",
        ),
    )

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob("xsi needs a scene file (.scn)")
        p = ctx.params
        block = ctx.block
        argv = [
            self.executable,
            "-render",
            ctx.scene,
            "-frames",
            f"{block.start},{block.end},{block.step}",
        ]
        if p.get("render_pass"):
            argv += ["-pass", p["render_pass"]]
        if p.get("output_dir"):
            argv += ["-output_dir", p["output_dir"]]
        argv += ["-skip", "off"]
        return [argv]

    def parse_line(self, line: str) -> LineInfo | None:
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        frame = _FRAME.search(line)
        if frame:
            return LineInfo(frame=int(frame.group(1)), frame_fraction=0.0)
        percent = _PERCENT.search(line)
        if percent:
            return LineInfo(frame_fraction=min(1.0, float(percent.group(1)) / 100))
        return None
