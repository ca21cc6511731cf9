"""Autodesk Maya's command-line renderer, ``Render``: one process per block.

    Render -r RENDERER -s START -e END -b STEP [-proj DIR] [-cam CAMERA]
           [-rl LAYER] [-rd DIR] [-im NAME] [-of FORMAT] [-pad DIGITS]
           [-x WIDTH -y HEIGHT] SCENE

``-s``, ``-e`` and ``-b`` (start, end, "by frame") are the common flags every
Maya renderer honours, so Maya walks the block's frames by its step itself.
Where the images go depends on the scene's render layers, cameras and file
name prefix tokens, so ``output`` only names the files to check afterwards.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer

_NAME = re.compile(r"^[A-Za-z0-9_:|.-]*$")
# Arnold: "|    45% done - 23 rays/pixel"; Maya Software: "Percentage of rendering done: 45".
_PERCENT = re.compile(r"(\d{1,3})% done|Percentage of rendering done: (\d{1,3})")
_ERROR = re.compile(r"^(// )?Error:|Frame aborted|Frame rendering aborted|Fatal Error|\bERROR\b")


class Maya(Renderer):
    name = "maya"
    description = "Autodesk Maya batch render (Render), any renderer Maya has"
    executable = "Render"
    needs_scene = True
    params = (
        Param(
            "renderer",
            "str",
            "file",
            help="renderer (-r): file (the scene's), sw, arnold, redshift, vray, …",
        ),
        Param("project", "path", "", help="Maya project folder (-proj)"),
        Param("camera", "str", "", help="camera to render (-cam)"),
        Param("layer", "str", "", help="render layer(s) to render (-rl)"),
        Param("image_dir", "path", "", help="folder for the images (-rd)"),
        Param("image_name", "str", "", help="image file name prefix (-im)"),
        Param("image_format", "str", "", help="image format (-of), e.g. exr, png"),
        Param("padding", "int", help="digits of the frame number in file names (-pad)"),
        Param("width", "int", help="image width (-x)"),
        Param("height", "int", help="image height (-y)"),
        Param(
            "output",
            "path",
            "",
            help="files each frame must produce, #### is the frame (checked only)",
        ),
    )
    #: Set by subclasses that always use one renderer (turtle).
    fixed_renderer: str | None = None

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        for key in ("renderer", "camera", "layer", "image_name", "image_format"):
            if params.get(key) and not _NAME.match(params[key]):
                raise InvalidJob(f"parameter {key!r} may hold only letters, digits and _ : | . -")
        for key in ("width", "height", "padding"):
            if params.get(key) is not None and not 1 <= params[key] <= 65535:
                raise InvalidJob(f"parameter {key!r} must be between 1 and 65535")
        return params

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob(f"{self.name} needs a scene file")
        p = ctx.params
        block = ctx.block
        argv = [self.executable, "-r", self.fixed_renderer or p.get("renderer") or "file"]
        argv += ["-s", str(block.start), "-e", str(block.end), "-b", str(block.step)]
        for flag, key in (
            ("-proj", "project"),
            ("-cam", "camera"),
            ("-rl", "layer"),
            ("-rd", "image_dir"),
            ("-im", "image_name"),
            ("-of", "image_format"),
        ):
            if p.get(key):
                argv += [flag, p[key]]
        for flag, key in (("-pad", "padding"), ("-x", "width"), ("-y", "height")):
            if p.get(key) is not None:
                argv += [flag, str(p[key])]
        argv.append(ctx.scene)
        return [argv]

    def parse_line(self, line: str) -> LineInfo | None:
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        percent = _PERCENT.search(line)
        if percent:
            return LineInfo(
                frame_fraction=min(1.0, int(percent.group(1) or percent.group(2)) / 100)
            )
        return None
