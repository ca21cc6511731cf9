"""The failure classes (drqueue.failures): the classifier on real renderers' wordings, the
rules and actions a farm or a job may set, and how the store records each action."""

from __future__ import annotations

import typing

import pytest

from drqueue.failures import (
    BUILT_IN_RULES,
    DEFAULT_ACTIONS,
    FailureAction,
    FailureClass,
    FailureRule,
    FailureRuleError,
    action_for,
    classify,
    oom_ram_mb,
    parse_actions,
    parse_on_failure,
    parse_rules,
)
from drqueue.models import JobIn, TaskState
from drqueue.renderers import all_renderers
from drqueue.store import policy


def classified(lines, renderer: str | None = None, **facts) -> tuple[str, str | None]:
    rules = (*(all_renderers()[renderer].failure_patterns if renderer else ()), *BUILT_IN_RULES)
    found = classify(lines=lines, rules=rules, **facts)
    return found.failure_class.value, found.detail


# Each line as the program prints it (sources in drqueue.failures and each renderer's module).
LICENCE_LINES = [
    ("arnold", "00:00:10 444MB WARNING | [rlm] could not connect to any license server"),
    (
        "arnold",
        "00:00:03 749MB WARNING | [rlm] error checking out license for arnold (version 20140113):",
    ),
    ("arnold", "// WARNING : [arnold] [rlm] wrong license version for arnold 20131216, found"),
    ("vray", "error: Could not obtain a license (-200)"),
    ("nuke", "No licenses available for nuke_r"),
    ("nuke", "[foundry] RLM license error: Communications error with license server (-17)"),
    ("mantra", "No licenses could be found to run this application."),
    (None, "checkout failed: License server machine is down or not responding."),
    (None, "FLEXnet Licensing checkout error: License server system does not support this"),
    (None, "R90041 {SEVERE} License checkout failed for RenderMan"),
]


@pytest.mark.parametrize(("renderer", "line"), LICENCE_LINES)
def test_a_licence_failure_is_read_from_the_vendors_own_words(renderer, line):
    assert classified(["Loading scene", line, "exiting"], renderer, exit_code=1)[0] == "licence"


def test_blenders_missing_file_line_gives_the_missing_path():
    lines = ["Read blend: /p/shot.blend", "drqueue: missing file: /p/tex/wood.png"]
    assert classified(lines, "blender", exit_code=3) == ("missing-asset", "/p/tex/wood.png")


@pytest.mark.parametrize(
    "line",
    [
        "Error: Cannot read file '/p/gone.blend': No such file or directory",
        "Warning: Unable to open '/p/lib/set.blend'",
    ],
)
def test_blenders_own_unreadable_file_lines_are_missing_assets_with_their_path(line):
    klass, detail = classified([line], "blender", exit_code=1)
    assert klass == "missing-asset" and detail.startswith("/p/")


def test_a_generic_cannot_find_file_is_a_missing_asset():
    assert classified(["ERROR: cannot find file: /show/tex/a.tx"], exit_code=1) == (
        "missing-asset",
        "/show/tex/a.tx",
    )


@pytest.mark.parametrize(
    "line",
    [
        "MemoryError",
        "terminate called after throwing an instance of 'std::bad_alloc'",
        "Error: Malloc returns null: len=4294967296 in CDDerivedMesh",
        "CUDA error: Out of memory in cuMemAlloc(&device_pointer, size)",
    ],
)
def test_out_of_memory_messages_are_oom(line):
    assert classified([line], exit_code=1)[0] == "oom"


def test_a_sigkill_near_the_memory_limit_is_the_kernels_oom_kill_and_elsewhere_it_is_not():
    near = classified([], exit_code=-9, peak_rss_kb=950_000, memory_limit_kb=1_000_000)
    assert near[0] == "oom"
    assert classified([], exit_code=-9, peak_rss_kb=100_000, memory_limit_kb=1_000_000)[0] == (
        "unknown"
    )
    assert classified([], exit_code=-9, oom_killed=True)[0] == "oom"


@pytest.mark.parametrize(
    ("exit_code", "lines"),
    [(-11, []), (-6, []), (139, []), (1, ["Segmentation fault (core dumped)"])],
)
def test_a_segfault_or_abort_is_a_crash(exit_code, lines):
    assert classified(lines, exit_code=exit_code)[0] == "crash"


