"""Adobe After Effects' command-line renderer, ``aerender``.

    aerender -project PROJECT.aep [-comp COMP] -s START -e END -v ERRORS_AND_PROGRESS
             [-output /r/shot_[####].png] [-RStemplate T] [-OMtemplate T] [-mp]

With step 1 the block is one command.  ``aerender``'s ``-i`` increment repeats
each rendered frame to keep the duration instead of skipping frames, so with
a step each frame is its own command (``-s F -e F``).  ``output`` is written
with ``####`` like every renderer's and given to After Effects as ``[####]``.
After Effects prints ``PROGRESS:  0:00:00:01 (2): 0 Seconds`` per frame.
``aerender`` has been known to exit 0 after errors, so check outputs.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer

_DONE = re.compile(r"PROGRESS:\s+\S+ \((-?\d+)\): [\d.]+ Seconds")
_ERROR = re.compile(r"aerender ERROR|After Effects error|^ERROR\b")


class AfterEffects(Renderer):
    name = "aftereffects"
    description = "Adobe After Effects (aerender)"
    executable = "aerender"
    needs_scene = True
    params = (
        Param("comp", "str", "", help="composition to render (-comp); '' renders the render queue"),
        Param(
            "output",
            "path",
            "",
            help="output pattern, #### is the frame (-output); '' keeps the queue's",
        ),
        Param("render_settings", "str", "", help="render settings template (-RStemplate)"),
        Param("output_module", "str", "", help="output module template (-OMtemplate)"),
        Param("multiprocessing", "bool", False, help="render several frames at once (-mp)"),
    )

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        if params["output"] and "#" not in params["output"]:
            raise InvalidJob("parameter 'output' needs #### where the frame number goes")
        return params

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob("aftereffects needs a project file (.aep)")
        block = ctx.block
        if block.step == 1:
            return [self._argv(ctx, block.start, block.end)]
        return [self._argv(ctx, frame, frame) for frame in block.frames]

    def _argv(self, ctx: RenderContext, start: int, end: int) -> list[str]:
        p = ctx.params
        argv = [self.executable, "-project", ctx.scene or ""]
        if p.get("comp"):
            argv += ["-comp", p["comp"]]
        argv += ["-s", str(start), "-e", str(end), "-v", "ERRORS_AND_PROGRESS"]
        if p.get("output"):
            argv += ["-output", bracket_hashes(p["output"])]
        if p.get("render_settings"):
            argv += ["-RStemplate", p["render_settings"]]
        if p.get("output_module"):
            argv += ["-OMtemplate", p["output_module"]]
        if p.get("multiprocessing"):
            argv.append("-mp")
        return argv

    def parse_line(self, line: str) -> LineInfo | None:
        done = _DONE.search(line)
        if done:
            return LineInfo(frame_done=int(done.group(1)))
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None


def bracket_hashes(pattern: str) -> str:
    """``/r/shot_####.png`` as After Effects writes it: ``/r/shot_[####].png``."""
    start = pattern.find("#")
    end = start
    while end < len(pattern) and pattern[end] == "#":
        end += 1
    return f"{pattern[:start]}[{pattern[start:end]}]{pattern[end:]}"
