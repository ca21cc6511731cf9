"""`drqueue submit` through click's CliRunner against the real API over HTTP: what each option
becomes in the stored job (read back from the store, not from the CLI's own echo)."""

from __future__ import annotations

import pytest
from _live_api import live_api
from click.testing import CliRunner

from drqueue.cli.main import cli


@pytest.fixture
def api(tmp_path):
    with live_api(tmp_path) as live:
        yield live


def drqueue(api, *args: str, **env: str):
    """Run `drqueue ARGS` as a user would; returns click's Result."""
    return CliRunner().invoke(cli, list(args), env=api.env(**env), catch_exceptions=False)


def submitted(api, result) -> dict:
    """The stored job the successful submit printed the id of."""
    assert result.exit_code == 0, result.output
    return api.store.get_job(int(result.output.split()[-1]))


def test_submit_name_is_the_name_given_whatever_the_renderer_paths(api, tmp_path):
    # A renderer with a path parameter ("output") once renamed every job "output" (issue 10, 3a).
    job = submitted(
        api,
        drqueue(
            api,
            "submit",
            "fractal",
            "-s",
            "1",
            "-e",
            "2",
            "-n",
            "shot 10 / final",
            "--output",
            str(tmp_path / "f_####.png"),
        ),
    )
    assert job.spec.name == "shot 10 / final"
    assert job.spec.params["output"] == str(tmp_path / "f_####.png")