def test_time_out_and_missing_output_and_the_rest():
    assert classified(["rendering"], timed_out=True)[0] == "timeout"
    assert classified([], exit_code=0, output_missing="output /r/f_0001.png was not written") == (
        "output-missing",
        "output /r/f_0001.png was not written",
    )
    assert classified(["some error"], exit_code=2)[0] == "unknown"


def test_a_licence_line_explains_even_a_time_out():
    """A render stuck waiting for a licence is killed by its time-out: the line says why."""
    assert classified(["No licenses available"], timed_out=True)[0] == "licence"


def test_the_farms_rules_come_before_the_built_in_ones():
    farm = parse_rules([{"pattern": r"segmentation fault in texture cache", "class": "oom"}])
    found = classify(
        lines=["Segmentation fault in texture cache"], rules=(*farm, *BUILT_IN_RULES), exit_code=1
    )
    assert found.failure_class == FailureClass.OOM


def test_only_the_tail_is_matched_and_an_enormous_line_is_cut():
    """The runner's tail is bounded (30 lines, 500 characters each); the classifier reads no
    more than its own bound of it either."""
    lines = ["No licenses available"] + ["x"] * 100
    assert classified(lines, exit_code=1)[0] == "unknown"
    assert classified(["y" * 10_000_000 + " No licenses available"], exit_code=1)[0] == "unknown"


@pytest.mark.parametrize(
    ("tables", "error"),
    [
        ([{"pattern": "x", "class": "bogus"}], "unknown failure class 'bogus'"),
        ([{"pattern": "(unclosed", "class": "crash"}], "does not compile"),
        ([{"pattern": "x"}], "exactly a pattern and a class"),
        ([{"pattern": 1, "class": "crash"}], "are strings"),
    ],
)
def test_bad_failure_rules_are_refused_with_one_line(tables, error):
    with pytest.raises(FailureRuleError, match=error) as caught:
        parse_rules(tables)
    assert "\n" not in str(caught.value)


def test_actions_the_job_names_win_over_the_farms_which_win_over_the_defaults():
    farm = parse_actions({"licence": "retry"}, "failure_actions")
    assert action_for(FailureClass.LICENCE, {}, farm) == FailureAction.RETRY
    assert action_for(FailureClass.LICENCE, {"licence": "fail"}, farm) == FailureAction.FAIL
    assert action_for(FailureClass.OOM, {}, farm) == DEFAULT_ACTIONS[FailureClass.OOM]
    with pytest.raises(FailureRuleError, match="unknown action 'never'"):
        parse_actions({"oom": "never"}, "failure_actions")
    with pytest.raises(FailureRuleError, match="unknown failure class 'ram'"):
        parse_on_failure("ram=retry")
    with pytest.raises(FailureRuleError, match="CLASS=ACTION"):
        parse_on_failure("oom")
    assert parse_on_failure("oom=retry, licence=fail") == {"oom": "retry", "licence": "fail"}


def test_the_job_bodys_classes_and_actions_are_the_classifiers():
    """models.JobIn spells them out (models imports nothing of ours): they must agree."""
    hint = typing.get_type_hints(JobIn, include_extras=True)["on_failure"]
    key, value = typing.get_args(typing.get_args(hint)[0])
    assert set(typing.get_args(key)) == {c.value for c in FailureClass}
    assert set(typing.get_args(value)) == {a.value for a in FailureAction}


def test_an_out_of_memory_task_asks_for_its_peak_and_a_quarter_and_more_than_its_host():
    assert oom_ram_mb(4 * 1024 * 1024, 2048) == 5120  # peaked at 4 GB on a 2 GB host
    assert oom_ram_mb(100 * 1024, 2048) == 2049  # refused memory early: more than that host


