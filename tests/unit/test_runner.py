"""The task runner outside an engine: environment, failures, time-outs, logs and usage.

Each test runs real processes through :func:`drqueue.slave.runner.run_task` with the
``shell`` renderer and the task spec the master really sends
(:func:`drqueue.master.dispatcher.task_spec`).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from drqueue.config import Config
from drqueue.master.dispatcher import task_spec
from drqueue.models import (
    MAX_OUTPUTS,
    Counts,
    FrameBlock,
    Job,
    JobControl,
    JobSpec,
    Task,
    TaskState,
    split_frames,
)
from drqueue.renderers.blender import Blender
from drqueue.renderers.shell import Shell
from drqueue.slave import runner
from drqueue.slave.runner import _Progress, render_environment, run_task

DRQUEUE_VARIABLES = {
    "DRQUEUE_FRAME",
    "DRQUEUE_STARTFRAME",
    "DRQUEUE_ENDFRAME",
    "DRQUEUE_STEPFRAME",
    "DRQUEUE_BLOCKSIZE",
    "DRQUEUE_PADFRAME",
    "DRQUEUE_PADFRAMES",
    "DRQUEUE_JOBID",
    "DRQUEUE_JOBNAME",
    "DRQUEUE_OWNER",
    "DRQUEUE_SCENEFILE",
    "DRQUEUE_RENDERDIR",
    "DRQUEUE_LOGFILE",
    "DRQUEUE_OS",
    "DRQUEUE_COMPID",
}
GPU_VARIABLES = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
    "ONEAPI_DEVICE_SELECTOR",
)


@pytest.fixture(autouse=True, params=["linux-path", "portable-path"])
def runner_path(request, monkeypatch):
    """Every test runs through both of the runner's paths: Linux's (pidfd, poll, wait4) and the
    portable one (subprocess, a reader thread, psutil) that every other OS uses."""
    monkeypatch.setenv("DRQUEUE_PORTABLE_RUNNER", "1" if request.param == "portable-path" else "0")
    assert runner.portable_runner() is (request.param == "portable-path")
    return request.param


@pytest.fixture(autouse=True)
def slave_environment(monkeypatch):
    """The engine environment `drqueue slave` sets: a slave name and no GPU device."""
    monkeypatch.setenv("DRQUEUE_SLAVE_NAME", "render07")
    monkeypatch.delenv("DRQUEUE_GPU_DEVICE", raising=False)
    for name in GPU_VARIABLES:
        monkeypatch.delenv(name, raising=False)


SCENES = Path(__file__).resolve().parents[1] / "e2e" / "scenes"


def make_spec(
    tmp_path: Path,
    cmd: str,
    *,
    start: int = 1,
    end: int = 1,
    step: int = 1,
    block_size: int = 1,
    task_index: int = 0,
    output: str | None = None,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    scene: str | None = None,
    log_path: Path | None = None,
    attempt: str = "attempt-1",
) -> dict[str, Any]:
    """The task spec of task *task_index* of a shell job, as the dispatcher builds it (its log
    named per attempt, as the dispatcher names it)."""
    params = Shell.validate_params({"cmd": cmd, **({"output": output} if output else {})})
    spec = JobSpec(
        "shell",
        start,
        end,
        name="shot-010 comp",
        owner="ann",
        scene=scene,
        step=step,
        block_size=block_size,
        timeout=timeout,
        env=env or {},
        params=params,
    )
    block = split_frames(start, end, step, block_size)[task_index]
    job = Job(
        id=42, spec=spec, control=JobControl.ACTIVE, counts=Counts(), submitted_at=time.time()
    )
    task = Task(
        id=420 + task_index, job_id=42, index=task_index, block=block, state=TaskState.DISPATCHED
    )
    log = log_path or tmp_path / "logs" / "42" / f"{task_index}.{attempt[:12]}.log"
    return task_spec(job, task, attempt, str(log), Config(root=tmp_path))


def blender_spec(tmp_path: Path, scene: Path, **params: Any) -> dict[str, Any]:
    """The task spec of a one-frame Blender job."""
    spec = JobSpec(
        "blender", 1, 1, name="shot-020", owner="ann", scene=str(scene),
        params=Blender.validate_params(params),
    )  # fmt: skip
    job = Job(
        id=43, spec=spec, control=JobControl.ACTIVE, counts=Counts(), submitted_at=time.time()
    )
    task = Task(id=430, job_id=43, index=0, block=FrameBlock(1, 1), state=TaskState.DISPATCHED)
    log = tmp_path / "logs" / "43" / "0.log"
    return task_spec(job, task, "attempt-1", str(log), Config(root=tmp_path))


@pytest.fixture(scope="module")
def blend_scene(tmp_path_factory) -> Path:
    """The end-to-end tests' Blender scene (4 samples: well under a second a frame)."""
    if shutil.which("blender") is None:
        if os.environ.get("DRQUEUE_ALLOW_SKIP") == "1":
            pytest.skip("blender not on PATH")
        pytest.fail(
            "blender not on PATH (`make renderers` installs it; DRQUEUE_ALLOW_SKIP=1 skips)"
        )
    path = tmp_path_factory.mktemp("blend") / "main.blend"
    made = subprocess.run(
        ["blender", "-b", "--factory-startup", "--python-exit-code", "1",
         "--python", str(SCENES / "make_scene.py"), "--", str(path), "4"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert made.returncode == 0 and path.is_file(), made.stdout[-3000:]
    return path


def marker_processes(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line mentions *marker*."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(marker in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def unique_sleep() -> str:
    """A sleep duration that is also a unique marker in the process table (GNU sleep takes 299.8…)."""
    return f"299.8{random.randrange(10**8, 10**9)}"


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {condition}")


# -- the render environment ---------------------------------------------------------------------


def test_render_environment_has_every_drqueue_variable(tmp_path):
    scene = tmp_path / "proj" / "shot.blend"
    spec = make_spec(
        tmp_path, "true", start=-4, end=20, step=2, block_size=3, task_index=2, scene=str(scene)
    )
    env = render_environment(spec, 8, str(scene))
    assert {name for name in env if name.startswith("DRQUEUE_")} >= DRQUEUE_VARIABLES
    assert {name: env[name] for name in sorted(DRQUEUE_VARIABLES)} == {
        "DRQUEUE_BLOCKSIZE": "3",
        "DRQUEUE_COMPID": "render07",
        "DRQUEUE_ENDFRAME": "20",
        "DRQUEUE_FRAME": "8",
        "DRQUEUE_JOBID": "42",
        "DRQUEUE_JOBNAME": "shot-010 comp",
        "DRQUEUE_LOGFILE": str(tmp_path / "logs" / "42" / "2.attempt-1.log"),
        "DRQUEUE_OS": "linux",
        "DRQUEUE_OWNER": "ann",
        "DRQUEUE_PADFRAME": "0008",
        "DRQUEUE_PADFRAMES": "4",
        "DRQUEUE_RENDERDIR": str(tmp_path / "proj"),
        "DRQUEUE_SCENEFILE": str(scene),
        "DRQUEUE_STARTFRAME": "-4",
        "DRQUEUE_STEPFRAME": "2",
    }


def test_render_environment_pads_negative_frames_and_has_empty_scene_without_one(tmp_path):
    env = render_environment(make_spec(tmp_path, "true", start=-3, end=3), -3, None)
    assert env["DRQUEUE_FRAME"] == "-3"
    assert env["DRQUEUE_PADFRAME"] == "-0003"
    assert env["DRQUEUE_SCENEFILE"] == ""
    assert env["DRQUEUE_RENDERDIR"] == ""


def test_render_environment_keeps_the_engine_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_LICENSE_SERVER", "lic01")
    env = render_environment(make_spec(tmp_path, "true"), 1, None)
    assert env["STUDIO_LICENSE_SERVER"] == "lic01"
    assert env["PATH"] == os.environ["PATH"]


def test_job_environment_overrides_the_engine_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_LICENSE_SERVER", "lic01")
    spec = make_spec(
        tmp_path, "true", env={"STUDIO_LICENSE_SERVER": "lic02", "OCIO": "/cfg/aces.ocio"}
    )
    env = render_environment(spec, 1, None)
    assert env["STUDIO_LICENSE_SERVER"] == "lic02"
    assert env["OCIO"] == "/cfg/aces.ocio"
    assert env["DRQUEUE_FRAME"] == "1"


def test_render_environment_names_the_gpu_slot_device_for_every_vendor(tmp_path, monkeypatch):
    monkeypatch.setenv("DRQUEUE_GPU_DEVICE", "1")
    env = render_environment(make_spec(tmp_path, "true"), 1, None)
    assert {name: env[name] for name in GPU_VARIABLES} == {
        "CUDA_VISIBLE_DEVICES": "1",
        "HIP_VISIBLE_DEVICES": "1",
        "ROCR_VISIBLE_DEVICES": "1",
        "GPU_DEVICE_ORDINAL": "1",
        "ONEAPI_DEVICE_SELECTOR": "*:1",
    }


def test_cpu_slot_sets_no_gpu_device(tmp_path):
    env = render_environment(make_spec(tmp_path, "true"), 1, None)
    assert not set(GPU_VARIABLES) & set(env)


#: What a slave started as docs/deploy.md says holds in its environment, and its engines inherit.
SLAVE_SECRETS = {
    "DRQUEUE_TOKEN": "admin-token-8f3a1c",
    "DRQUEUE_MASTER": "https://wrangler:master-password-77@render-master:7680",
    "DRQUEUE_ROOT": "/srv/drqueue-root-secret-path",
    "IPP_SESSION_KEY": "ipp-hmac-key-5d2e",
    "IPP_CURVE_SECRETKEY": "curve-secret-91bb",
    "JPY_API_TOKEN": "jupyter-token-0c4d",
}


def logged_environment(log: Path) -> dict[str, str]:
    """The variables an `env` render printed into its task log."""
    return dict(
        line.split("=", 1)
        for line in log.read_text().splitlines()
        if "=" in line and line[0] != "#"
    )


def test_a_render_sees_none_of_the_slaves_secrets(tmp_path, monkeypatch):
    for name, value in SLAVE_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DRQUEUE_ENGINE_UUID", "engine-uuid-1")
    monkeypatch.setenv("STUDIO_LICENSE_SERVER", "lic01")
    result = run_task(make_spec(tmp_path, "env"))
    assert result["status"] == "finished", result["reason"]
    log = Path(result["log_path"])
    text = log.read_text()
    for name, value in SLAVE_SECRETS.items():
        assert value not in text, f"{name} leaked into the render's log"
    seen = logged_environment(log)
    assert not set(SLAVE_SECRETS) & set(seen)
    assert {name for name in seen if name.startswith("DRQUEUE_")} == DRQUEUE_VARIABLES | {
        "DRQUEUE_ENGINE_UUID"
    }
    assert seen["DRQUEUE_ENGINE_UUID"] == "engine-uuid-1"  # how leftovers are found
    assert seen["STUDIO_LICENSE_SERVER"] == "lic01"


def test_a_jobs_env_cannot_bring_back_a_slave_secret_or_fake_the_tasks_variables(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DRQUEUE_TOKEN", SLAVE_SECRETS["DRQUEUE_TOKEN"])
    monkeypatch.setenv("DRQUEUE_ENGINE_UUID", "engine-uuid-1")
    spec = make_spec(
        tmp_path,
        "sh -c 'echo token=[$DRQUEUE_TOKEN] copy=[$COPY]; env'",
        env={
            "COPY": "$DRQUEUE_TOKEN",  # values are literal: nothing expands the slave's variables
            "DRQUEUE_FRAME": "999",
            "DRQUEUE_LOGFILE": "/tmp/elsewhere.log",
            "DRQUEUE_ENGINE_UUID": "another-engines-uuid",
            "SHOT": "010",
        },
    )
    result = run_task(spec)
    assert result["status"] == "finished", result["reason"]
    log = Path(result["log_path"])
    assert SLAVE_SECRETS["DRQUEUE_TOKEN"] not in log.read_text()
    assert "token=[] copy=[$DRQUEUE_TOKEN]" in log.read_text()
    seen = logged_environment(log)
    assert seen["DRQUEUE_FRAME"] == "1"
    assert seen["DRQUEUE_LOGFILE"] == str(log)
    assert seen["DRQUEUE_ENGINE_UUID"] == "engine-uuid-1"
    assert seen["SHOT"] == "010"


def test_the_engines_inline_matplotlib_backend_is_not_inherited(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    assert "MPLBACKEND" not in render_environment(make_spec(tmp_path, "true"), 1, None)
    monkeypatch.setenv("MPLBACKEND", "Agg")  # an admin's own choice stays
    assert render_environment(make_spec(tmp_path, "true"), 1, None)["MPLBACKEND"] == "Agg"


def test_each_frame_of_a_block_gets_its_own_environment(tmp_path):
    out = tmp_path / "env"
    out.mkdir()
    spec = make_spec(
        tmp_path,
        f"sh -c 'env > {out}/{{frame}}.txt'",
        start=1,
        end=9,
        step=2,
        block_size=3,
        task_index=1,
        env={"SHOT": "010"},
    )
    result = run_task(spec)
    assert result["status"] == "finished", result["reason"]
    names = sorted(int(p.stem) for p in out.iterdir())
    assert names == [7, 9]  # task 1 of 1..9 by 2 in blocks of 3: frames 7 and 9
    for frame in names:
        seen = dict(
            line.split("=", 1)
            for line in (out / f"{frame}.txt").read_text().splitlines()
            if "=" in line
        )
        assert seen["DRQUEUE_FRAME"] == str(frame)
        assert seen["DRQUEUE_PADFRAME"] == f"{frame:04d}"
        assert seen["DRQUEUE_STARTFRAME"] == "1"
        assert seen["DRQUEUE_ENDFRAME"] == "9"
        assert seen["DRQUEUE_COMPID"] == "render07"
        assert seen["SHOT"] == "010"


# -- failures ---------------------------------------------------------------------------------------


def test_success_reports_finished_with_exit_code_zero(tmp_path):
    result = run_task(make_spec(tmp_path, "sh -c 'echo all good'"))
    assert result["status"] == "finished"
    assert result["exit_code"] == 0
    assert result["reason"] is None
    assert result["attempt_id"] == "attempt-1"
    assert result["task_id"] == 420
    assert result["computer"] == "render07"
    assert result["started_at"] <= result["ended_at"]


def test_the_duration_is_measured_on_the_monotonic_clock(tmp_path):
    before = time.monotonic()
    result = run_task(make_spec(tmp_path, "sleep 0.3"))
    took = time.monotonic() - before
    assert result["status"] == "finished", result["reason"]
    # started_at/ended_at are wall times (a slave's clock may jump); seconds is not.
    assert 0.3 <= result["seconds"] <= took
    assert abs(result["seconds"] - (result["ended_at"] - result["started_at"])) < 0.5


def test_non_zero_exit_fails_with_the_exit_code_and_last_line_as_reason(tmp_path):
    result = run_task(
        make_spec(tmp_path, "sh -c 'echo rendering; echo out of licenses >&2; exit 3'")
    )
    assert result["status"] == "failed"
    assert result["exit_code"] == 3
    assert result["reason"] == "exit code 3: out of licenses"


def test_a_failing_frame_stops_the_block(tmp_path):
    ran = tmp_path / "ran"
    ran.mkdir()
    spec = make_spec(
        tmp_path,
        f"sh -c 'touch {ran}/{{frame}}; test {{frame}} != 2'",
        start=1,
        end=3,
        block_size=3,
    )
    result = run_task(spec)
    assert result["status"] == "failed"
    assert result["exit_code"] == 1
    assert result["reason"] == "exit code 1"
    assert sorted(p.name for p in ran.iterdir()) == ["1", "2"]


def test_missing_program_fails_with_reason(tmp_path):
    result = run_task(make_spec(tmp_path, "no-such-renderer-xyz {frame}"))
    assert result["status"] == "failed"
    assert result["reason"].startswith("cannot start 'no-such-renderer-xyz' on render07")


def test_missing_output_fails_even_with_exit_code_zero(tmp_path):
    spec = make_spec(
        tmp_path, "true", output=str(tmp_path / "out" / "shot.####.png"), start=5, end=5
    )
    result = run_task(spec)
    assert result["status"] == "failed"
    assert result["exit_code"] == 0
    assert result["reason"] == f"output {tmp_path}/out/shot.0005.png was not written"
    assert result["outputs"] == []


def test_empty_output_fails(tmp_path):
    spec = make_spec(
        tmp_path, f"touch {tmp_path}/shot.{{padframe}}.png", output=str(tmp_path / "shot.####.png")
    )
    result = run_task(spec)
    assert result["status"] == "failed"
    assert result["reason"] == f"output {tmp_path}/shot.0001.png is empty"


def test_written_outputs_are_reported(tmp_path):
    spec = make_spec(
        tmp_path,
        f"sh -c 'echo pixels > {tmp_path}/shot.{{padframe}}.png'",
        start=1,
        end=2,
        block_size=2,
        output=str(tmp_path / "shot.####.png"),
    )
    result = run_task(spec)
    assert result["status"] == "finished", result["reason"]
    assert result["outputs"] == [f"{tmp_path}/shot.0001.png", f"{tmp_path}/shot.0002.png"]


def fake_blender(tmp_path: Path, monkeypatch, script: str) -> None:
    """Put a `blender` on PATH that runs the Python *script* instead of rendering."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "blender"
    fake.write_text(f"#!{sys.executable}\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_the_outputs_a_renderer_reports_are_bounded_in_number_and_length(tmp_path, monkeypatch):
    # A render decides what its renderer parses: here 1,500 "Saved:" lines, some of them with
    # paths too long to be real (5,000 characters, 1 MiB).
    fake_blender(
        tmp_path,
        monkeypatch,
        "long = '/' + 'x' * 4999; huge = '/' + 'y' * 2**20\n"
        "for n in range(1500):\n"
        "    print(f\"Saved: '/out/{n:05}.png'\")\n"
        "    if n % 500 == 0: print(f\"Saved: '{long}'\"); print(f\"Saved: '{huge}'\")",
    )
    scene = tmp_path / "shot.blend"
    scene.write_bytes(b"BLENDER")
    result = run_task(blender_spec(tmp_path, scene))  # no output pattern: the saved files count
    assert result["status"] == "finished", result["reason"]
    assert len(result["outputs"]) == MAX_OUTPUTS == 1000
    assert result["outputs"] == [f"/out/{n:05}.png" for n in range(500, 1500)]  # the last ones


def test_a_render_printing_50_mb_without_a_newline_costs_linear_time_and_no_memory(tmp_path):
    script = "import sys; sys.stdout.buffer.write(b'x' * 50_000_000); print(); print('done')"
    started = time.monotonic()
    result = run_task(make_spec(tmp_path, f'{sys.executable} -c "{script}"'))
    took = time.monotonic() - started
    assert result["status"] == "finished", result["reason"]
    assert took < 30, f"{took:.1f} s: the runner re-joins the pending line on every chunk"
    assert result["tail"].split("\n") == ["x" * 500, "done"]  # the long line cut, then the next
    log = Path(result["log_path"])
    assert log.stat().st_size > 50_000_000  # the log has it all


def test_a_line_longer_than_64_kib_is_parsed_cut_and_marked_and_never_held_whole():
    progress = _Progress([1])
    output = runner._Output(None, open(os.devnull, "wb"), Shell(), progress)
    for _ in range(100):  # 100 x 1 MiB without a newline
        output.take(b"y" * 2**20)
        assert len(output.pending) <= runner.MAX_LINE_BYTES
    output.take(b"\nnext line\n")
    assert list(progress.tail) == [("y" * runner.MAX_LINE_BYTES)[:500], "next line"]
    output.take(b"z" * (runner.MAX_LINE_BYTES + 1))
    output.finish()
    assert output.pending == b"" and not output.cut
    seen: list[str] = []
    progress.feed = lambda line, renderer: seen.append(line)  # what the renderer is given
    output.take(b"w" * (runner.MAX_LINE_BYTES + 10) + b"\rshort\n")
    assert seen == ["w" * runner.MAX_LINE_BYTES + runner.LINE_CUT_MARK, "short"]


def test_unwritable_log_folder_fails_with_that_reason_and_runs_nothing(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    log_path = blocker / "logs" / "0.log"
    ran = tmp_path / "ran"
    result = run_task(make_spec(tmp_path, f"touch {ran}", log_path=log_path))
    assert result["status"] == "failed"
    assert result["reason"] == (
        f"cannot write the task log {log_path}: the logs folder {blocker} is a file"
    )
    assert result["infrastructure"] is True
    assert not ran.exists()


def the_log_folder_of_job_42(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "42"


@pytest.mark.parametrize("planted", ["symlink", "file", "fifo"])
def test_a_render_cannot_squat_a_later_jobs_log_folder(tmp_path, planted):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = the_log_folder_of_job_42(tmp_path)
    plant = {
        "symlink": f"ln -s {elsewhere} {folder}",
        "file": f"touch {folder}",
        "fifo": f"mkfifo {folder}",
    }[planted]
    # Job 41's render, as its artist wrote it, puts something where job 42's logs will go, and
    # a file at job 42's first log name as it used to be (the name is per attempt now).
    attacker = run_task(
        make_spec(
            tmp_path,
            f"sh -c 'mkdir -p {elsewhere}/42 && echo squatter > {elsewhere}/0.log && {plant}'",
            log_path=tmp_path / "logs" / "41" / "0.log",
        )
    )
    assert attacker["status"] == "finished", attacker["reason"]
    result = run_task(make_spec(tmp_path, "echo rendered"))
    assert result["status"] == "finished", result["reason"]
    assert result["infrastructure"] is False
    log = Path(result["log_path"])
    assert log == folder / "0.attempt-1.log"
    assert folder.is_dir() and not folder.is_symlink()
    assert log.is_file() and not log.is_symlink() and log.stat().st_nlink == 1
    assert log.read_text().count("# drqueue: job 42 task 0") == 1
    assert log.read_text().endswith("\nrendered\n")
    assert "squatter" not in log.read_text()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["0.log", "42"]
    assert list((elsewhere / "42").iterdir()) == [], "the runner wrote through the planted link"


@pytest.mark.parametrize("planted", ["file", "symlink", "hardlink", "fifo", "folder"])
def test_a_planted_log_file_is_never_written_and_the_next_attempt_runs(tmp_path, planted):
    # Only a render that knew the attempt's random id could plant its log; even then the runner
    # never appends to a file it did not create, and the next attempt has a name of its own.
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    folder = the_log_folder_of_job_42(tmp_path)
    log = folder / "0.attempt-1.log"
    plant = {
        "file": f'sh -c "echo squatter > {log}"',
        "symlink": f"ln -s {victim} {log}",
        "hardlink": f"ln {victim} {log}",
        "fifo": f"mkfifo {log}",
        "folder": f"mkdir {log}",
    }[planted]
    attacker = run_task(
        make_spec(
            tmp_path,
            f"sh -c 'mkdir {folder} && {plant}'",
            log_path=tmp_path / "logs" / "41" / "0.log",
        )
    )
    assert attacker["status"] == "finished", attacker["reason"]
    ran = tmp_path / "ran"
    first = run_task(make_spec(tmp_path, f"touch {ran}"))
    assert first["status"] == "failed"
    assert first["infrastructure"] is True  # the logs folder's fault: no host, no retry spent
    assert first["reason"].startswith(f"cannot write the task log {log}: it exists already, as ")
    assert not ran.exists()
    assert victim.read_text() == "precious\n"
    if planted == "file":
        assert log.read_text() == "squatter\n"
    second = run_task(make_spec(tmp_path, "echo rendered", attempt="attempt-2"))
    assert second["status"] == "finished", second["reason"]
    written = Path(second["log_path"])
    assert written == folder / "0.attempt-2.log"
    assert written.read_text().endswith("\nrendered\n")
    assert "squatter" not in written.read_text()


@pytest.mark.renderer
def test_blender_with_an_unknown_scene_name_fails_with_blenders_own_line(tmp_path, blend_scene):
    # Blender prints "Can't find scene", renders the active scene instead and exits 0.
    output = tmp_path / "out" / "f_####"
    spec = blender_spec(tmp_path, blend_scene, scene_name="NoSuchScene", output=str(output))
    result = run_task(spec)
    assert result["exit_code"] == 0
    assert result["status"] == "failed"
    assert result["reason"] == (
        f"exit code 0, but blender reported: Can't find scene: 'NoSuchScene' in file: "
        f"'{blend_scene}'"
    )


@pytest.mark.renderer
def test_blender_with_its_scene_renders_and_finishes(tmp_path, blend_scene):
    output = tmp_path / "out" / "f_####"
    result = run_task(blender_spec(tmp_path, blend_scene, output=str(output)))
    assert result["status"] == "finished", result["reason"]
    assert result["outputs"] == [str(tmp_path / "out" / "f_0001.png")]


def test_a_failures_reason_carries_the_renderers_own_error_line():
    progress = _Progress([1])
    blender = Blender()
    for line in ("Fra:1 Mem:12.00M | Rendering", "Error: Build without OpenImageDenoiser"):
        progress.feed(line, blender)
    assert progress.explained("output /r/f_0001.png was not written", blender) == (
        "output /r/f_0001.png was not written; "
        "blender reported: Error: Build without OpenImageDenoiser"
    )
    assert progress.fatal == []  # Blender's "Error:" lines explain a failure, they are not one
    assert _Progress([1]).explained("timed out after 2 s", blender) == "timed out after 2 s"


# -- time-outs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("escape", ["", "setsid "], ids=["same-group", "child-left-the-group"])
def test_timeout_kills_the_whole_process_tree(tmp_path, escape):
    marker = unique_sleep()
    spec = make_spec(tmp_path, f"sh -c '{escape}sleep {marker} & sleep {marker}'", timeout=2)
    box: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: box.update(result=run_task(spec)))
    started = time.monotonic()
    runner.start()
    # The shell and both sleeps are up (dash may exec the last sleep in place of the shell).
    wait_for(lambda: len([p for p in marker_processes(marker) if p.name() == "sleep"]) == 2)
    runner.join(30)
    assert not runner.is_alive()
    took = time.monotonic() - started
    result = box["result"]
    assert result["status"] == "failed"
    assert result["reason"] == "timed out after 2 s"
    assert result["exit_code"] is None
    assert 2 <= took < 15
    assert marker_processes(marker) == [], "a render process outlived its timed-out task"


def test_the_masters_kill_stops_the_whole_process_tree_and_reports_killed(tmp_path):
    # The master kills a task with SIGINT to its engine: KeyboardInterrupt in the runner.
    marker = unique_sleep()
    spec = make_spec(tmp_path, f"sh -c 'setsid sleep {marker} & sleep {marker}'")

    def interrupt() -> None:
        wait_for(lambda: len([p for p in marker_processes(marker) if p.name() == "sleep"]) == 2)
        os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=interrupt)
    killer.start()
    result = run_task(spec)
    killer.join(30)
    assert result["status"] == "killed"
    assert result["reason"] == "killed"
    assert marker_processes(marker) == [], "a render process outlived its killed task"


LEFT_BEHIND = {
    "disowned": "bash -c 'sleep {m} & disown; echo started'",
    "nohup": "bash -c 'nohup sleep {m} >/dev/null 2>&1 & echo started'",
    "own-group": "bash -c 'set -m; sleep {m} & echo started'",
    "setsid-double-fork": "bash -c 'setsid sh -c \"sleep {m} &\"; echo started'",
}


@pytest.mark.parametrize("left", LEFT_BEHIND)
def test_nothing_a_render_started_outlives_its_task_that_ended_normally(tmp_path, left):
    # A render that exits 0 but leaves processes running (which could spy on later renders).
    marker = unique_sleep()
    try:
        result = run_task(make_spec(tmp_path, LEFT_BEHIND[left].format(m=marker)))
        assert result["status"] == "finished", result["reason"]
        assert result["tail"] == "started"
        wait_for(lambda: marker_processes(marker) == [], timeout=30)
    finally:
        for proc in marker_processes(marker):
            proc.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_the_engine_is_not_dumpable_once_it_has_run_a_task(tmp_path, monkeypatch):
    # A render runs as the engine's user; a non-dumpable engine's /proc/PID/environ and memory
    # are closed to it (root keeps CAP_SYS_PTRACE, so the test asks the kernel's flag instead
    # of reading as root: PR_GET_DUMPABLE in the process that ran the task, this one here).
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_get_dumpable, pr_set_dumpable = 3, 4
    assert libc.prctl(pr_set_dumpable, ctypes.c_ulong(1), 0, 0, 0) == 0  # a fresh engine's
    monkeypatch.setattr(runner, "_HARDENED", False)
    assert libc.prctl(pr_get_dumpable, 0, 0, 0, 0) == 1
    result = run_task(make_spec(tmp_path, "true"))
    assert result["status"] == "finished", result["reason"]
    assert libc.prctl(pr_get_dumpable, 0, 0, 0, 0) == 0


# -- logs and usage -------------------------------------------------------------------------------------


def test_log_file_holds_the_header_the_command_and_all_output(tmp_path):
    spec = make_spec(
        tmp_path,
        "sh -c 'echo line-one; echo line-two >&2; printf \"50%%\\rdone\\n\"'",
        start=3,
        end=3,
    )
    result = run_task(spec)
    assert result["status"] == "finished", result["reason"]
    log_path = tmp_path / "logs" / "42" / "0.attempt-1.log"
    assert result["log_path"] == str(log_path)
    text = log_path.read_bytes().decode()
    lines = text.split("\n")
    assert lines[0].startswith("# drqueue: job 42 task 0 on render07 at ")
    assert lines[1].startswith("# command: ['sh', '-c', ")
    assert lines[2:] == ["line-one", "line-two", "50%\rdone", ""]
    assert result["tail"] == "line-one\nline-two\n50%\ndone"


def test_each_attempt_writes_a_log_of_its_own_and_earlier_ones_stay(tmp_path):
    first = run_task(make_spec(tmp_path, "echo attempt", attempt="a1b2c3d4e5f6a7b8"))
    second = run_task(make_spec(tmp_path, "echo attempt", attempt="f6e5d4c3b2a1f0e9"))
    folder = the_log_folder_of_job_42(tmp_path)
    assert first["log_path"] == str(folder / "0.a1b2c3d4e5f6.log")
    assert second["log_path"] == str(folder / "0.f6e5d4c3b2a1.log")
    for result in (first, second):
        text = Path(result["log_path"]).read_text()
        assert text.count("# drqueue: job 42 task 0") == 1
        assert text.count("\nattempt\n") == 1


def test_peak_memory_and_cpu_time_are_reported(tmp_path):
    script = (
        "b = b'x' * (80 * 2**20); n = sum(i * i for i in range(3_000_000)); print(len(b), n > 0)"
    )
    result = run_task(make_spec(tmp_path, f'{sys.executable} -c "{script}"'))
    assert result["status"] == "finished", result["reason"]
    assert result["peak_rss_kb"] >= 80 * 1024
    assert result["peak_rss_kb"] < 2 * 1024 * 1024
    assert result["cpu_seconds"] >= 0.05
    assert result["cpu_seconds"] <= result["ended_at"] - result["started_at"] + 1


def test_cpu_time_adds_up_over_the_frames_of_a_block(tmp_path):
    busy = f'{sys.executable} -c "sum(i * i for i in range(2_000_000))" {{frame}}'
    one = run_task(make_spec(tmp_path / "one", busy))
    three = run_task(make_spec(tmp_path / "three", busy, start=1, end=3, block_size=3))
    assert one["status"] == three["status"] == "finished"
    assert three["cpu_seconds"] > 2 * one["cpu_seconds"]


def test_block_frames_helper_matches_the_task_spec(tmp_path):
    spec = make_spec(tmp_path, "true", start=1, end=10, step=3, block_size=2, task_index=1)
    assert (spec["task_start"], spec["task_end"], spec["step"]) == (7, 10, 3)
    assert FrameBlock(spec["task_start"], spec["task_end"], spec["step"]).frames == [7, 10]


def test_a_small_render_of_a_big_engine_reports_its_own_peak_memory(tmp_path):
    """Linux gives a render, at exec, the peak of the memory it had before: its engine's.  So
    every task once reported the engine's size, an `exit 3` included.  Here the engine (this
    process) holds 300 MiB more while a shell that needs a few MiB runs."""
    ballast = bytearray(300 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touched: resident
    result = run_task(make_spec(tmp_path, "sh -c 'sleep 0.6'"))
    assert result["status"] == "finished", result["reason"]
    assert 0 < result["peak_rss_kb"] < 50 * 1024, result["peak_rss_kb"]
    del ballast


def test_the_dispatchers_entry_point_takes_and_gives_the_same_spec_and_result_as_json(tmp_path):
    """The dispatcher sends the spec as JSON text (ipyparallel cans a dict item by item, a
    text whole); the runner answers the result dict as JSON text, every field kept."""
    import json

    spec = make_spec(
        tmp_path, "sh -c 'echo frame $DRQUEUE_FRAME; exit 3'", start=5, end=5, env={"A": "é"}
    )
    answer = runner.run_task_json(json.dumps(spec))
    assert isinstance(answer, str)
    result = json.loads(answer)
    assert (result["status"], result["exit_code"], result["tail"]) == ("failed", 3, "frame 5")
    assert result["attempt_id"] == spec["attempt_id"]
    assert set(result) == set(run_task({**spec, "log_path": spec["log_path"] + ".2"}))
