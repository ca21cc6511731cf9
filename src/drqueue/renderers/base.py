"""What a renderer module declares, and the context it builds its commands from.

A renderer is one class in one module of this package (``renderers/blender.py``
holds :class:`Blender`).  It declares its typed parameters, builds the argument
lists that render one block of frames, names the files that block must
produce, and reads progress and errors from the renderer's output lines.  The
runner on the slave does the rest: environment, process group, log, time-out,
output checks.

Commands are argument lists, never shell strings: nothing a user types is ever
parsed by a shell.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any, ClassVar

from drqueue.errors import InvalidJob
from drqueue.failures import FailureRule
from drqueue.models import FrameBlock, JobSpec, pad_frame

#: Parameter types a renderer may declare, and the Python type each converts to.
PARAM_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool, "path": str}


@dataclass(frozen=True, slots=True)
class Param:
    """One typed renderer parameter, e.g. ``Param("engine", "str", "CYCLES", choices=(...))``."""

    name: str
    type: str = "str"
    default: Any = None
    help: str = ""
    required: bool = False
    choices: tuple[Any, ...] = ()
    #: Bounds of a number parameter, inclusive; None for unbounded.
    minimum: float | None = None
    maximum: float | None = None

    def convert(self, value: Any) -> Any:
        """Convert a CLI string or JSON value to this parameter's type, or raise InvalidJob."""
        if value is None:
            return None
        kind = PARAM_TYPES[self.type]
        try:
            if not isinstance(value, str | int | float | bool):
                raise TypeError(value)  # a list or object is no parameter: never its repr
            if kind is bool and isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                converted: Any = lowered in ("1", "true", "yes", "on")
            elif kind is int and (
                isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())
            ):
                raise ValueError(value)
            else:
                converted = kind(value)
        except (TypeError, ValueError):
            raise InvalidJob(
                f"parameter {self.name!r} wants {'an' if self.type[0] in 'aeiou' else 'a'} {self.type}, not {value!r}"
            ) from None
        if self.choices and converted not in self.choices:
            choices = ", ".join(str(c) for c in self.choices)
            raise InvalidJob(f"parameter {self.name!r} must be one of {choices}, not {value!r}")
        low = self.minimum if self.minimum is not None else float("-inf")
        high = self.maximum if self.maximum is not None else float("inf")
        if (
            isinstance(converted, int | float)
            and not isinstance(converted, bool)
            and not low <= converted <= high
        ):
            raise InvalidJob(
                f"parameter {self.name!r} must be between {self.minimum:g} and {self.maximum:g}"
            )
        if isinstance(converted, str) and "\x00" in converted:
            raise InvalidJob(f"parameter {self.name!r} contains a NUL byte")
        return converted


