"""Foundry Nuke, executing a script's Write nodes: one process per block.

    nuke -x [-i] [-m THREADS] [-X WRITE_NODE] -F START-END[xSTEP] SCRIPT.nk

``-F`` takes Nuke's frame-range syntax, so ``1-99x2`` renders 1, 3, … 99.
``-i`` asks for an interactive licence (for sites without render licences).
The Write nodes decide the file names, so ``output`` only names the files to
check.  Nuke prints ``Frame 3 (3 of 10)`` and ``Writing /r/shot.0003.exr took
1.20 seconds`` per frame.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.failures import FailureRule
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer

_NODE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_FRAME = re.compile(r"^Frame (-?\d+) \(\d+ of \d+\)")
_WRITING = re.compile(r"^Writing (.+?) took [\d.]+ seconds")
_ERROR = re.compile(r"^(ERROR|Error)\b|Node execution error|Worker process failed")


class Nuke(Renderer):
    name = "nuke"
    description = "Foundry Nuke, a script's Write nodes (nuke -x)"
    executable = "nuke"
    needs_scene = True
    params = (
        Param("write_node", "str", "", help="Write node to execute (-X); '' executes them all"),
        Param("threads", "int", 0, help="threads (-m); 0 for Nuke's default"),
        Param("interactive_license", "bool", False, help="use an interactive licence (-i)"),
        Param(
            "output",
            "path",
            "",
            help="files each frame must produce, #### is the frame (checked only)",
        ),
    )
    #: Nuke's licence lines (RLM, the foundry ISV) and a Read node's missing file.
    failure_patterns = (
        FailureRule.of(
            "no licen[cs]es available|rlm.*licen[cs]e|foundry.*licen[cs]e error",
            "licence",
            flags=re.IGNORECASE,
        ),
        FailureRule.of(
            "Read\\d*: (?P<path>\\S+): (No such file or directory|file not found)",
            "missing-asset",
            flags=re.IGNORECASE,
        ),
    )

    def __init__(self) -> None:
        self._frame: int | None = None

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        if params["write_node"] and not _NODE.match(params["write_node"]):
            raise InvalidJob("parameter 'write_node' must be a node name like Write1")
        if not 0 <= params["threads"] <= 1024:
            raise InvalidJob("parameter 'threads' must be between 0 and 1024")
        return params

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob("nuke needs a script (.nk)")
        p = ctx.params
        block = ctx.block
        argv = [self.executable, "-x"]
        if p.get("interactive_license"):
            argv.append("-i")
        if p.get("threads"):
            argv += ["-m", str(p["threads"])]
        if p.get("write_node"):
            argv += ["-X", p["write_node"]]
        frames = f"{block.start}-{block.end}" + (f"x{block.step}" if block.step > 1 else "")
        argv += ["-F", frames, ctx.scene]
        return [argv]

    def parse_line(self, line: str) -> LineInfo | None:
        frame = _FRAME.match(line)
        if frame:
            self._frame = int(frame.group(1))
            return LineInfo(frame=self._frame)
        writing = _WRITING.match(line)
        if writing:
            return LineInfo(saved=writing.group(1), frame_done=self._frame)
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None
