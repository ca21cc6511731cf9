"""LuxCoreRender (and old LuxRender .lxs scenes) with ``luxcoreconsole``.

LuxCore has no animation of its own: exporters write one scene per frame, so
the scene names its frame with ``####`` (``shot.####.cfg`` or ``.lxs``) and each
frame is its own command::

    luxcoreconsole [-D batch.haltspp N] [-D batch.halttime S] [-w W -e H]
                   [-D film.outputs.99.type RGB_IMAGEPIPELINE
                    -D film.outputs.99.filename /r/shot.0007.png] SHOT.0007.cfg

Without a halt condition here or in the scene, LuxCore renders until killed.
It prints ``[Elapsed time:  12/60sec][Samples   40/100][Convergence 0.00%]…``
lines, and ``RUNTIME ERROR: …`` before exiting 1.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer, expand_hashes

_ELAPSED = re.compile(r"\[Elapsed time:\s*(\d+)/(\d+)sec\]\[Samples\s+(\d+)/(\d+)\]")
_ERROR = re.compile(r"\bERROR:")


class LuxCore(Renderer):
    name = "luxcore"
    description = "LuxCoreRender (luxcoreconsole), one scene file per frame"
    executable = "luxcoreconsole"
    needs_scene = True
    params = (
        Param(
            "halt_spp",
            "int",
            0,
            help="stop at this many samples per pixel (batch.haltspp); 0 for the scene's",
        ),
        Param(
            "halt_time",
            "int",
            0,
            help="stop after this many seconds (batch.halttime); 0 for the scene's",
        ),
        Param("width", "int", help="film width (-w)"),
        Param("height", "int", help="film height (-e)"),
        Param(
            "output",
            "path",
            "",
            help="output pattern, #### is the frame (an extra film output); '' keeps the scene's",
        ),
    )

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        for key in ("halt_spp", "halt_time"):
            if params[key] < 0:
                raise InvalidJob(f"parameter {key!r} must not be negative")
        for key in ("width", "height"):
            if params[key] is not None and not 1 <= params[key] <= 65535:
                raise InvalidJob(f"parameter {key!r} must be between 1 and 65535")
        return params

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene or "#" not in ctx.scene:
            raise InvalidJob(
                "luxcore renders one scene file per frame: the scene needs #### for the frame"
            )
        return [self._argv(ctx, frame) for frame in ctx.block.frames]

    def _argv(self, ctx: RenderContext, frame: int) -> list[str]:
        p = ctx.params
        argv = [self.executable]
        if p.get("halt_spp"):
            argv += ["-D", "batch.haltspp", str(p["halt_spp"])]
        if p.get("halt_time"):
            argv += ["-D", "batch.halttime", str(p["halt_time"])]
        if p.get("width"):
            argv += ["-w", str(p["width"])]
        if p.get("height"):
            argv += ["-e", str(p["height"])]
        if p.get("output"):
            argv += [
                "-D",
                "film.outputs.99.type",
                "RGB_IMAGEPIPELINE",
                "-D",
                "film.outputs.99.filename",
                expand_hashes(p["output"], frame),
            ]
        argv.append(expand_hashes(ctx.scene or "", frame))
        return argv

    def parse_line(self, line: str) -> LineInfo | None:
        elapsed = _ELAPSED.search(line)
        if elapsed:
            seconds, halt_time, samples, halt_spp = (int(g) for g in elapsed.groups())
            fractions = [
                done / total for done, total in ((seconds, halt_time), (samples, halt_spp)) if total
            ]
            return LineInfo(frame_fraction=min(1.0, max(fractions)) if fractions else None)
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None
