"""`drqueue submit` through click's CliRunner against the real API over HTTP: what each option
becomes in the stored job (read back from the store, not from the CLI's own echo)."""

from __future__ import annotations

import json

import pytest
from _live_api import live_api
from click.testing import CliRunner

from drqueue.cli.main import cli


@pytest.fixture
def api(tmp_path):
    # A master that sends mail (its server is never reached: these jobs never end).
    mail = {"smtp_host": "127.0.0.1", "mail_addresses": {"root": "root@example.com"}}
    with live_api(tmp_path, **mail) as live:
        yield live


def drqueue(api, *args: str, **env: str):
    """Run `drqueue ARGS` as a user would; returns click's Result."""
    return CliRunner().invoke(cli, list(args), env=api.env(**env), catch_exceptions=False)


def pools(api, *names: str) -> None:
    for name in names:
        assert drqueue(api, "pool", "create", name).exit_code == 0


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


EVERY_OPTION = [
    "--step", "2", "-b", "3", "-n", "every option", "-p", "70", "--owner", "carol",
    "--retries", "5", "--timeout", "90.5", "--env", "A=1", "--env", "B=two words",
    "--param", "threads=4", "--os", "linux", "--min-ram", "2.5", "--min-cores", "4",
    "--pool", "gpu", "--pool", "fast", "--gpus", "1", "--hosts", "render*",
    "--exclude-hosts", "render9", "--max-parallel", "6",
    "--on-failure", "oom=retry,missing-asset=retry",
    "--engine", "CYCLES", "--format", "OPEN_EXR", "--scene-name", "Main",
]  # fmt: skip


def assert_every_option_stored(job, scene, first: int, output) -> None:
    spec = job.spec
    assert (spec.renderer, spec.scene, spec.start, spec.end) == ("blender", str(scene), 1, 20)
    assert (spec.step, spec.block_size, spec.name, spec.owner) == (2, 3, "every option", "carol")
    assert (spec.priority, spec.retries, spec.timeout) == (70, 5, 90.5)
    assert spec.env == {"A": "1", "B": "two words"}
    assert spec.params == {
        "cycles_device": "",  # the renderer's default, filled in by the master
        "missing_files": "fail",
        "threads": 4,
        "engine": "CYCLES",
        "format": "OPEN_EXR",
        "scene_name": "Main",
        "output": str(output),
    }
    assert spec.requirements.to_dict() == {
        "os": "linux",
        "min_ram_gb": 2.5,
        "min_cores": 4,
        "pools": ["gpu", "fast"],
        "gpus": 1,
        "hosts": ["render*"],
        "exclude_hosts": ["render9"],
    }
    assert (spec.after, spec.max_parallel) == ([first], 6)
    assert spec.on_failure == {"oom": "retry", "missing-asset": "retry"}


def test_every_submit_option_becomes_its_field_of_the_stored_job(api, tmp_path, monkeypatch):
    scene = tmp_path / "shot.blend"
    scene.write_bytes(b"BLENDER")
    pools(api, "gpu", "fast")
    first = submitted(api, drqueue(api, "submit", "fractal", "-s", "1", "-e", "1", "--output",
                                   str(tmp_path / "a_####.png"))).id  # fmt: skip
    monkeypatch.chdir(tmp_path)  # relative paths are from here
    job = submitted(
        api,
        drqueue(api, "submit", "blender", "shot.blend", "-s", "1", "-e", "20", "--after",
                str(first), "--output", "out/f_####", *EVERY_OPTION),
    )  # fmt: skip
    assert_every_option_stored(job, scene, first, tmp_path / "out/f_####")
    assert api.store.get_job(job.id).counts.total == 4  # frames 1..19 by 2, 3 a task


def test_options_before_the_renderer_name_are_the_same_job(api, tmp_path, monkeypatch):
    scene = tmp_path / "shot.blend"
    scene.write_bytes(b"BLENDER")
    pools(api, "gpu", "fast")
    first = submitted(api, drqueue(api, "submit", "-s", "1", "-e", "1", "fractal", "--output",
                                   str(tmp_path / "a_####.png"))).id  # fmt: skip
    monkeypatch.chdir(tmp_path)
    # The common options before the name, the renderer's own after it; -n takes a renderer's
    # name as its value without taking it for the renderer.
    common, own = EVERY_OPTION[:-6], EVERY_OPTION[-6:]
    job = submitted(
        api,
        drqueue(api, "submit", "-s", "1", "-e", "20", "--after", str(first), *common,
                "blender", "shot.blend", "--output", "out/f_####", *own),
    )  # fmt: skip
    assert_every_option_stored(job, scene, first, tmp_path / "out/f_####")
    named = submitted(api, drqueue(api, "submit", "-n", "blender", "-s", "1", "-e", "1",
                                   "fractal", "--output", "x_####.png"))  # fmt: skip
    assert (named.spec.renderer, named.spec.name) == ("fractal", "blender")


