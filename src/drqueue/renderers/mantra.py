"""SideFX Houdini's mantra renderer, from IFD files: one process per frame.

Houdini writes one IFD per frame (a Mantra ROP with "Disk file" set), so the
scene names its frame with ``####`` (``/r/ifd/shot.####.ifd``)::

    mantra -V 2a [-j THREADS] -f /r/ifd/shot.0007.ifd [/r/shot.0007.exr]

``-V 2a`` prints Alfred-style progress (``ALF_PROGRESS 45%``) and
``Generating Image: /r/shot.0007.exr (1920x1080)``.  A trailing image name
overrides the IFD's; without ``output`` the IFD decides.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.failures import FailureRule
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer, expand_hashes

_PROGRESS = re.compile(r"ALF_PROGRESS\s+(\d{1,3})%")
_IMAGE = re.compile(r"Generating Image: (.+) \(\d+x\d+\)")
_ERROR = re.compile(
    r"No licenses could be found|Failed to create file|Error loading geometry|^mantra: (Error|Fatal)|^Error\b"
)


class Mantra(Renderer):
    name = "mantra"
    description = "Houdini mantra, one IFD file per frame (shot.####.ifd)"
    executable = "mantra"
    needs_scene = True
    params = (
        Param("threads", "int", 0, help="render threads (-j); 0 for one per core"),
        Param("output", "path", "", help="image pattern, #### is the frame; '' keeps the IFD's"),
    )
    #: Houdini's licence line (sesinetd/hserver) and Mantra's missing-texture line.
    failure_patterns = (
        FailureRule.of(
            "No licenses could be found to run this application", "licence", flags=re.IGNORECASE
        ),
        FailureRule.of(
            "Unable to (open|load) (texture|file) ['\\\"]?(?P<path>[^'\\\"]+)",
            "missing-asset",
            flags=re.IGNORECASE,
        ),
    )

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        if not 0 <= params["threads"] <= 1024:
            raise InvalidJob("parameter 'threads' must be between 0 and 1024")
        if params["output"] and "#" not in params["output"]:
            raise InvalidJob("parameter 'output' needs #### where the frame number goes")
        return params

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene or "#" not in ctx.scene:
            raise InvalidJob("mantra renders one IFD per frame: the scene needs #### for the frame")
        p = ctx.params
        commands = []
        for frame in ctx.block.frames:
            argv = [self.executable, "-V", "2a"]
            if p.get("threads"):
                argv += ["-j", str(p["threads"])]
            argv += ["-f", expand_hashes(ctx.scene, frame)]
            if p.get("output"):
                argv.append(expand_hashes(p["output"], frame))
            commands.append(argv)
        return commands

    def parse_line(self, line: str) -> LineInfo | None:
        progress = _PROGRESS.search(line)
        if progress:
            return LineInfo(frame_fraction=min(1.0, int(progress.group(1)) / 100))
        image = _IMAGE.search(line)
        if image:
            return LineInfo(saved=image.group(1))
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None
