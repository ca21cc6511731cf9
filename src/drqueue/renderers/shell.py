"""Any command: an argument-list template with frame placeholders.

The template is split into words the way a POSIX shell would split them
(``shlex.split``), and each word then has its placeholders replaced; no shell
ever runs it, so a frame number or a scene path can never become code.

Placeholders: ``{start}`` ``{end}`` ``{step}`` ``{frame}`` ``{padframe}``
``{scene}`` ``{jobid}`` ``{jobname}``.  A template that uses ``{frame}`` or
``{padframe}`` runs once per frame of the block; otherwise once per block.
"""

from __future__ import annotations

import shlex

from drqueue.errors import InvalidJob
from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer, expand_hashes

_PER_FRAME = ("{frame}", "{padframe}")


def split_template(template: str) -> list[str]:
    """Split a command template into argv words, or raise InvalidJob."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise InvalidJob(f"cannot split command template {template!r}: {exc}") from None
    if not words:
        raise InvalidJob("the command template is empty")
    return words


class Shell(Renderer):
    name = "shell"
    description = (
        "Any command, as an argv template with {start} {end} {step} {frame} {padframe} {scene}"
    )
    executable = None
    needs_scene = False
    params = (
        Param(
            "cmd",
            "str",
            required=True,
            help="argv template, e.g. 'convert in.{padframe}.exr out.{padframe}.png'",
        ),
        Param("output", "path", help="expected output per frame, with #### for the padded frame"),
    )

    @classmethod
    def validate_params(cls, given):
        params = super().validate_params(given)
        split_template(params["cmd"])
        return params

    def _substitute(self, words: list[str], ctx: RenderContext, frame: int) -> list[str]:
        values = {
            "{start}": str(ctx.block.start),
            "{end}": str(ctx.block.end),
            "{step}": str(ctx.block.step),
            "{frame}": str(frame),
            "{padframe}": ctx.padded(frame),
            "{scene}": ctx.scene or "",
            "{jobid}": str(ctx.job.get("id", "")),
            "{jobname}": str(ctx.job.get("name", "")),
        }
        argv = []
        for word in words:
            expanded = word
            for key, value in values.items():
                expanded = expanded.replace(key, value)
            argv.append(expanded)
        return argv

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        template = ctx.params["cmd"]
        words = split_template(template)
        if any(marker in template for marker in _PER_FRAME):
            return [self._substitute(words, ctx, frame) for frame in ctx.block.frames]
        return [self._substitute(words, ctx, ctx.block.start)]

    def outputs(self, ctx: RenderContext) -> list[str]:
        pattern = ctx.params.get("output")
        if not pattern:
            return []
        return [expand_hashes(pattern, frame) for frame in ctx.block.frames]

    def parse_line(self, line: str) -> LineInfo | None:
        # Scripts may report progress the way the built-in renderers do.
        if line.startswith("DRQUEUE_PROGRESS "):
            try:
                return LineInfo(frame_fraction=max(0.0, min(1.0, float(line.split()[1]))))
            except (IndexError, ValueError):
                return None
        return None
