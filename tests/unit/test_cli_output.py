"""What the CLI prints of other people's words (job names, reasons, pool descriptions) prints as
written: rich markup is not rendered (a name like '[/bold]' used to crash `drqueue jobs` for
everyone), and control characters such as ANSI escapes are shown escaped, never obeyed.

Names submitted now are printable only (models.JobIn), but a store written before that rule, or
a reason or description, may hold anything: these tests put such values in the store directly."""

from __future__ import annotations

import json

import pytest
from _live_api import live_api
from click.testing import CliRunner

from drqueue.cli.main import cli, printable
from drqueue.models import JobSpec, split_frames

HOSTILE = "[/bold][link=http://evil]x[/link] \x1b[31mred\x1b[0m \u202eevil\x07"


@pytest.fixture
def api(tmp_path):
    with live_api(tmp_path) as live:
        yield live


def drqueue(api, *args: str):
    return CliRunner().invoke(cli, list(args), env={**api.env(), "COLUMNS": "400"})


def hostile_job(api) -> int:
    spec = JobSpec("shell", 1, 2, name=HOSTILE, owner="ann", params={"cmd": "true"})
    job_id = api.store.create_job(spec, split_frames(1, 2, 1, 1))
    task = api.store.get_task(job_id, 0)
    api.store.mark_dispatched(task.id, "a1", 0, "alpha")
    api.store.record_result("a1", {"status": "failed", "exit_code": 1, "reason": HOSTILE})
    return job_id


def test_printable_escapes_control_characters_and_keeps_the_rest():
    assert printable("shot 042 – ünï [bold]") == "shot 042 – ünï [bold]"
    assert printable("a\x1b[31mb") == "a\\x1b[31mb"
    assert printable("\u202eevil") == "\\u202eevil"
    assert printable("one\ntwo\tthree") == "one two three"


@pytest.mark.parametrize(
    "command", [["jobs"], ["job", "show", "{id}"], ["tasks", "{id}"], ["events", "--job", "{id}"]]
)
def test_a_hostile_name_or_reason_prints_as_written(api, command):
    job_id = hostile_job(api)
    result = drqueue(api, *(part.format(id=job_id) for part in command))
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output
    assert "\x07" not in result.output
    assert "[/bold][link=http://evil]x[/link]" in result.output  # shown, not rendered
    assert "\\x1b[31mred" in result.output


def test_an_error_quoting_a_hostile_value_is_one_plain_line(api):
    result = drqueue(api, "pool", "delete", "no-such-pool")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("error:")


def test_events_lists_the_trail_filtered_by_job_kind_and_actor(api):
    """`drqueue events` shows the audit trail the master keeps (mail and webhook deliveries are
    events too), and each option becomes the API's filter."""
    first = hostile_job(api)
    second = api.store.create_job(
        JobSpec("shell", 1, 1, name="plain", owner="bob", params={"cmd": "true"}),
        split_frames(1, 1, 1, 1),
    )
    api.store.add_event("email.sent", "mail to ann@example.com sent", job_id=second)
    everything = drqueue(api, "events")
    assert everything.exit_code == 0, everything.output
    assert "job.submitted" in everything.output and "email.sent" in everything.output
    mails = drqueue(api, "events", "--kind", "email")
    assert "mail to ann@example.com sent" in mails.output and "job.submitted" not in mails.output
    only_first = drqueue(api, "events", "--job", str(first), "--json")
    kinds = {event["kind"] for event in json.loads(only_first.output)}
    assert "task.failed" in kinds and "email.sent" not in kinds
    newest = drqueue(api, "events", "-n", "1", "--json")
    assert [event["kind"] for event in json.loads(newest.output)] == ["email.sent"]
    api.store.add_event("job.stopped", "job stopped", job_id=second, actor="wendy")
    wendys = drqueue(api, "events", "--actor", "wendy", "--json")
    assert [event["message"] for event in json.loads(wendys.output)] == ["job stopped"]
    refused = drqueue(api, "events", "--job", "0")
    assert refused.exit_code == 2 and "--job" in refused.output
