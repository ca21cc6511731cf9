"""LightWave 3D's ScreamerNet node in batch mode (``lwsn -3``): one process per block.

    lwsn -3 [-c<CONFIG_DIR>] [-d<CONTENT_DIR>] SCENE.lws START END STEP

Mode 3 renders the scene from START to END by STEP on its own.  ``-c`` and
``-d`` take their folder without a space, as LightWave documents.  The scene
decides the file names, so ``output`` only names the files to check.  Output
per frame::

    Beginning frame: 2
    Render Complete 41%
    Finished frame: 2
    Writing RGB image to T:\\renders\\Final_Render_002.jpg
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer

_BEGIN = re.compile(r"^Beginning frame: (-?\d+)")
_PERCENT = re.compile(r"^Render Complete (\d{1,3})%")
_FINISHED = re.compile(r"^Finished frame: (-?\d+)")
_WRITING = re.compile(r"^Writing \w+ image to (.+)$")
_ERROR = re.compile(r"^(Error|ERROR)\b")


class Lightwave(Renderer):
    name = "lightwave"
    description = "LightWave 3D ScreamerNet (lwsn -3)"
    executable = "lwsn"
    needs_scene = True
    params = (
        Param("config_dir", "path", "", help="LightWave config folder (-c)"),
        Param("content_dir", "path", "", help="content folder (-d)"),
        Param(
            "output",
            "path",
            "",
            help="files each frame must produce, #### is the frame (checked only)",
        ),
    )

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob("lightwave needs a scene file (.lws)")
        p = ctx.params
        argv = [self.executable, "-3"]
        if p.get("config_dir"):
            argv.append("-c" + p["config_dir"])
        if p.get("content_dir"):
            argv.append("-d" + p["content_dir"])
        block = ctx.block
        argv += [ctx.scene, str(block.start), str(block.end), str(block.step)]
        return [argv]

    def parse_line(self, line: str) -> LineInfo | None:
        begin = _BEGIN.match(line)
        if begin:
            return LineInfo(frame=int(begin.group(1)), frame_fraction=0.0)
        percent = _PERCENT.match(line)
        if percent:
            return LineInfo(frame_fraction=min(1.0, int(percent.group(1)) / 100))
        finished = _FINISHED.match(line)
        if finished:
            return LineInfo(frame_done=int(finished.group(1)))
        writing = _WRITING.match(line)
        if writing:
            return LineInfo(saved=writing.group(1).strip())
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None
