"""Autodesk Arnold's standalone renderer, ``kick``, from .ass files: one process per frame.

Arnold scenes are exported one .ass per frame, so the scene names its frame
with ``####`` (``/r/ass/shot.####.ass``)::

    kick -i /r/ass/shot.0007.ass -dw -dp -nstdin -v 2 [-t THREADS]
         [-r WIDTH HEIGHT] [-o /r/shot.0007.exr]

``-dw -dp`` turn off the render window and progressive passes, ``-nstdin``
stops kick reading its standard input.  Log lines look like
``00:00:05   812MB         |    45% done - 23 rays/pixel`` and
``00:00:00    95MB ERROR   | [ass] can't read in …``; kick exits non-zero on errors.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.failures import FailureRule
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer, expand_hashes

_PERCENT = re.compile(r"\|\s*(\d{1,3})% done")
_ERROR = re.compile(r"\bERROR\b")


class Arnold(Renderer):
    name = "arnold"
    description = "Arnold standalone (kick), one .ass file per frame (shot.####.ass)"
    executable = "kick"
    needs_scene = True
    params = (
        Param("threads", "int", 0, help="render threads (-t); 0 for one per core"),
        Param("width", "int", help="image width (-r W H, with height)"),
        Param("height", "int", help="image height"),
        Param(
            "output", "path", "", help="image pattern, #### is the frame (-o); '' keeps the scene's"
        ),
    )
    #: Arnold's licence lines (RLM, arnoldsupport.com) and its missing-texture line.
    failure_patterns = (
        FailureRule.of(
            "\\[rlm\\] (could not connect to any license server|error checking out license)",
            "licence",
            flags=re.IGNORECASE,
        ),
        FailureRule.of("ERROR.*\\[ai\\] (licen[cs]e|no license)", "licence", flags=re.IGNORECASE),
        FailureRule.of(
            "(can't|cannot|could not) (open|find|read) (texture|image|file) ['\\\"]?(?P<path>[^'\\\"]+)",
            "missing-asset",
            flags=re.IGNORECASE,
        ),
    )

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        if not 0 <= params["threads"] <= 1024:
            raise InvalidJob("parameter 'threads' must be between 0 and 1024")
        if (params["width"] is None) != (params["height"] is None):
            raise InvalidJob("parameters 'width' and 'height' go together")
        for key in ("width", "height"):
            if params[key] is not None and not 1 <= params[key] <= 65535:
                raise InvalidJob(f"parameter {key!r} must be between 1 and 65535")
        if params["output"] and "#" not in params["output"]:
            raise InvalidJob("parameter 'output' needs #### where the frame number goes")
        return params

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene or "#" not in ctx.scene:
            raise InvalidJob(
                "arnold renders one .ass file per frame: the scene needs #### for the frame"
            )
        p = ctx.params
        commands = []
        for frame in ctx.block.frames:
            argv = [
                self.executable,
                "-i",
                expand_hashes(ctx.scene, frame),
                "-dw",
                "-dp",
                "-nstdin",
                "-v",
                "2",
            ]
            if p.get("threads"):
                argv += ["-t", str(p["threads"])]
            if p.get("width"):
                argv += ["-r", str(p["width"]), str(p["height"])]
            if p.get("output"):
                argv += ["-o", expand_hashes(p["output"], frame)]
            commands.append(argv)
        return commands

    def parse_line(self, line: str) -> LineInfo | None:
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        percent = _PERCENT.search(line)
        if percent:
            return LineInfo(frame_fraction=min(1.0, int(percent.group(1)) / 100))
        return None
