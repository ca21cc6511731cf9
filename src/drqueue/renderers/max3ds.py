"""Autodesk 3ds Max's command-line renderer, ``3dsmaxcmd``: one process per block.

    3dsmaxcmd SCENE.max -start:START -end:END -nthFrame:STEP -v:5
              [-outputName:C:\\r\\shot.png] [-width:W] [-height:H] [-camera:NAME]

``-nthFrame`` is the step.  3ds Max numbers a sequence by appending the frame
with four digits before the extension: ``-outputName:C:\\r\\shot.png`` writes
``shot0001.png``, ``shot0002.png`` …; ``output`` is that base name and the
outputs are named the same way.  At verbosity 5 it prints ``Frame 12
completed`` and ``progr: 45% rendered``.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.models import pad_frame
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer

_DONE = re.compile(r"Frame (-?\d+) completed")
_PERCENT = re.compile(r"progr:\s*([\d.]+)%\s*rendered")
_ERROR = re.compile(r"Error occured while rendering|\bERROR\b|^Error\b")


class Max3ds(Renderer):
    name = "3dsmax"
    description = "Autodesk 3ds Max (3dsmaxcmd)"
    executable = "3dsmaxcmd"
    needs_scene = True
    params = (
        Param(
            "output",
            "path",
            "",
            help="output base name (-outputName), e.g. C:\\r\\shot.png; 3ds Max adds 0001",
        ),
        Param("camera", "str", "", help="camera to render (-camera)"),
        Param("width", "int", help="image width (-width)"),
        Param("height", "int", help="image height (-height)"),
    )

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        for key in ("width", "height"):
            if params[key] is not None and not 1 <= params[key] <= 65535:
                raise InvalidJob(f"parameter {key!r} must be between 1 and 65535")
        return params

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob("3dsmax needs a scene file (.max)")
        p = ctx.params
        block = ctx.block
        argv = [
            self.executable,
            ctx.scene,
            f"-start:{block.start}",
            f"-end:{block.end}",
            f"-nthFrame:{block.step}",
            "-v:5",
        ]
        if p.get("output"):
            argv.append(f"-outputName:{p['output']}")
        if p.get("width"):
            argv.append(f"-width:{p['width']}")
        if p.get("height"):
            argv.append(f"-height:{p['height']}")
        if p.get("camera"):
            argv.append(f"-camera:{p['camera']}")
        return [argv]

    def outputs(self, ctx: RenderContext) -> list[str]:
        base = ctx.params.get("output")
        if not base:
            return []
        stem, dot, extension = base.rpartition(".")
        if not dot or any(sep in extension for sep in "/\\"):
            stem, extension = base, ""
        suffix = "." + extension if extension else ""
        return [stem + pad_frame(frame, 4) + suffix for frame in ctx.block.frames]

    def parse_line(self, line: str) -> LineInfo | None:
        done = _DONE.search(line)
        if done:
            return LineInfo(frame_done=int(done.group(1)))
        percent = _PERCENT.search(line)
        if percent:
            return LineInfo(frame_fraction=min(1.0, float(percent.group(1)) / 100))
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None
