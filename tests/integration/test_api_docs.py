"""docs/api.md's examples run as written against a real farm (issue 13): each Python block, the
curl and jq session (docs/examples/session.sh, which api.md quotes whole) and the same session
in Ruby (docs/examples/session.rb, when ruby is installed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from farm import Farm

DOCS = Path(__file__).resolve().parents[2] / "docs"
API_MD = (DOCS / "api.md").read_text()
EXAMPLES = DOCS / "examples"


def python_blocks() -> list[str]:
    """The ```python blocks of api.md's "Python" section."""
    section = API_MD[API_MD.index("\n## Python\n") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    farm = Farm(tmp_path_factory.mktemp("farm"))
    farm.start_master()
    farm.add_slave("alpha", slots=2)
    farm.wait_engines(2)
    yield farm
    farm.stop()


@pytest.fixture(autouse=True)
def idle_farm(farm):
    """Each example starts on an idle farm: what an earlier one left running is deleted."""
    yield
    for job in farm.client.jobs():
        if job.status not in ("finished", "error", "cancelled"):
            farm.client.delete_job(job, force=True)


def user_env(farm: Farm, **extra: str) -> dict[str, str]:
    """A user's shell pointed at the farm: DRQUEUE_MASTER and DRQUEUE_TOKEN, nothing else of it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRQUEUE_")}
    return {
        **env,
        "DRQUEUE_MASTER": farm.client.url,
        "DRQUEUE_TOKEN": farm.client.token,
        **extra,
    }


def run(argv: list[str], farm: Farm, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, capture_output=True, text=True, env=user_env(farm), timeout=timeout, cwd=DOCS.parent
    )


def test_api_md_has_the_python_examples_the_issue_asks_for():
    code = "\n".join(python_blocks())
    for call in (".submit(", ".wait(", ".watch(", ".log(", ".kill(", "JobNotFound", "InvalidJob"):
        assert call in code, call


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_each_python_example_of_api_md_runs(farm, index):
    result = run([sys.executable, "-c", python_blocks()[index]], farm)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert farm.client.token not in result.stdout + result.stderr


def test_the_first_python_example_renders_the_job_and_prints_its_log(farm):
    result = run([sys.executable, "-c", python_blocks()[0]], farm)
    assert result.returncode == 0, result.stderr
    assert re.search(r"job \d+ finished: 2/2 tasks", result.stdout), result.stdout
    assert "frame 3" in result.stdout
    assert result.stderr == ""  # no terminal: no progress bar


def test_api_md_quotes_the_curl_session_as_the_script_is():
    script = (EXAMPLES / "session.sh").read_text().rstrip("\n")
    assert f"```bash\n{script}\n```" in API_MD


def check_session(result: subprocess.CompletedProcess, farm: Farm) -> None:
    """What session.sh and session.rb both do: a job done with its log read, a second killed."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    first = int(re.fullmatch(r"submitted job (\d+)", lines[0])[1])
    assert "  job.submitted: 2 tasks, frames 1-4 by 1" in lines
    assert f"job {first} finished: 2/2 tasks" in lines
    assert "rendering frame 3" in result.stdout
    killed = re.search(r"^killed job (\d+): (stopping|stopped)$", result.stdout, re.M)
    assert killed, result.stdout
    second = farm.client.job(int(killed[1]))
    assert second.control == "stopped" and second.counts.finished == 0
    assert farm.client.token not in result.stdout + result.stderr


def test_the_curl_session_runs_as_written(farm):
    check_session(run([str(EXAMPLES / "session.sh")], farm), farm)


def test_the_curl_session_stops_at_a_wrong_token_with_the_masters_message(farm):
    env = user_env(farm, DRQUEUE_TOKEN="not-a-token")
    result = subprocess.run(
        [str(EXAMPLES / "session.sh")], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "error: missing or wrong API token: set DRQUEUE_TOKEN to a token of this master"
    )


@pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby is not installed (make renderers)")
def test_the_ruby_session_runs_as_written(farm):
    check_session(run(["ruby", str(EXAMPLES / "session.rb")], farm), farm)