@dataclass(slots=True)
class RenderContext:
    """Everything a renderer needs to build the commands for one task.

    Paths in *scene* and *params* have already been mapped to the slave's OS.
    """

    block: FrameBlock
    scene: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: Digits used to pad frame numbers in file names (``####`` is 4).
    padding: int = 4
    #: Renderer-independent job data (job id, name), for templates that want it.
    job: dict[str, Any] = field(default_factory=dict)
    #: The whole job's frames (start, end, step), when known.  Renderers whose
    #: animation depends on the full range rather than the block use it: POV-Ray's
    #: clock and its output-name padding come from the first and last frame.
    job_frames: FrameBlock | None = None

    def padded(self, frame: int) -> str:
        return pad_frame(frame, self.padding)


@dataclass(slots=True)
class LineInfo:
    """What one line of renderer output says; every field is optional."""

    #: The frame the renderer is working on now.
    frame: int | None = None
    #: Progress within the current frame, 0.0 to 1.0.
    frame_fraction: float | None = None
    #: A frame (this number) was written to disk.
    frame_done: int | None = None
    #: A file the renderer says it wrote.
    saved: str | None = None
    #: The line reports an error; this is the reason to show when the task fails.
    error: str | None = None
    #: The error means the render failed even if the program exits 0 (Blender renders the
    #: active scene when ``-S`` names none): the task fails with it.  Other error lines only
    #: explain a failure (renderers print recoverable errors too).
    fatal: bool = False


def expand_hashes(pattern: str, frame: int, default_padding: int = 4) -> str:
    """Replace a run of ``#`` in *pattern* with the frame padded to that many digits.

    Without any ``#`` the padded frame is appended before the extension is
    *not* guessed: the caller decides where frames go.
    """
    start = pattern.find("#")
    if start < 0:
        return pattern
    end = start
    while end < len(pattern) and pattern[end] == "#":
        end += 1
    return pattern[:start] + pad_frame(frame, end - start) + pattern[end:]


def hashes_to_printf(pattern: str) -> str:
    """The first run of ``#`` in *pattern* as a printf field: ``shot_####.exr`` -> ``shot_%04d.exr``.

    For programs that take printf patterns (FFmpeg, Terragen); any literal ``%``
    is doubled so it stays literal.
    """
    start = pattern.find("#")
    if start < 0:
        return pattern.replace("%", "%%")
    end = start
    while end < len(pattern) and pattern[end] == "#":
        end += 1
    head, tail = pattern[:start].replace("%", "%%"), pattern[end:].replace("%", "%%")
    return f"{head}%0{end - start}d{tail}"


class Renderer:
    """Base class of every renderer; subclasses override the class attributes and methods."""

    #: Name used on the command line and in the store (``drqueue submit blender``).
    name: ClassVar[str] = ""
    #: One line for ``drqueue renderers``.
    description: ClassVar[str] = ""
    #: Program looked up on a slave's PATH to decide whether the slave can run this renderer;
    #: None means every slave can (the built-in renderers).
    executable: ClassVar[str | None] = None
    #: Whether a job must name a scene file.
    needs_scene: ClassVar[bool] = True
    #: The typed parameters, in the order ``--help`` shows them.
    params: ClassVar[tuple[Param, ...]] = ()
    #: The renderer's own known failures, as the program words them (``FailureRule.of(regex,
    #: class)``; a ``path`` group names the missing file): matched after the farm's rules and
    #: before drqueue.failures.BUILT_IN_RULES (docs/renderers.md, "Failure classes").
    failure_patterns: ClassVar[tuple[FailureRule, ...]] = ()

    # -- parameters ---------------------------------------------------------------------------

    @classmethod
    def validate_params(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Return the full, typed parameter dict for *given*, or raise InvalidJob."""
        known = {p.name: p for p in cls.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise InvalidJob(f"renderer {cls.name!r} has no parameter {unknown[0]!r}")
        result: dict[str, Any] = {}
        for param in cls.params:
            value = given.get(param.name, param.default)
            if value is None and param.required:
                raise InvalidJob(f"renderer {cls.name!r} needs the parameter {param.name!r}")
            result[param.name] = param.convert(value)
        return result

    @classmethod
    def validate_job(cls, spec: JobSpec) -> None:
        """Refuse (InvalidJob) or adjust a whole job at submit, once its params are typed.

        For rules on the job as a whole that would otherwise fail every task at run time
        (POV-Ray's negative frames), or that fix how it is split (FFmpeg's one movie)."""

    @classmethod
    def path_params(cls) -> list[str]:
        """Names of the parameters that hold paths (mapped per OS before commands are built)."""
        return [p.name for p in cls.params if p.type == "path"]

    @classmethod
    def available(cls) -> bool:
        """Whether this machine can run the renderer (its executable is on PATH)."""
        return cls.executable is None or shutil.which(cls.executable) is not None

    # -- commands ---------------------------------------------------------------------------

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        """The argument lists that render ctx.block, run in order; each must exit 0.

        Renderers that take a frame range render the block in one command; those
        that take one frame at a time return one command per frame.
        """
        raise NotImplementedError

    def outputs(self, ctx: RenderContext) -> list[str]:
        """Files the block must leave behind, non-empty; [] when the renderer's outputs
        cannot be known in advance.  By default: the ``output`` parameter, a pattern whose
        ``####`` is each frame of the block (one file when it has no ``#``)."""
        pattern = ctx.params.get("output")
        if not pattern:
            return []
        return list(dict.fromkeys(expand_hashes(pattern, frame) for frame in ctx.block.frames))

    def frame_of_command(self, ctx: RenderContext, index: int) -> int:
        """The frame exported as DRQUEUE_FRAME while command *index* runs."""
        frames = ctx.block.frames
        commands = self.commands(ctx)
        if len(commands) == len(frames):
            return frames[index]
        return ctx.block.start

    # -- output parsing ------------------------------------------------------------------------

    def parse_line(self, line: str) -> LineInfo | None:
        """Read one line of output (already split on ``\\n`` and ``\\r``); None if it says nothing."""
        return None