def test_repeatable_options_add_up_before_and_after_the_renderer_name(api, tmp_path):
    pools(api, "p1", "p2")
    job = submitted(
        api,
        drqueue(api, "submit", "--env", "A=1", "--pool", "p1", "fractal", "-s", "1", "-e", "1",
                "--env", "B=2", "--pool", "p2", "--output", str(tmp_path / "f_####.png")),
    )  # fmt: skip
    assert job.spec.env == {"A": "1", "B": "2"}
    assert job.spec.requirements.pools == ["p1", "p2"]


def test_an_option_given_before_and_after_the_renderer_name_is_a_usage_error(api, tmp_path):
    result = drqueue(api, "submit", "-s", "1", "fractal", "-s", "2", "-e", "3",
                     "--output", str(tmp_path / "f_####.png"))  # fmt: skip
    assert result.exit_code == 2
    assert "Error: --start given both before and after the renderer name" in result.output
    assert api.store.list_jobs() == []


def test_defaults_of_a_bare_submit(api, tmp_path):
    job = submitted(api, drqueue(api, "submit", "fractal", "-s", "-2", "-e", "3", "--output",
                                 str(tmp_path / "f_####.png")))  # fmt: skip
    spec = job.spec
    assert (spec.start, spec.end, spec.step, spec.block_size) == (-2, 3, 1, 1)
    assert (spec.priority, spec.retries, spec.timeout, spec.max_parallel) == (50, 3, None, None)
    assert spec.owner  # the user's name
    assert (spec.name, spec.env, spec.after) == (f"job-{job.id}", {}, [])  # the master names it
    assert spec.on_failure == {}  # the farm's failure_actions decide
    assert spec.params["output"] == str(tmp_path / "f_####.png")


@pytest.mark.parametrize(
    "name", ["a/b", "why?", "#1", "100%", "..", "two words", "é ünï", "shot%2Fx", " "]
)
def test_job_names_with_url_and_shell_characters_are_stored_as_typed(api, tmp_path, name):
    job = submitted(api, drqueue(api, "submit", "fractal", "-s", "1", "-e", "1", "-n", name,
                                 "--output", str(tmp_path / "f_####.png")))  # fmt: skip
    assert job.spec.name == name
    listed = drqueue(api, "job", "show", str(job.id), "--json")
    assert listed.exit_code == 0 and f'"name": {json_str(name)}' in listed.output


def json_str(text: str) -> str:
    import json

    return json.dumps(text)


def test_each_renderer_command_lists_its_own_parameters_only(api):
    blender = drqueue(api, "submit", "blender", "--help")
    assert blender.exit_code == 0
    assert "--engine" in blender.output and "--scene-name" in blender.output
    assert "--iterations" not in blender.output
    fractal = drqueue(api, "submit", "fractal", "--help")
    assert "--iterations" in fractal.output and "--engine" not in fractal.output
    # A renderer's option is not accepted by another renderer, before or after a first use.
    wrong = drqueue(api, "submit", "fractal", "-s", "1", "-e", "1", "--engine", "CYCLES")
    assert wrong.exit_code == 2 and "No such option '--engine'" in wrong.output
    assert api.store.list_jobs() == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["fractal", "-e", "3"], 2, "missing option -s/--start"),
        (["fractal", "-s", "3"], 2, "missing option -e/--end"),
        (["nosuch", "-s", "1", "-e", "2"], 1, "unknown renderer 'nosuch'"),
        (["-s", "1", "-e", "2", "nosuch"], 1, "unknown renderer 'nosuch'"),
        (["fractal", "-s", "5", "-e", "2"], 1, "end frame 2 is before start frame 5"),
        (["fractal", "-s", "1", "-e", "2", "--step", "0"], 1, "--step must be at least 1"),
        (["fractal", "-s", "1", "-e", "2", "-b", "0"], 1, "--block must be at least 1"),
        (["fractal", "-s", "1", "-e", "2", "--param", "x"], 1, "--param wants KEY=VALUE"),
        (["fractal", "-s", "1", "-e", "2", "--env", "novalue"], 1, "novalue"),
        (["fractal", "-s", "1", "-e", "2", "--after", "99"], 1, "job 99"),
        (["fractal", "-s", "1", "-e", "2", "--after", "99:frames"], 1, "frames of job 99"),
        (["fractal", "-s", "1", "-e", "2", "--after", "12:frame"], 2, "'12:frame' is not a job"),
        (["fractal", "-s", "1", "-e", "2", "--after", "x"], 2, "or a job id and :frames"),
        (["fractal", "-s", "1", "-e", "2", "--order", "random"], 2, "'random' is not one of"),
        (["blender", "/nonexistent/x.blend", "-s", "1", "-e", "2"], 1, "x.blend"),
        (
            ["fractal", "-s", "1", "-e", "2", "--on-failure", "ram=retry"],
            1,
            "--on-failure: unknown failure class 'ram'",
        ),
        (
            ["fractal", "-s", "1", "-e", "2", "--on-failure", "oom=later"],
            1,
            "--on-failure: unknown action 'later' for oom",
        ),
        (["fractal", "-s", "1", "-e", "2", "--on-failure", "oom"], 1, "CLASS=ACTION pairs"),
    ],
)
def test_bad_submit_says_one_line_and_stores_nothing(api, args, code, message):
    result = drqueue(api, "submit", *args, "--output", "/tmp/f_####.png")
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert api.store.list_jobs() == []


