"""POV-Ray 3.7: the block rendered as a subset of a clock animation.

The command::

    povray Input_File_Name="SCENE" Output_File_Name="OUTPUT" +FN +W… +H…
           +KFI<first> +KFF<last> [+KI… +KF…] +SF<start> +EF<end> [+STP<step>] -D

``+KFI``/``+KFF`` define the whole animation (so ``clock`` runs the same in
every block: by default 0.0 at the first frame to 1.0 at the last) and
``+SF``/``+EF``/``+STP`` pick this block's frames from it.  The animation is the
job's frame range (``RenderContext.job_frames``) unless ``first_frame`` and
``last_frame`` say otherwise.

What POV-Ray 3.7.0 really does, which this module follows:

* It joins its arguments into one string and parses that again, so a path
  with a space breaks ``+I/a b.pov``; the INI form ``Input_File_Name="…"`` keeps
  it whole.  Paths may therefore not contain ``"``.
* It names each frame ``<base><frame><ext>``: the frame zero-padded to the
  number of digits of the *last* frame (``+KFF120``: ``shot001.png``), and the
  output's extension replaced only when it is exactly the format's own
  (``shot.png``); otherwise it appends (``shot.PNG`` -> ``shot.PNG001.png``).
* With ``+KFI`` equal to ``+KFF`` the clock is NaN, so a one-frame animation is
  rendered as a still with ``+K<clock_start>`` under the same file name.
* ``Rendering frame 3 of 6`` counts within the subset, not the frame number;
  the frame comes from the ``Output file……`` line.  ``Rendered 1536 of 3072
  pixels (50%)`` lines are separated by ``\\r``.
* It hard-wraps its console output at 80 columns, so a long output path
  continues on the next line; the parser joins them.
* ``Possible Parse Error: assumed_gamma not specified`` is only a warning.
  Real errors (``Parse Error:``, ``Fatal error in parser``, ``Render failed``)
  exit 1.
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.models import FrameBlock, JobSpec
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer

#: Output formats: the +F switch letter and the extension POV-Ray gives the file.
FORMATS: dict[str, tuple[str, str]] = {
    "png": ("N", ".png"),
    "jpeg": ("J", ".jpg"),
    "exr": ("E", ".exr"),
    "hdr": ("H", ".hdr"),
    "tga": ("T", ".tga"),
    "tga_rle": ("C", ".tga"),
    "ppm": ("P", ".ppm"),
    "bmp": ("B", ".bmp"),
}

_FINAL_FRAME = re.compile(r"Final Frame:\s+(-?\d+)")
_OUTPUT_FILE = re.compile(r"^\s*Output file\.+(.*)$")
_BPP = re.compile(r"^(.+?), \d+ bpp")
_PIXELS = re.compile(r"^Rendered (\d+) of (\d+) pixels")
_ERROR = re.compile(
    r"(?<!Possible )Parse Error:|Fatal error|Render failed|Failed to parse|Problem with option|^Cannot create"
)


class Povray(Renderer):
    name = "povray"
    description = "POV-Ray 3.7, a clock animation rendered in blocks of frames"
    executable = "povray"
    needs_scene = True
    params = (
        Param(
            "output",
            "path",
            required=True,
            help="output file, e.g. /r/shot.png; POV-Ray adds the frame, padded to the digits of last_frame",
        ),
        Param("format", "str", "png", help="image format", choices=tuple(FORMATS)),
        Param("width", "int", help="image width (+W); default the scene's INI or 800"),
        Param("height", "int", help="image height (+H)"),
        Param("antialias", "float", help="anti-aliasing threshold (+A), e.g. 0.3; default off"),
        Param("quality", "int", help="quality 0-11 (+Q)"),
        Param("threads", "int", 0, help="render threads (+WT); 0 for one per core"),
        Param(
            "first_frame",
            "int",
            help="first frame of the animation (+KFI); default the job's first",
        ),
        Param(
            "last_frame", "int", help="last frame of the animation (+KFF); default the job's last"
        ),
        Param("clock_start", "float", help="clock at the first frame (+KI); default 0.0"),
        Param("clock_end", "float", help="clock at the last frame (+KF); default 1.0"),
    )

    def __init__(self) -> None:
        self._digits: int | None = None
        self._frame: int | None = None
        self._path: str | None = None
        self._wrapped: str | None = None

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        _check_quotable("output", params["output"])
        for key, low, high in (
            ("width", 1, 65535),
            ("height", 1, 65535),
            ("quality", 0, 11),
            ("threads", 0, 512),
        ):
            if params[key] is not None and not low <= params[key] <= high:
                raise InvalidJob(f"parameter {key!r} must be between {low} and {high}")
        if params["antialias"] is not None and not 0.0 <= params["antialias"] <= 3.0:
            raise InvalidJob("parameter 'antialias' must be between 0.0 and 3.0")
        first, last = params["first_frame"], params["last_frame"]
        if first is not None and last is not None and last < first:
            raise InvalidJob(f"last_frame {last} is before first_frame {first}")
        return params

    @classmethod
    def validate_job(cls, spec: JobSpec) -> None:
        """The animation's frames are checked at submit, not when every task fails on them."""
        _check_quotable("scene", spec.scene or "")
        job = FrameBlock(spec.start, spec.end, spec.step)
        for block in (job.start, job.start + (len(job) - 1) * job.step):
            animation_range(
                RenderContext(FrameBlock(block, block), params=spec.params, job_frames=job)
            )

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        if not ctx.scene:
            raise InvalidJob("povray needs a scene file")
        _check_quotable("scene", ctx.scene)
        p = ctx.params
        first, last = animation_range(ctx)
        letter, _ = FORMATS[p.get("format") or "png"]
        argv = [self.executable, f'Input_File_Name="{ctx.scene}"']
        if first == last:
            # POV-Ray's clock is NaN for a one-frame animation: render a still instead.
            argv += [f'Output_File_Name="{self.outputs(ctx)[0]}"', f"+F{letter}"]
            argv += _image_options(p)
            argv += [f"+K{_number(p.get('clock_start') or 0.0)}"]
        else:
            argv += [f'Output_File_Name="{p["output"]}"', f"+F{letter}"]
            argv += _image_options(p)
            argv += [f"+KFI{first}", f"+KFF{last}"]
            if p.get("clock_start") is not None:
                argv.append(f"+KI{_number(p['clock_start'])}")
            if p.get("clock_end") is not None:
                argv.append(f"+KF{_number(p['clock_end'])}")
            argv += [f"+SF{ctx.block.start}", f"+EF{ctx.block.end}"]
            if ctx.block.step > 1:
                argv.append(f"+STP{ctx.block.step}")
        argv.append("-D")
        return [argv]

    def outputs(self, ctx: RenderContext) -> list[str]:
        _, last = animation_range(ctx)
        return [
            povray_frame_path(ctx.params["output"], frame, last, ctx.params.get("format") or "png")
            for frame in ctx.block.frames
        ]

    def parse_line(self, line: str) -> LineInfo | None:
        if self._wrapped is not None:
            # POV-Ray hard-wraps its console at 80 columns: a long path continues here.
            return self._output_file(self._wrapped + line)
        pixels = _PIXELS.match(line)
        if pixels:
            total = int(pixels.group(2))
            return LineInfo(
                frame=self._frame, frame_fraction=int(pixels.group(1)) / total if total else None
            )
        final = _FINAL_FRAME.search(line)
        if final:
            self._digits = len(final.group(1).lstrip("-"))
            return None
        output = _OUTPUT_FILE.match(line)
        if output:
            return self._output_file(output.group(1))
        if line.startswith("Render Time:"):
            return LineInfo(frame_done=self._frame, saved=self._path)
        if _ERROR.search(line):
            return LineInfo(error=line.strip())
        return None

    def _output_file(self, text: str) -> LineInfo | None:
        bpp = _BPP.match(text)
        if bpp is None:
            self._wrapped = text if len(text) < 4096 else None
            return None
        self._wrapped = None
        self._path = bpp.group(1)
        self._frame = _frame_in_name(self._path, self._digits)
        return LineInfo(frame=self._frame)


