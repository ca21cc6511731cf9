"""Real renders on a real farm: Blender, POV-Ray and FFmpeg run by `drqueue` slaves.

One farm (master, slaves alpha and beta with one slot each) serves the module;
jobs go in through the CLI as a user would submit them.  Nothing is mocked:
the renders are Debian's Blender 3.4, POV-Ray 3.7 and FFmpeg 5.1.

These tests must run in CI, so a missing program fails them; set
``DRQUEUE_ALLOW_SKIP=1`` to skip them instead on a machine without the programs.

Run time: a Blender frame of the main scene lasts about 2.5 s (64x48 pixels,
1000 Cycles samples on one thread), long enough to watch a task's progress
move; everything else renders in well under a second per frame.

The built-in fractal renderer's job (the demo's) runs on both stores: on the
module's farm (SQLite), and on a second farm of its own on MongoDB over the wire.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from farm import FARM_STORES, Farm, require_programs, two_slave_farm, wait_for

from drqueue.errors import NotFound
from drqueue.renderers import all_renderers
from drqueue.store import open_store

pytestmark = [pytest.mark.renderer, pytest.mark.timeout(600)]

SCENES = Path(__file__).resolve().parent / "scenes"
PROGRAMS = ("blender", "povray", "ffmpeg", "ffprobe")
#: Cycles samples of the main scene: about 2.5 s a frame on one thread.
SAMPLES = 1000
#: Cycles samples of the scene that is killed mid-render: minutes a frame.
SLOW_SAMPLES = 200_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def programs() -> None:
    """Fail (or, with DRQUEUE_ALLOW_SKIP=1, skip) when a renderer is not installed."""
    require_programs(*PROGRAMS)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("renders")


@pytest.fixture(scope="module")
def scenes(work: Path) -> dict[str, Path]:
    """The Blender scenes, built by Blender's own Python: "main" and "slow" (to be killed)."""
    wanted = {"main": SAMPLES, "slow": SLOW_SAMPLES}
    paths = {name: work / f"{name}.blend" for name in wanted}
    procs = {
        name: subprocess.Popen(
            ["blender", "-b", "--factory-startup", "--python-exit-code", "1",
             "--python", str(SCENES / "make_scene.py"), "--", str(paths[name]), str(samples)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        for name, samples in wanted.items()
    }  # fmt: skip
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0 and paths[name].is_file(), out.decode(errors="replace")[-3000:]
    return paths


def cli(
    farm: Farm, *args: Any, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess:
    return farm.cli(*map(str, args), check=check, timeout=timeout)


def submit(farm: Farm, *args: Any) -> int:
    """`drqueue submit ARGS`; the job's id."""
    return int(cli(farm, "submit", *args).stdout.split()[0])


def blender_processes(scene: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if cmdline and "blender" in os.path.basename(cmdline[0]) and str(scene) in cmdline:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except psutil.Error:
                pass
    return found


def ffprobe_frames(movie: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(movie)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return int(out.stdout.strip())


@pytest.fixture(scope="module")
def blender_run(farm: Farm, scenes: dict[str, Path], work: Path) -> dict[str, Any]:
    """Frames 1-8 of the main scene in blocks of 2, submitted with `--wait`, and an FFmpeg job
    submitted `--after` it; the tasks are polled while Blender renders."""
    frames = work / "frames"
    stderr = work / "submit-blender.err"  # a file: a pipe nobody reads could fill and block it
    with open(stderr, "w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drqueue.cli.main", "submit", "blender", str(scenes["main"]),
             "-s", "1", "-e", "8", "-b", "2", "--engine", "CYCLES", "--cycles-device", "CPU",
             "--threads", "1", "--output", str(frames / "f_####"), "--retries", "1",
             "--name", "e2e-blender", "--wait"],
            stdout=subprocess.PIPE, stderr=err_file, stdin=subprocess.DEVNULL, text=True, env=farm.env,
        )  # fmt: skip
    try:
        first = proc.stdout.readline()
        if not first.strip().isdigit():
            proc.wait(30)
            pytest.fail(f"submit printed {first!r}: {stderr.read_text()}")
        job_id = int(first)
        movie = work / "movie" / "shot.mp4"
        ffmpeg_id = submit(
            farm, "ffmpeg", "-s", 1, "-e", 8, "-b", 8, "--input", frames / "f_####.png",
            "--output", movie, "--fps", 8, "--after", job_id, "--retries", 0, "--name", "e2e-movie",
        )  # fmt: skip
        progress_seen: list[tuple[int, str, float]] = []
        ffmpeg_early: list[str] = []
        deadline = time.monotonic() + 300
        while proc.poll() is None:
            assert time.monotonic() < deadline, "the Blender job did not end in 300 s"
            # The movie's tasks first: if the Blender job had not ended after, they were queued then.
            movie_states = [t["state"] for t in farm.client.tasks(ffmpeg_id)]
            if farm.client.job(job_id)["status"] not in ("finished", "error", "cancelled"):
                ffmpeg_early += [state for state in movie_states if state != "queued"]
            for task in farm.client.tasks(job_id):
                if task["state"] == "running" and 0 < task["progress"] < 1:
                    progress_seen.append((task["index"], task["computer"], task["progress"]))
            time.sleep(0.2)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {
        "job_id": job_id, "ffmpeg_id": ffmpeg_id, "frames": frames, "movie": movie,
        "returncode": proc.returncode, "stderr": stderr.read_text(), "progress_seen": progress_seen,
        "ffmpeg_early": ffmpeg_early,
    }  # fmt: skip


# -- 1. Blender ------------------------------------------------------------------------------------


def test_blender_job_renders_eight_frames_on_both_slaves_with_progress(farm, blender_run):
    job_id = blender_run["job_id"]
    job = farm.client.job(job_id)
    assert blender_run["returncode"] == 0, blender_run["stderr"]
    assert job["status"] == "finished", job
    assert job["counts"]["total"] == 4 and job["counts"]["finished"] == 4

    frames = blender_run["frames"]
    expected = [f"f_{frame:04d}.png" for frame in range(1, 9)]
    assert sorted(p.name for p in frames.iterdir()) == expected
    for name in expected:
        data = (frames / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 100, name

    # Progress was reported while the tasks ran, not only at their end.
    assert blender_run["progress_seen"], "no task was ever seen running with 0 < progress < 1"

    tasks = farm.client.tasks(job_id)
    assert [(t["start"], t["end"]) for t in tasks] == [(1, 2), (3, 4), (5, 6), (7, 8)]
    assert all(t["state"] == "finished" and t["progress"] == 1.0 for t in tasks)
    assert {t["computer"] for t in tasks} == {"alpha", "beta"}, "both slaves render"

    log = cli(farm, "log", job_id, 3).stdout
    saved = [line for line in log.splitlines() if line.startswith("Saved:")]
    assert saved == [f"Saved: '{frames / name}'" for name in ("f_0003.png", "f_0004.png")], log
    assert "'--cycles-device', 'CPU'" in log and "'-j', '1'" in log


# -- 2. POV-Ray ------------------------------------------------------------------------------------


def test_povray_clock_animation_writes_frames_named_as_povray_names_them(farm, work):
    out = work / "pov"
    job_id = submit(
        farm, "povray", SCENES / "clock.pov", "-s", 1, "-e", 6, "-b", 3, "--output", out / "clock.png",
        "--width", 64, "--height", 48, "--retries", 0, "--name", "e2e-povray", "--wait",
    )  # fmt: skip
    assert farm.client.job(job_id)["status"] == "finished"
    # The frame is padded to the digits of the last frame (6: one digit).
    expected = [f"clock{frame}.png" for frame in range(1, 7)]
    assert sorted(p.name for p in out.iterdir()) == expected
    for name in expected:
        assert (out / name).read_bytes().startswith(PNG_MAGIC), name
    # The clock runs 0 -> 1 over the whole job, across both blocks: frames 1-5 are five moments of
    # one orbit (frame 6, a full turn, looks like frame 1 up to rounding).
    images = [(out / name).read_bytes() for name in expected]
    assert len(set(images[:5])) == 5
    log = cli(farm, "log", job_id, 5).stdout
    assert "+KFI1" in log and "+KFF6" in log and "+SF4" in log and "+EF6" in log


# -- 3. FFmpeg ---------------------------------------------------------------------------------------


def test_ffmpeg_job_after_the_blender_job_assembles_its_frames(farm, blender_run):
    ffmpeg_id = blender_run["ffmpeg_id"]
    job = farm.wait_job(ffmpeg_id, timeout=120)
    (task,) = farm.client.tasks(ffmpeg_id)
    assert job["status"] == "finished", task
    assert blender_run["ffmpeg_early"] == [], "the ffmpeg job ran before the Blender job ended"
    blender_ends = max(t["ended_at"] for t in farm.client.tasks(blender_run["job_id"]))
    assert task["started_at"] >= blender_ends
    assert ffprobe_frames(blender_run["movie"]) == 8


# -- 4. failures -------------------------------------------------------------------------------------


def test_missing_blend_ends_at_once_as_a_missing_asset_with_blenders_reason(farm, work):
    """A missing scene is a missing asset (issue 15): no retry on another host, every frame
    would fail the same way."""
    missing = work / "no-such-scene.blend"
    result = cli(
        farm, "submit", "blender", missing, "-s", 1, "-e", 1, "--no-scene-check", "--retries", 1,
        "--output", work / "missing" / "f_####", "--name", "e2e-missing", "--wait", check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    job_id = int(result.stdout.split()[0])
    assert farm.client.job(job_id)["status"] == "error"
    (task,) = farm.client.tasks(job_id)
    assert task["state"] == "error"
    assert task["attempts"] == 1  # --retries 1 not used
    assert task["failure_class"] == "missing-asset"
    assert str(missing) in task["failure_detail"]
    assert task["exit_code"] == 1
    assert f"Cannot read file '{missing}'" in task["reason"], task["reason"]


def test_ffmpeg_fails_when_a_frame_was_deleted(farm, work, blender_run):
    assert farm.wait_job(blender_run["ffmpeg_id"], timeout=120)["status"] == "finished"
    gap = work / "gap"
    shutil.copytree(blender_run["frames"], gap)
    (gap / "f_0005.png").unlink()
    result = cli(
        farm, "submit", "ffmpeg", "-s", 1, "-e", 8, "-b", 8, "--input", gap / "f_####.png",
        "--output", gap / "shot.mp4", "--retries", 0, "--name", "e2e-gap", "--wait", check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    job_id = int(result.stdout.split()[0])
    (task,) = farm.client.tasks(job_id)
    assert task["state"] == "error"
    assert task["exit_code"] == 1
    assert "fewer frames" in task["reason"], task["reason"]


def test_killed_blender_job_leaves_no_blender_process(farm, scenes, work):
    scene = scenes["slow"]
    job_id = submit(
        farm, "blender", scene, "-s", 1, "-e", 2, "-b", 1, "--threads", 1,
        "--output", work / "killed" / "f_####", "--name", "e2e-kill",
    )  # fmt: skip

    def rendering() -> bool:
        running = [
            t for t in farm.client.tasks(job_id) if t["state"] == "running" and t["progress"] > 0
        ]
        return bool(running) and len(blender_processes(scene)) == 2

    wait_for(rendering, 120, 0.2, "both tasks of the slow job to render")
    cli(farm, "job", "kill", job_id)
    wait_for(
        lambda: not blender_processes(scene), 5, 0.1, "every blender process to end after the kill"
    )
    job = farm.client.job(job_id)
    assert job["control"] == "stopped"
    assert all(t["state"] == "queued" for t in farm.client.tasks(job_id))
    assert not list((work / "killed").glob("*.png"))
    cli(farm, "job", "delete", job_id, "--force")


# -- 5. a slave without the renderer -----------------------------------------------------------------


def test_slave_without_blender_gets_no_blender_task(farm, scenes, work):
    # A PATH holding what the engine and the other renderers need, but no blender.
    bin_dir = work / "bin-without-blender"
    bin_dir.mkdir()
    for name in ("sh", "povray", "ffmpeg", "ffprobe"):
        (bin_dir / name).symlink_to(shutil.which(name))
    for name in ("python", "python3"):
        (bin_dir / name).symlink_to(sys.executable)
    farm.add_slave("gamma", env={"PATH": str(bin_dir)})
    try:
        farm.wait_engines(3)

        def gamma() -> dict[str, Any] | None:
            try:
                return farm.client.computer("gamma")
            except NotFound:
                return None

        wait_for(lambda: (c := gamma()) and c["online"] and c["renderers"], 60, 0.2, "gamma's info")
        shown = json.loads(cli(farm, "computer", "show", "gamma", "--json").stdout)
        assert "blender" not in shown["renderers"]
        assert {"povray", "ffmpeg"} <= set(shown["renderers"])
        text = cli(farm, "computer", "show", "gamma").stdout
        assert "povray" in text and "blender" not in text
        assert "blender" in farm.client.computer("alpha")["renderers"]

        # Four tasks for two able slaves: an idle gamma would take some if it were offered them.
        job_id = submit(
            farm, "blender", scenes["main"], "-s", 1, "-e", 4, "-b", 1, "--threads", 1,
            "--output", work / "no-gamma" / "f_####", "--name", "e2e-no-gamma", "--wait",
        )  # fmt: skip
        tasks = farm.client.tasks(job_id)
        assert all(t["state"] == "finished" for t in tasks)
        assert {t["computer"] for t in tasks} <= {"alpha", "beta"}
        # gamma does render what it has: a POV-Ray job pinned to it runs there.
        pov_id = submit(
            farm, "povray", SCENES / "clock.pov", "-s", 1, "-e", 2, "-b", 2, "--hosts", "gamma",
            "--output", work / "gamma-pov" / "clock.png", "--width", 32, "--height", 24, "--wait",
        )  # fmt: skip
        assert [t["computer"] for t in farm.client.tasks(pov_id)] == ["gamma"]
        # No Blender task of any job in this module ever ran on gamma.
        for job in farm.client.jobs():
            if job["renderer"] == "blender":
                assert "gamma" not in {t["computer"] for t in farm.client.tasks(job["id"])}, job
    finally:
        farm.stop_slave("gamma")


# -- 6. the CLI knows the renderers ------------------------------------------------------------------


def test_submit_help_shows_blenders_options_and_renderers_lists_all(farm):
    help_text = cli(farm, "submit", "blender", "--help").stdout
    for option in (
        "--engine",
        "--cycles-device",
        "--scene-name",
        "--threads",
        "--output",
        "--format",
    ):
        assert option in help_text, option
    assert "CYCLES" in help_text and "Blender" in help_text

    listed = cli(farm, "renderers").stdout
    # One row per renderer; a row's name is in the first column, continuation lines leave it blank.
    names = {line.split()[0] for line in listed.splitlines()[1:] if line[1:2].strip()}
    assert set(all_renderers()) <= names, set(all_renderers()) - names
    rows = {row["name"]: row for row in json.loads(cli(farm, "renderers", "--json").stdout)}
    assert set(rows) == set(all_renderers())
    assert all(rows[name]["installed_here"] for name in ("blender", "povray", "ffmpeg"))


# -- 7. the built-in fractal renderer, on each store -------------------------------------------------


@pytest.fixture(scope="module")
def mongo_farm(tmp_path_factory, store_settings) -> Farm:
    """A farm like the module's (alpha and beta, one slot each) on MongoDB over the wire."""
    farm = two_slave_farm(tmp_path_factory.mktemp("farm-mongo"), **store_settings("mongo"))
    yield farm
    farm.stop()


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height, from its IHDR chunk."""
    assert data.startswith(PNG_MAGIC) and data[12:16] == b"IHDR", data[:16]
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("store", FARM_STORES)
def test_fractal_job_renders_every_frame_and_the_store_counts_each_once(request, store, work):
    """The demo's job, smaller: 8 frames of the Julia set in blocks of 2, on both slaves."""
    farm = request.getfixturevalue("farm" if store == "sqlite" else "mongo_farm")
    out = work / f"fractal-{store}"
    job_id = submit(
        farm, "fractal", "-s", 1, "-e", 8, "-b", 2, "--output", out / "frame_####.png",
        "--width", 96, "--height", 72, "--iterations", 120, "--name", f"e2e-fractal-{store}",
        "--wait",
    )  # fmt: skip
    job = farm.client.job(job_id)
    assert job["status"] == "finished", job
    assert job["counts"] == {
        "total": 4,
        "queued": 0,
        "running": 0,
        "finished": 4,
        "error": 0,
        "cancelled": 0,
    }
    expected = [f"frame_{frame:04d}.png" for frame in range(1, 9)]
    assert sorted(p.name for p in out.iterdir()) == expected
    images = [(out / name).read_bytes() for name in expected]
    assert all(png_size(data) == (96, 72) for data in images)
    assert len(set(images)) == 8, "each frame is its own moment of the animation"

    tasks = farm.client.tasks(job_id)
    assert [(t["start"], t["end"]) for t in tasks] == [(1, 2), (3, 4), (5, 6), (7, 8)]
    assert all(t["state"] == "finished" and t["progress"] == 1.0 for t in tasks), tasks
    assert [t["failures"] for t in tasks] == [0] * 4
    assert {t["computer"] for t in tasks} <= {"alpha", "beta"}
    log = cli(farm, "log", job_id, 3).stdout
    saved = [line for line in log.splitlines() if line.startswith("Saved:")]
    assert saved == [f"Saved: '{out / name}'" for name in ("frame_0003.png", "frame_0004.png")]

    # In the store itself: each task's finish counted once, and nothing for its check to repair.
    with contextlib.closing(open_store(farm.config.store_url)) as stored:
        assert stored.get_job(job_id).counts.finished == 4
        assert stored.get_job(job_id).timed_tasks == 4, "a finished task was counted twice"
        assert stored.check_integrity() == []
