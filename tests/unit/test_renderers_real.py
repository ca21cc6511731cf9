"""The built command lines run by the real Blender, POV-Ray and FFmpeg, when installed.

Each test renders a few tiny frames (a few seconds in all) and checks that the
program exits 0, that every file ``outputs()`` names exists, and that the
progress parser sees every frame finish.  Skipped where the program is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from drqueue.models import FrameBlock
from drqueue.renderers.base import LineInfo, RenderContext
from drqueue.renderers.blender import Blender
from drqueue.renderers.ffmpeg import FFmpeg
from drqueue.renderers.povray import Povray

SCENES = Path(__file__).resolve().parents[1] / "e2e" / "scenes"

pytestmark = pytest.mark.renderer


def needs(program: str):
    return pytest.mark.skipif(shutil.which(program) is None, reason=f"{program} is not installed")


def run(renderer, ctx: RenderContext, cwd: Path) -> tuple[list[int], list[LineInfo]]:
    """Run every command like the runner does; return the exit codes and the parsed lines."""
    codes, infos = [], []
    for argv in renderer.commands(ctx):
        proc = subprocess.run(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120
        )
        codes.append(proc.returncode)
        text = proc.stdout.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
        infos += [info for line in text.split("\n") if (info := renderer.parse_line(line))]
        if proc.returncode:
            break
    return codes, infos


@needs("blender")
def test_blender_renders_frames_by_step_from_the_e2e_scene(tmp_path):
    scene = tmp_path / "scene.blend"
    subprocess.run(
        ["blender", "-b", "--factory-startup", "--python", str(SCENES / "make_scene.py"), "--", str(scene)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    params = Blender.validate_params({"output": str(tmp_path / "out" / "f_####"), "threads": 2})
    ctx = RenderContext(block=FrameBlock(1, 3, 2), scene=str(scene), params=params)
    renderer = Blender()
    codes, infos = run(renderer, ctx, tmp_path)
    assert codes == [0]
    outputs = renderer.outputs(ctx)
    assert outputs == [str(tmp_path / "out" / "f_0001.png"), str(tmp_path / "out" / "f_0003.png")]
    assert all(Path(path).stat().st_size > 0 for path in outputs)
    assert [(i.frame_done, i.saved) for i in infos if i.saved] == [(1, outputs[0]), (3, outputs[1])]
    assert not [i.error for i in infos if i.error]


@needs("blender")
def test_blender_missing_scene_exits_non_zero_with_an_error_line(tmp_path):
    params = Blender.validate_params({"output": str(tmp_path / "f_####")})
    ctx = RenderContext(
        block=FrameBlock(1, 1), scene=str(tmp_path / "missing.blend"), params=params
    )
    codes, infos = run(Blender(), ctx, tmp_path)
    assert codes == [1]
    assert [i.error for i in infos if i.error] == [
        f"Error: Cannot read file '{tmp_path / 'missing.blend'}': No such file or directory"
    ]


@needs("povray")
def test_povray_renders_a_stepped_block_of_the_clock_scene(tmp_path):
    params = Povray.validate_params(
        {"output": str(tmp_path / "clock.png"), "width": 64, "height": 48}
    )
    ctx = RenderContext(
        block=FrameBlock(2, 6, 2),
        scene=str(SCENES / "clock.pov"),
        params=params,
        job_frames=FrameBlock(1, 12),
    )
    renderer = Povray()
    codes, infos = run(renderer, ctx, tmp_path)
    assert codes == [0]
    outputs = renderer.outputs(ctx)
    assert outputs == [str(tmp_path / f"clock{n:02d}.png") for n in (2, 4, 6)]
    assert all(Path(path).stat().st_size > 0 for path in outputs)
    assert [(i.frame_done, i.saved) for i in infos if i.frame_done is not None] == list(
        zip((2, 4, 6), outputs, strict=True)
    )
    assert not [i.error for i in infos if i.error]


@needs("ffmpeg")
def test_ffmpeg_movie_of_all_frames_passes_and_a_gap_fails_the_check(tmp_path):
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=1",
         "-frames:v", "6", "-start_number", "1", str(tmp_path / "f_%04d.png")],
        check=True, timeout=60,
    )  # fmt: skip
    params = FFmpeg.validate_params(
        {"input": str(tmp_path / "f_####.png"), "output": str(tmp_path / "m.mp4")}
    )
    renderer = FFmpeg()

    whole = RenderContext(block=FrameBlock(1, 6), params=params)
    assert run(renderer, whole, tmp_path)[0] == [0, 0]

    stepped = RenderContext(block=FrameBlock(1, 5, 2), params=params)
    assert run(renderer, stepped, tmp_path)[0] == [0, 0]

    (tmp_path / "f_0004.png").unlink()
    codes, infos = run(renderer, whole, tmp_path)
    assert codes == [0, 1]  # FFmpeg stops at the gap with exit 0; the check fails
    assert "fewer frames than the job" in [i.error for i in infos if i.error][-1]

    codes, infos = run(renderer, RenderContext(block=FrameBlock(3, 7, 2), params=params), tmp_path)
    assert codes[-1] == 1
    assert any("Impossible to open" in (i.error or "") for i in infos)
