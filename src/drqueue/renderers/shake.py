"""Apple Shake, executing a script's FileOut nodes: one process per block.

    shake -v [-cpus N] -t START-END[xSTEP] -exec SCRIPT.shk

``-t`` takes Shake's time-range syntax, so ``1-99x2`` renders 1, 3, … 99; it
comes before ``-exec`` because Shake applies its options in order.  The
FileOut nodes decide the file names, so ``output`` only names the files to
check.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer

_ERROR = re.compile(r"^(Error|ERROR)\b")


class Shake(Renderer):
    name = "shake"
    description = "Apple Shake, a script's FileOut nodes (shake -exec)"
    executable = "shake"
    needs_scene = True
    params = (
        Param("cpus", "int", 0, help="processors to use (-cpus); 0 for Shake's default"),
        Param(
            "output",
            "path",
            "",
            help="files each frame must produce, #### is the frame (checked only)",
        ),
    )

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        if not 0 <= params["cpus"] <= 256:
            raise InvalidJob("parameter 'cpus' must be between 0 and 256")
        return params

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob("shake needs a script (.shk)")
        block = ctx.block
        argv = [self.executable, "-v"]
        if ctx.params.get("cpus"):
            argv += ["-cpus", str(ctx.params["cpus"])]
        frames = f"{block.start}-{block.end}" + (f"x{block.step}" if block.step > 1 else "")
        argv += ["-t", frames, "-exec", ctx.scene]
        return [argv]

    def parse_line(self, line: str) -> LineInfo | None:
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None