@pytest.mark.parametrize(
    ("action", "state", "failures", "host"),
    [
        ("retry", TaskState.QUEUED, 1, True),
        ("retry-bigger", TaskState.QUEUED, 0, False),
        ("backoff", TaskState.QUEUED, 0, False),
        ("fail", TaskState.ERROR, 1, False),
    ],
)
def test_what_each_action_does_to_the_task_and_the_host(action, state, failures, host):
    result = {
        "status": "failed",
        "reason": "exit code 1",
        "failure_class": "oom",
        "failure_detail": "MemoryError",
        "failure_action": action,
        "min_ram_mb": 4096,
    }
    step = policy.after_failed_result(result, failures=0, retries=3)
    assert (step.state, step.failures, step.host_failure) == (state, failures, host)
    assert step.fields["failure_class"] == "oom"
    assert step.fields["min_ram_mb"] == 4096


def test_the_built_in_rules_and_every_renderers_compile_case_insensitively():
    for cls in all_renderers().values():
        assert all(isinstance(rule, FailureRule) for rule in cls.failure_patterns)
    assert classified(["NO LICENSES AVAILABLE"], exit_code=1)[0] == "licence"


def test_drqueue_tasks_shows_each_tasks_failure_class(tmp_path):
    """In-process CLI against the real API: the FAILURE column is the stored class."""
    import uuid

    from _live_api import live_api
    from click.testing import CliRunner

    from drqueue.cli.main import cli
    from drqueue.models import JobSpec, split_frames

    with live_api(tmp_path) as api:
        spec = JobSpec("shell", 1, 2, owner="ann", params={"cmd": "true"})
        job_id = api.store.create_job(spec, split_frames(1, 2))
        task = api.store.get_task(job_id, 0)
        attempt = uuid.uuid4().hex
        assert api.store.mark_dispatched(task.id, attempt, 0, "alpha")
        result = {
            "status": "failed",
            "exit_code": 1,
            "reason": "exit code 1: No licenses available",
            "failure_class": "licence",
            "failure_action": "backoff",
        }
        api.store.record_result(attempt, result)
        shown = CliRunner().invoke(
            cli, ["tasks", str(job_id)], env=api.env(COLUMNS="200"), catch_exceptions=False
        )
    assert shown.exit_code == 0, shown.output
    header, first, second = shown.output.strip().splitlines()
    assert "FAILURE" in header
    assert "licence" in first and "licence" not in second


def test_the_failure_settings_load_from_the_config_file_and_bad_ones_are_refused(tmp_path):
    from drqueue.config import Config, load_config
    from drqueue.errors import ConfigError

    config = Config(root=tmp_path)
    config.ensure_dirs()
    config.config_file.write_text(
        '[[failure_rules]]\npattern = "texture cache full"\nclass = "oom"\n\n'
        '[failure_actions]\nlicence = "retry"\n'
    )
    loaded = load_config(root=tmp_path)
    loaded.check_failure_settings()
    assert loaded.failure_rules == [{"pattern": "texture cache full", "class": "oom"}]
    assert loaded.failure_actions == {"licence": "retry"}
    for bad, said in [
        ({"failure_actions": {"licence": "wait"}}, "failure_actions: unknown action 'wait'"),
        ({"failure_actions": {"ram": "retry"}}, "failure_actions: unknown failure class 'ram'"),
        ({"failure_rules": [{"pattern": "[", "class": "oom"}]}, "does not compile"),
        ({"licence_backoff_seconds": 0}, "licence_backoff_seconds must be above 0"),
    ]:
        with pytest.raises(ConfigError, match=said):
            Config(root=tmp_path, **bad).check_failure_settings()


def test_a_render_killed_by_a_signal_is_never_a_missing_asset():
    """Another render on the same slave can write a line into this one's log and kill it; a
    missing asset ends the whole job, so a kill never counts as one (hostile review)."""
    line = ["unable to open image /nfs/tex/skin.exr"]
    rules = BUILT_IN_RULES
    assert (
        classify(lines=line, rules=rules, exit_code=1).failure_class == FailureClass.MISSING_ASSET
    )
    assert classify(lines=line, rules=rules, exit_code=-9).failure_class == FailureClass.UNKNOWN
    assert classify(lines=line, rules=rules, exit_code=-11).failure_class == FailureClass.CRASH


@pytest.mark.parametrize("setting", ["xy", {"pattern": "x", "class": "oom"}, 3])
def test_failure_rules_that_are_not_a_list_of_tables_are_refused_in_one_line(setting):
    with pytest.raises(FailureRuleError, match=r"^failure_rules must be a list of tables"):
        parse_rules(setting)
