"""A render → comp → encode chain that overlaps frame by frame (issue 15, part 2), on a real
farm with the real POV-Ray and FFmpeg.

* the render: POV-Ray's clock scene, 8 frames one per task, on the slave ``render`` only;
* the comp: a shell job ``--after RENDER:frames`` that runs FFmpeg on each rendered frame
  (negated, into a file of its own), on the slave ``comp`` only;
* the encode: an FFmpeg job ``--after COMP`` (the whole job), which makes the movie.

Why the overlap is guaranteed by the design, not by timing: the render's frames run one after
the other on its one slot, while the comp's slot runs nothing else, so the comp's first task is
sent as soon as the render's first frame is recorded, at the latest when the render's second
frame is sent; the render's last frame then still has seven frames to go.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from farm import Farm, require_programs

SCENES = Path(__file__).resolve().parent / "scenes"
PROGRAMS = ("povray", "ffmpeg", "ffprobe")
FRAMES = 8


@pytest.fixture(scope="module", autouse=True)
def programs() -> None:
    require_programs(*PROGRAMS)


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    farm = Farm(tmp_path_factory.mktemp("chain"))
    farm.start_master()
    farm.add_slave("render", slots=1)
    farm.add_slave("comp", slots=1)
    farm.wait_engines(2)
    yield farm
    farm.stop()


def submit(farm: Farm, *args: Any) -> int:
    return int(farm.cli("submit", *map(str, args)).stdout.split()[0])


def ffprobe_frames(movie: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(movie)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return int(out.stdout.strip())


def test_render_comp_encode_chain_overlaps_frame_by_frame(farm, tmp_path):
    rendered, comped, movie = tmp_path / "render", tmp_path / "comp", tmp_path / "shot.mp4"
    comped.mkdir()
    render = submit(
        farm, "povray", SCENES / "clock.pov", "-s", 1, "-e", FRAMES, "--output",
        rendered / "clock.png", "--width", 480, "--height", 360, "--antialias", 0.3,
        "--threads", 1, "--retries", 0, "--hosts", "render", "--name", "chain-render",
    )  # fmt: skip
    # POV-Ray pads the frame to the last frame's digits: clock1.png ... clock8.png.
    comp = submit(
        farm, "shell", "--cmd",
        f"ffmpeg -v error -y -i {rendered}/clock{{frame}}.png -vf negate "
        f"{comped}/comp_{{padframe}}.png",
        "-s", 1, "-e", FRAMES, "--after", f"{render}:frames", "--retries", 0,
        "--hosts", "comp", "--name", "chain-comp",
    )  # fmt: skip
    encode = submit(
        farm, "ffmpeg", "-s", 1, "-e", FRAMES, "-b", FRAMES, "--input", comped / "comp_####.png",
        "--output", movie, "--after", comp, "--retries", 0, "--hosts", "comp",
        "--name", "chain-encode",
    )  # fmt: skip
    for job_id in (render, comp, encode):
        job = farm.wait_job(job_id, timeout=300)
        assert job["status"] == "finished", (job, farm.client.tasks(job_id))

    render_tasks = {t["index"]: t for t in farm.client.tasks(render)}
    comp_tasks = {t["index"]: t for t in farm.client.tasks(comp)}
    (encode_task,) = farm.client.tasks(encode)
    # Frame by frame: each comp frame after its own render frame ...
    for index, task in comp_tasks.items():
        assert task["started_at"] >= render_tasks[index]["ended_at"], index
    # ... and the comp began before the render ended.
    render_ends = max(t["ended_at"] for t in render_tasks.values())
    assert min(t["started_at"] for t in comp_tasks.values()) < render_ends
    assert comp_tasks[0]["started_at"] < render_ends
    # The encode waited for the whole comp (job-level --after).
    assert encode_task["started_at"] >= max(t["ended_at"] for t in comp_tasks.values())
    assert sorted(p.name for p in comped.iterdir()) == [
        f"comp_{frame:04d}.png" for frame in range(1, FRAMES + 1)
    ]
    assert ffprobe_frames(movie) == FRAMES
