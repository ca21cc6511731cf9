"""A small built-in renderer: an animated Julia set, one PNG per frame.

It needs nothing but Python, so a fresh machine can try a farm with no
renderer installed (``drqueue up``).  It runs as its own process, like any
renderer (``python -m drqueue.renderers.fractal``), prints Blender-like
progress lines (``Fra:12 Row 40/120``, ``Saved: '…'``) and exits non-zero on
error, so the whole runner path is exercised.
"""

from __future__ import annotations

import argparse
import cmath
import os
import struct
import sys
import zlib

from drqueue.renderers.base import LineInfo, Param, RenderContext, Renderer, expand_hashes


class Fractal(Renderer):
    name = "fractal"
    description = "Built-in animated Julia set (pure Python), one PNG per frame"
    executable = None
    needs_scene = False
    params = (
        Param("output", "path", required=True, help="output pattern, #### is the padded frame"),
        Param("width", "int", minimum=1, maximum=8192, default=160, help="image width in pixels"),
        Param("height", "int", minimum=1, maximum=8192, default=120, help="image height in pixels"),
        Param(
            "iterations",
            "int",
            minimum=1,
            maximum=8192,
            default=60,
            help="iterations per pixel (more is slower and finer)",
        ),
    )

    def commands(self, ctx: RenderContext) -> list[list[str]]:
        p = ctx.params
        return [
            [
                sys.executable,
                "-m",
                "drqueue.renderers.fractal",
                "--start",
                str(ctx.block.start),
                "--end",
                str(ctx.block.end),
                "--step",
                str(ctx.block.step),
                "--output",
                p["output"],
                "--width",
                str(p["width"]),
                "--height",
                str(p["height"]),
                "--iterations",
                str(p["iterations"]),
            ]
        ]

    def outputs(self, ctx: RenderContext) -> list[str]:
        return [expand_hashes(ctx.params["output"], frame) for frame in ctx.block.frames]

    def parse_line(self, line: str) -> LineInfo | None:
        if line.startswith("Fra:"):
            head, _, rest = line.partition(" ")
            frame = int(head[4:])
            if rest.startswith("Row "):
                done, _, total = rest[4:].partition("/")
                return LineInfo(frame=frame, frame_fraction=int(done) / int(total))
            return LineInfo(frame=frame)
        if line.startswith("Saved: "):
            path = line[len("Saved: ") :].strip("'")
            return LineInfo(saved=path, frame_done=_frame_from_saved(path))
        if line.startswith("Error: "):
            return LineInfo(error=line)
        return None


def _frame_from_saved(path: str) -> int | None:
    digits = "".join(ch for ch in os.path.basename(path).rsplit(".", 1)[0][-8:] if ch.isdigit())
    return int(digits) if digits else None


# -- the renderer process itself ---------------------------------------------------------------


def _palette(i: int, iterations: int) -> tuple[int, int, int]:
    if i >= iterations:
        return (0, 0, 0)
    t = (i / iterations) ** 0.4  # lift the dim outer bands
    return (
        int(9 * (1 - t) * t**3 * 255),
        int(15 * (1 - t) ** 2 * t**2 * 255),
        int(8.5 * (1 - t) ** 3 * t * 255),
    )


def write_png(path: str, width: int, height: int, rows: list[bytes]) -> None:
    """Write 8-bit RGB rows as a PNG file (atomically: a reader never sees half a frame)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + row for row in rows)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as out:
        out.write(png)
    os.replace(tmp, path)


def render_frame(frame: int, width: int, height: int, iterations: int, output: str) -> str:
    angle = frame * 0.05
    c = 0.7885 * cmath.exp(1j * angle)
    rows = []
    for y in range(height):
        row = bytearray()
        for x in range(width):
            z = complex(3.2 * (x / width - 0.5), 2.4 * (y / height - 0.5))
            i = 0
            while i < iterations and abs(z) < 2:
                z = z * z + c
                i += 1
            row.extend(_palette(i, iterations))
        rows.append(bytes(row))
        if y % max(1, height // 10) == 0 or y == height - 1:
            print(f"Fra:{frame} Row {y + 1}/{height}", flush=True)
    path = expand_hashes(output, frame)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_png(path, width, height, rows)
    print(f"Saved: '{path}'", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drqueue-fractal", description=Fractal.description)
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--end", type=int, required=True)
    parser.add_argument("--step", type=int, default=1)
    parser.add_argument("--output", required=True)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--iterations", type=int, default=60)
    args = parser.parse_args(argv)
    if "#" not in args.output:
        print("Error: --output must contain #### for the frame number", flush=True)
        return 2
    try:
        for frame in range(args.start, args.end + 1, args.step):
            render_frame(frame, args.width, args.height, args.iterations, args.output)
    except OSError as exc:
        print(f"Error: cannot write frame: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
