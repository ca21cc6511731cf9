"""Chaos V-Ray Standalone: .vrscene files.

Without ``output`` the block is one command and the scene's settings name the
files (``-frames`` appends the frame number to them)::

    vray -sceneFile=SCENE -display=0 -autoClose=1 -progressUseCR=0 -progressUseColor=0
         [-numThreads=N] [-imgWidth=W -imgHeight=H] [-camera=NAME] -frames=START-END[,STEP]

With ``output`` each frame is its own command writing exactly that file, so
the output check knows every name::

    vray … -frames=7 -noFrameNumbers=1 -imgFile=/r/shot.0007.exr

V-Ray prints ``Rendering image...: 45.20%`` and
``Successfully written image file "/r/shot.0007.exr"``.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.failures import FailureRule
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer, expand_hashes

_PERCENT = re.compile(r"Rendering image\.\.\.:\s*([\d.]+)%")
_WRITTEN = re.compile(r'Successfully written image file "(.+)"')
_ERROR = re.compile(r"\b(error|ERROR):")


class VRay(Renderer):
    name = "vray"
    description = "Chaos V-Ray Standalone (vray), .vrscene files"
    executable = "vray"
    needs_scene = True
    params = (
        Param("threads", "int", 0, help="render threads (-numThreads); 0 for one per core"),
        Param("width", "int", help="image width (-imgWidth)"),
        Param("height", "int", help="image height (-imgHeight)"),
        Param("camera", "str", "", help="camera (-camera); '' for the scene's"),
        Param(
            "output",
            "path",
            "",
            help="output pattern, #### is the frame (-imgFile); '' keeps the scene's",
        ),
    )
    #: V-Ray's licence line and its missing-file line.
    failure_patterns = (
        FailureRule.of("(could not|failed to) obtain a licen[cs]e", "licence", flags=re.IGNORECASE),
        FailureRule.of(
            "error.*(cannot|could not|failed to) (open|load|find) (file|texture|bitmap) ['\\\"]?(?P<path>[^'\\\"]+)",
            "missing-asset",
            flags=re.IGNORECASE,
        ),
    )

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        if not 0 <= params["threads"] <= 1024:
            raise InvalidJob("parameter 'threads' must be between 0 and 1024")
        for key in ("width", "height"):
            if params[key] is not None and not 1 <= params[key] <= 65535:
                raise InvalidJob(f"parameter {key!r} must be between 1 and 65535")
        if params["output"] and "#" not in params["output"]:
            raise InvalidJob("parameter 'output' needs #### where the frame number goes")
        return params

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob("vray needs a scene file (.vrscene)")
        p = ctx.params
        head = [
            self.executable,
            f"-sceneFile={ctx.scene}",
            "-display=0",
            "-autoClose=1",
            "-progressUseCR=0",
            "-progressUseColor=0",
        ]
        if p.get("threads"):
            head.append(f"-numThreads={p['threads']}")
        if p.get("width"):
            head.append(f"-imgWidth={p['width']}")
        if p.get("height"):
            head.append(f"-imgHeight={p['height']}")
        if p.get("camera"):
            head.append(f"-camera={p['camera']}")
        block = ctx.block
        if p.get("output"):
            return [
                head
                + [
                    f"-frames={frame}",
                    "-noFrameNumbers=1",
                    f"-imgFile={expand_hashes(p['output'], frame)}",
                ]
                for frame in block.frames
            ]
        frames = f"{block.start}-{block.end}" + (f",{block.step}" if block.step > 1 else "")
        return [head + [f"-frames={frames}"]]

    def parse_line(self, line: str) -> LineInfo | None:
        percent = _PERCENT.search(line)
        if percent:
            return LineInfo(frame_fraction=min(1.0, float(percent.group(1)) / 100))
        written = _WRITTEN.search(line)
        if written:
            return LineInfo(saved=written.group(1))
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None
