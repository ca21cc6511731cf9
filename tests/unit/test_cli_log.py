"""`drqueue log ID FRAME` and `job priority ID N` take negative numbers as documented (`log 7 -4`),
against the real API over HTTP (issue 10, 3j)."""

from __future__ import annotations

import pytest
from _live_api import live_api
from click.testing import CliRunner

from drqueue.cli.main import cli
from drqueue.config import Config


@pytest.fixture
def api(tmp_path):
    with live_api(tmp_path) as live:
        yield live


def drqueue(api, *args: str):
    return CliRunner().invoke(cli, list(args), env=api.env())


def submit(api, tmp_path) -> int:
    result = drqueue(api, "submit", "fractal", "-s", "-5", "-e", "5", "-b", "2",
                     "--output", str(tmp_path / "f_####.png"))  # fmt: skip
    assert result.exit_code == 0, result.output
    return int(result.output.split()[-1])


def test_log_of_a_negative_frame_prints_its_tasks_log(api, tmp_path):
    job_id = submit(api, tmp_path)
    task = api.store.task_for_frame(job_id, -4)  # frames -5..-4 are task 0
    log = Config(root=tmp_path).logs_dir / str(job_id) / f"{task.index}.log"
    log.parent.mkdir(parents=True)
    log.write_text("rendering frame -4\n")
    assert api.store.mark_dispatched(task.id, "attempt-1", 0, "alpha", log_path=str(log))
    result = drqueue(api, "log", str(job_id), "-4")
    assert (result.exit_code, result.output) == (0, "rendering frame -4\n")
    assert drqueue(api, "log", str(job_id), "--", "-4").output == "rendering frame -4\n"


def test_log_of_a_negative_frame_that_has_not_run_says_so(api, tmp_path):
    job_id = submit(api, tmp_path)
    result = drqueue(api, "log", str(job_id), "-2")
    assert result.exit_code == 1
    assert f"frame -2 of job {job_id} has not run yet" in result.output
    result = drqueue(api, "log", str(job_id), "-9")
    assert result.exit_code == 1 and f"job {job_id} does not render frame -9" in result.output


def test_a_negative_priority_is_a_number_not_an_option(api, tmp_path):
    job_id = submit(api, tmp_path)
    result = drqueue(api, "job", "priority", str(job_id), "-10")
    assert (result.exit_code, result.output) == (0, f"job {job_id}: priority -10\n")
    assert api.store.get_job(job_id).spec.priority == -10


def test_an_unknown_option_of_log_is_still_a_usage_error(api, tmp_path):
    job_id = submit(api, tmp_path)
    result = drqueue(api, "log", str(job_id), "-4", "--bogus")
    assert result.exit_code == 2 and "--bogus" in result.output


def test_a_log_bigger_than_one_chunk_is_printed_whole(api, tmp_path):
    """The master serves at most 1 MiB an answer; `drqueue log` pages until it has it all."""
    job_id = submit(api, tmp_path)
    task = api.store.task_for_frame(job_id, 1)
    log = Config(root=tmp_path).logs_dir / str(job_id) / f"{task.index}.log"
    log.parent.mkdir(parents=True)
    lines = [f"line {n:07d} of the render\n" for n in range(150_000)]  # about 3.9 MB
    log.write_text("".join(lines))
    assert api.store.mark_dispatched(task.id, "attempt-1", 0, "alpha", log_path=str(log))
    result = drqueue(api, "log", str(job_id), "1")
    assert result.exit_code == 0, result.output[-300:]
    assert result.output == "".join(lines)
