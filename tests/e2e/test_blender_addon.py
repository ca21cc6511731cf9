"""The Blender add-on, end to end: Debian's Blender 3.4 submits its own scene to a real farm.

One farm (a master and the slave alpha, one slot) serves the module.  Each test runs a
headless Blender on a scene made by tests/e2e/scenes/make_scene.py (64x48, 4 Cycles samples:
well under a second a frame) with tests/e2e/scenes/submit_with_addon.py, which installs the
zip `make blender-addon` builds, sets the add-on's preferences and presses Submit.  The
artist's token is an artist token made on the master, as docs/blender.md says to.

Like test_renders.py, a missing Blender fails these tests; ``DRQUEUE_ALLOW_SKIP=1`` skips them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from farm import Farm

pytestmark = [pytest.mark.renderer, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
SCENES = Path(__file__).resolve().parent / "scenes"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: What the driver script prints before its JSON outcome.
RESULT = "DRQUEUE_RESULT "

sys.path.insert(0, str(REPO / "contrib" / "blender"))
from make_zip import make_zip  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def blender_installed() -> None:
    if shutil.which("blender"):
        return
    if os.environ.get("DRQUEUE_ALLOW_SKIP") == "1":
        pytest.skip("blender not on PATH")
    pytest.fail("blender not on PATH: the add-on's tests need it (DRQUEUE_ALLOW_SKIP=1 skips)")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("blender-addon")


@pytest.fixture(scope="module")
def farm(work: Path):
    """A master and one slave with one slot."""
    farm = Farm(work / "farm")
    try:
        farm.start_master()
        farm.add_slave("alpha")
        farm.wait_engines(1)
        yield farm
    finally:
        farm.stop()


@pytest.fixture(scope="module")
def artist_token(farm: Farm) -> str:
    return farm.cli(
        "token", "create", "--role", "artist", "--owner", "ann", check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def addon_zip(work: Path) -> Path:
    return make_zip(work / "drqueue_submit.zip")


def make_scene(path: Path) -> Path:
    """The test scene at *path*, by make_scene.py; its output is //render/frame_####."""
    path.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        ["blender", "-b", "--factory-startup", "--python-exit-code", "1",
         "--python", str(SCENES / "make_scene.py"), "--", str(path)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180,
    )  # fmt: skip
    assert made.returncode == 0 and path.is_file(), made.stdout[-3000:] + made.stderr[-3000:]
    return path


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    """A new scene in a folder of its own, for a submit that renders."""
    return make_scene(tmp_path / "shot.blend")


@pytest.fixture(scope="module")
def refused_scene(work: Path) -> Path:
    """One scene for the submits that must be refused (nothing renders it)."""
    return make_scene(work / "refused" / "shot.blend")


def submit_from_blender(
    scene: Path | None, addon_zip: Path, master: str, token: str, *options: str
) -> tuple[dict[str, Any], str]:
    """Run Blender on *scene* (None: a new, never saved file) with the driver script; (its
    outcome, Blender's whole output)."""
    # The add-on is installed in a Blender home of this run's own, not for the machine's user.
    home = Path(tempfile.mkdtemp(prefix="blender-home-", dir=addon_zip.parent))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DRQUEUE_")},
        "BLENDER_USER_SCRIPTS": str(home / "scripts"),
        "BLENDER_USER_CONFIG": str(home / "config"),
    }
    run = subprocess.run(
        ["blender", "-b", *([str(scene)] if scene else []), "--factory-startup",
         "--python-exit-code", "1",
         "--python", str(SCENES / "submit_with_addon.py"), "--",
         "--zip", str(addon_zip), "--master", master, "--token", token, *options],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env, timeout=180,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith(RESULT)]
    assert len(lines) == 1, output[-3000:]
    return json.loads(lines[0][len(RESULT) :]), output


def job_ids(farm: Farm) -> list[int]:
    return [job["id"] for job in farm.client.jobs()]