@pytest.mark.parametrize("before", [True, False], ids=["before-name", "after-name"])
def test_flags_work_on_either_side_of_the_renderer_name(api, before):
    flags = ["--json", "--no-scene-check"]
    rest = ["blender", "/not/on/the/master.blend", "-s", "1", "-e", "1"]
    result = drqueue(api, "submit", *(flags + rest if before else rest + flags))
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert api.store.get_job(answer["id"]).spec.scene == "/not/on/the/master.blend"


# -- notify: --notify and --email --------------------------------------------------------------


def test_submit_notify_and_email_are_stored_as_the_jobs_notify(api):
    job = submitted(
        api,
        drqueue(
            api,
            "submit",
            "shell",
            "-s",
            "1",
            "-e",
            "1",
            "--param",
            "cmd=true",
            "--notify",
            "finished, first-frame",
            "--email",
            "ann@example.com",
            "--email",
            "bob@example.org",
        ),
    )
    assert job.spec.notify == {
        "on": ["finished", "first-frame"],
        "email": ["ann@example.com", "bob@example.org"],
    }


def test_submit_email_alone_leaves_when_to_the_default_and_neither_stores_nothing(api):
    common = ["submit", "shell", "-s", "1", "-e", "1", "--param", "cmd=true"]
    alone = submitted(api, drqueue(api, *common, "--email", "ann@example.com"))
    assert alone.spec.notify == {"email": ["ann@example.com"]}
    plain = submitted(api, drqueue(api, *common))
    assert plain.spec.notify == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--notify", "finished,done"], "notify.on.1: Input should be 'finished', 'error' or"),
        (["--email", "ann at example.com"], "notify.email.0: 'ann at example.com' is not a mail"),
        (
            ["--owner", "zoe", "--notify", "first-frame"],
            "notify: nobody would be mailed: give an address (--email, notify.email), or ask an "
            "admin to add zoe to the master's mail_addresses",
        ),
    ],
)
def test_submit_bad_notify_is_one_line_and_no_job(api, options, message):
    result = drqueue(api, "submit", "shell", "-s", "1", "-e", "1", "--param", "cmd=true", *options)
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert api.store.list_jobs() == []


def test_submit_notify_to_a_master_that_sends_no_mail_is_one_line_and_no_job(tmp_path):
    with live_api(tmp_path) as quiet:  # no smtp_host
        result = drqueue(
            quiet,
            "submit",
            "shell",
            "-s",
            "1",
            "-e",
            "1",
            "--param",
            "cmd=true",
            "--email",
            "ann@example.com",
        )
        assert result.exit_code == 1
        assert (
            result.output == "error: notify: this master sends no mail (its smtp_host is not set)\n"
        )
        assert quiet.store.list_jobs() == []


# -- --after ID:frames, --order, --first-frame-check (issue 15) ----------------------------------


def fractal(api, *args: str):
    return drqueue(api, "submit", "fractal", *args, "--output", "/tmp/f_####.png")


def test_after_frames_order_and_check_become_the_stored_jobs_fields(api):
    render = submitted(api, fractal(api, "-s", "1", "-e", "9"))
    other = submitted(api, fractal(api, "-s", "1", "-e", "9"))
    comp = submitted(
        api,
        fractal(
            api,
            "-s",
            "1",
            "-e",
            "9",
            "--after",
            f"{render.id}:frames",
            "--after",
            str(other.id),
            "--order",
            "preview",
            "--first-frame-check",
        ),
    )
    spec = comp.spec
    assert (spec.after_frames, spec.after) == ([render.id], [other.id])
    assert (spec.order, spec.first_frame_check) == ("preview", True)
    assert [t.index for t in api.store.next_queued(comp.id, 3)] == [0, 8, 4]
    # The defaults: sequential, no check, no frame dependency.
    plain = render.spec
    assert (plain.order, plain.first_frame_check, plain.after_frames) == ("sequential", False, [])
    shown = drqueue(api, "job", "show", str(comp.id))
    assert shown.exit_code == 0, shown.output
    assert f"{other.id}, {render.id}:frames" in shown.output
    assert "preview, first frame checked" in shown.output


def test_reverse_order_is_stored(api):
    job = submitted(api, fractal(api, "-s", "1", "-e", "3", "--order", "reverse"))
    assert job.spec.order == "reverse"
    assert [t.index for t in api.store.next_queued(job.id, 3)] == [2, 1, 0]


def test_after_frames_sharing_no_frame_is_one_line_and_no_job(api):
    render = submitted(api, fractal(api, "-s", "1", "-e", "9"))
    result = fractal(api, "-s", "20", "-e", "29", "--after", f"{render.id}:frames")
    assert result.exit_code == 1
    assert f"share no frame with job {render.id}" in result.output
    assert "Traceback" not in result.output
    assert len(api.store.list_jobs()) == 1