def animation_range(ctx: RenderContext) -> tuple[int, int]:
    """The animation's first and last frame (+KFI, +KFF) for this block, or InvalidJob."""
    p = ctx.params
    job = ctx.job_frames
    first = p.get("first_frame")
    last = p.get("last_frame")
    if first is None:
        first = job.start if job else 1
    if last is None:
        if job is None:
            raise InvalidJob(
                "povray needs the animation's last frame: set the parameter last_frame "
                "(and first_frame if it is not 1)"
            )
        last = job.end
    if first < 0 or ctx.block.start < 0:
        raise InvalidJob(
            f"POV-Ray cannot number negative frames (frame {min(first, ctx.block.start)}): "
            "render frames from 0 up"
        )
    if ctx.block.start < first or ctx.block.end > last:
        raise InvalidJob(
            f"frames {ctx.block.start}-{ctx.block.end} lie outside the animation {first}-{last}"
        )
    return first, last


def povray_frame_path(output: str, frame: int, last_frame: int, file_format: str = "png") -> str:
    """The file POV-Ray writes for *frame*, as POV-Ray names it."""
    _, extension = FORMATS[file_format]
    base = output[: -len(extension)] if output.endswith(extension) else output
    return base + str(frame).zfill(len(str(last_frame))) + extension


def _image_options(p: dict) -> list[str]:
    argv = []
    if p.get("width"):
        argv.append(f"+W{p['width']}")
    if p.get("height"):
        argv.append(f"+H{p['height']}")
    if p.get("antialias") is not None:
        argv.append(f"+A{_number(p['antialias'])}")
    if p.get("quality") is not None:
        argv.append(f"+Q{p['quality']}")
    if p.get("threads"):
        argv.append(f"+WT{p['threads']}")
    return argv


def _check_quotable(what: str, path: str) -> None:
    # POV-Ray re-parses its whole command line; a quote or a line break would end the path.
    if any(ch in path for ch in '"\n\r'):
        raise InvalidJob(
            f"the {what} path {path!r} contains a quote or a line break, which POV-Ray cannot read"
        )


def _number(value: float) -> str:
    # Plain decimal notation: "0.25", "1", never "1e-05".
    return f"{value:.10f}".rstrip("0").rstrip(".") or "0"


def _frame_in_name(path: str, digits: int | None) -> int | None:
    stem = path.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    run = len(stem) - len(stem.rstrip("0123456789"))
    if run == 0:
        return None
    take = min(run, digits) if digits else run
    return int(stem[-take:])
