"""FFmpeg: assemble a rendered frame sequence into one movie.

The job's frames are the *input* frames, and the job is always one task over all of
them: a movie is one file, so several blocks would each write it whole.  At submit the
block size is set to the frame count (:meth:`FFmpeg.validate_job`), whatever ``-b`` said.
With step 1 the image2 demuxer reads the numbered files::

    ffmpeg -hide_banner -nostdin -y -framerate FPS -start_number START
           -start_number_range 1 -i /r/shot_%04d.png -frames:v COUNT
           -c:v CODEC [-preset P] [-crf N] [-pix_fmt FMT] OUTPUT

With a step the frames are not consecutive, so they are listed for the concat
demuxer inside the argument itself (a ``data:`` URL; no list file is written)::

    ffmpeg … -r FPS -f concat -safe 0 -i "data:text/plain,ffconcat version 1.0
    file 'file:/r/shot_0001.png' …" -frames:v COUNT …

A missing frame does not make FFmpeg 5.1 fail: the image2 demuxer finds the
sequence's end at the first gap and stops there with exit code 0 and no
message, and without ``-start_number_range 1`` a missing *first* frame makes it
silently start at one of the next four.  So unless ``check_frames`` is off, a
second command decodes the movie and exits 1 (printing ``Empty output``) when
it holds fewer than COUNT frames, COUNT being the whole job's frame count::

    ffmpeg -hide_banner -nostdin -v error -i OUTPUT -map 0:v:0
           -vf select=gte(n\\,COUNT-1) -frames:v 1 -abort_on empty_output -f null -
"""

from __future__ import annotations

import re

from drqueue.errors import InvalidJob
from drqueue.models import JobSpec, count_frames
from drqueue.renderers.base import (
    LineInfo,
    Param,
    RenderContext,
    Renderer,
    expand_hashes,
    hashes_to_printf,
)

#: Longest inline frame list (bytes); one argument may hold 128 KiB on Linux.
MAX_INLINE_LIST = 100_000

_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_ERRORS = (
    "Could find no file",  # image2: the first frame is missing
    "Could not open file",  # image2: a frame cannot be read
    "Impossible to open",  # concat: a listed frame is missing
    "No such file or directory",
    "Unknown encoder",
    "Error ",
)


class FFmpeg(Renderer):
    name = "ffmpeg"
    description = "FFmpeg: a frame sequence (#### pattern) made into one movie"
    executable = "ffmpeg"
    needs_scene = False
    params = (
        Param(
            "input",
            "path",
            required=True,
            help="frame pattern, #### is the frame, e.g. /r/shot_####.png",
        ),
        Param("output", "path", required=True, help="the movie to write, e.g. /r/shot.mp4"),
        Param("fps", "float", 24.0, help="frames per second"),
        Param("codec", "str", "libx264", help="video codec (-c:v), e.g. libx264, prores_ks, mjpeg"),
        Param("pix_fmt", "str", "yuv420p", help="pixel format (-pix_fmt); '' lets FFmpeg choose"),
        Param(
            "crf", "int", help="constant rate factor (-crf) for x264/x265/vpx; default the codec's"
        ),
        Param("preset", "str", "", help="encoder preset (-preset), e.g. slow"),
        Param(
            "check_frames", "bool", True, help="fail unless the movie holds every frame of the job"
        ),
    )

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        if "#" not in params["input"]:
            raise InvalidJob("parameter 'input' needs #### where the frame number goes")
        if not 0 < params["fps"] <= 1000:
            raise InvalidJob("parameter 'fps' must be above 0 and at most 1000")
        for key in ("codec", "pix_fmt", "preset"):
            if params[key] and not _NAME.match(params[key]):
                raise InvalidJob(f"parameter {key!r} may hold only letters, digits and _ . + -")
        if params["crf"] is not None and not 0 <= params["crf"] <= 63:
            raise InvalidJob("parameter 'crf' must be between 0 and 63")
        return params

    @classmethod
    def validate_job(cls, spec: JobSpec) -> None:
        """One task encodes the whole movie: the block is every frame of the job."""
        spec.block_size = count_frames(spec.start, spec.end, spec.step)

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        p = ctx.params
        block = ctx.block
        count = len(block)
        # The check wants the whole job's frames in the movie, not the block's: a job stored
        # with several blocks (before validate_job) fails instead of "finishing" each block.
        expected = len(ctx.job_frames) if ctx.job_frames else count
        fps = _number(p["fps"])
        argv = [self.executable, "-hide_banner", "-nostdin", "-y"]
        if block.step == 1:
            argv += [
                "-framerate",
                fps,
                "-start_number",
                str(block.start),
                "-start_number_range",
                "1",
                "-i",
                hashes_to_printf(p["input"]),
            ]
        else:
            argv += [
                "-r",
                fps,
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                concat_list(p["input"], block.frames),
            ]
        argv += ["-frames:v", str(count), "-c:v", p.get("codec") or "libx264"]
        if p.get("preset"):
            argv += ["-preset", p["preset"]]
        if p.get("crf") is not None:
            argv += ["-crf", str(p["crf"])]
        if p.get("pix_fmt"):
            argv += ["-pix_fmt", p["pix_fmt"]]
        argv.append(p["output"])
        commands = [argv]
        if p.get("check_frames", True):
            commands.append(
                [
                    self.executable,
                    "-hide_banner",
                    "-nostdin",
                    "-v",
                    "error",
                    "-i",
                    p["output"],
                    "-map",
                    "0:v:0",
                    "-vf",
                    f"select=gte(n\\,{expected - 1})",
                    "-frames:v",
                    "1",
                    "-abort_on",
                    "empty_output",
                    "-f",
                    "null",
                    "-",
                ]
            )
        return commands

    def outputs(self, ctx: RenderContext) -> list[str]:
        return [ctx.params["output"]]

    def frame_of_command(self, ctx: RenderContext, index: int) -> int:
        return ctx.block.start

    def parse_line(self, line: str) -> LineInfo | None:
        if line.strip() == "Empty output":
            return LineInfo(
                error="the movie holds fewer frames than the job: an input frame is missing or unreadable"
            )
        if any(marker in line for marker in _ERRORS):
            return LineInfo(error=line.strip())
        return None


def concat_list(pattern: str, frames: list[int]) -> str:
    """An ffconcat script naming each frame's file, as a ``data:`` URL FFmpeg reads inline."""
    lines = ["ffconcat version 1.0"]
    for frame in frames:
        path = expand_hashes(pattern, frame).replace("'", "'\\''")
        lines.append(f"file 'file:{path}'")
    script = "\n".join(lines) + "\n"
    if len(script.encode()) > MAX_INLINE_LIST:
        raise InvalidJob(
            f"{len(frames)} frames with a step are too many for one ffmpeg command; "
            "split the movie or use step 1"
        )
    return "data:text/plain," + script


def _number(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")