def test_blender_submits_its_saved_scene_and_the_farm_renders_its_frames(
    farm, artist_token, addon_zip, scene
):
    outcome, output = submit_from_blender(
        scene, addon_zip, farm.client.url, artist_token, "--frames", "1-3", "--block-size", "2"
    )
    assert outcome["error"] is None and outcome["result"] == ["FINISHED"], output[-3000:]
    job_id = outcome["job_id"]
    assert f"DrQueue job {job_id} submitted: frames 1-3, 2 tasks" in output, output[-3000:]
    # The Watch area read the job as soon as it was made, and the panel shows it.
    assert outcome["watch"].split(":")[0] in ("queued", "running", "finished"), outcome
    panel = outcome["panel"]
    assert panel[:3] == [f"label Master: {farm.client.url}", "prop frame_start", "prop frame_end"]
    assert "operator drqueue.submit" in panel and "prop block_size" in panel
    assert panel[-4:] == [
        f"label Watch: job {job_id}", "operator drqueue.open_job",
        "operator drqueue.stop_watching", f"label {outcome['watch']}",
    ]  # fmt: skip

    job = farm.wait_job(job_id, timeout=300)
    assert job["status"] == "finished", (job, farm.client.tasks(job_id))
    assert (job["owner"], job["renderer"], job["scene"]) == ("ann", "blender", str(scene))
    assert (job["start"], job["end"], job["step"], job["block_size"]) == (1, 3, 1, 2)
    assert job["name"] == "shot"
    assert job["params"]["output"] == "//render/frame_####"
    assert job["params"]["format"] == "PNG" and job["params"]["scene_name"] == "Scene"

    frames = scene.parent / "render"
    expected = [f"frame_{frame:04d}.png" for frame in (1, 2, 3)]
    assert sorted(path.name for path in frames.iterdir()) == expected, farm.client.tasks(job_id)
    for name in expected:
        data = (frames / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 100, name


def submit_refused(farm: Farm, *args: Any) -> tuple[str, str]:
    """submit_from_blender(*args) for a submit that must be refused and make no job: the
    error the operator reported, and Blender's output."""
    before = job_ids(farm)
    outcome, output = submit_from_blender(*args)
    assert outcome["result"] is None and outcome["error"], outcome
    assert "job_id" not in outcome, "a refused submit is not watched"
    assert job_ids(farm) == before
    return outcome["error"], output


def test_a_wrong_token_is_reported_in_blender_and_makes_no_job(farm, addon_zip, refused_scene):
    error, output = submit_refused(farm, refused_scene, addon_zip, farm.client.url, "not-a-token")
    assert error.startswith("Error: DrQueue: missing or wrong API token"), error
    assert "Preferences → Add-ons → DrQueue Submit" in error
    assert error in output  # Blender printed the report as its UI shows it


def test_an_unreachable_master_is_reported_in_blender_and_makes_no_job(
    farm, artist_token, addon_zip, refused_scene
):
    with socket.socket() as closed:  # bound, never listening: a connection is refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        error, _ = submit_refused(farm, refused_scene, addon_zip, url, artist_token)
    assert error.startswith(f"Error: DrQueue: cannot reach the DrQueue master at {url}: "), error


def test_a_job_the_master_finds_invalid_is_reported_in_blender_with_its_reason(
    farm, artist_token, addon_zip, refused_scene
):
    error, _ = submit_refused(
        farm, refused_scene, addon_zip, farm.client.url, artist_token, "--pool", "no-such-pool"
    )
    assert "pool 'no-such-pool', which does not exist" in error, error


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("never-saved", "save the .blend first: the farm renders the saved file"),
        (
            "changed-after-save",
            "the .blend has unsaved changes: save it (File → Save) and submit again",
        ),
    ],
)
def test_a_file_unlike_its_saved_copy_is_refused_with_a_clear_message_and_makes_no_job(
    farm, artist_token, addon_zip, refused_scene, case, message
):
    if case == "never-saved":
        args = (None, addon_zip, farm.client.url, artist_token)
    else:
        args = (refused_scene, addon_zip, farm.client.url, artist_token, "--change-after-save")
    error, _ = submit_refused(farm, *args)
    assert error == f"Error: DrQueue: {message}"
