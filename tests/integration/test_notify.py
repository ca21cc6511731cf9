"""Mail and webhooks from a real farm (issue 13, parts 2 and 3): the master sends them, from the
outbox in its store, to a real SMTP server (aiosmtpd) and a webhook receiver on loopback that
checks every signature.  A refused, then hanging, SMTP server holds up neither the API nor the
dispatch, and a mail still owed when the master is killed arrives, once, after its restart."""

from __future__ import annotations

import time

import pytest
from farm import Farm, free_port_block, wait_for
from notify_servers import HookServer, MailBox, SilentServer

SMTP_USER, SMTP_PASSWORD = "drqueue", "mail-pass-w0rd"
SECRET = "hook-s3cret-value"


@pytest.fixture(scope="module")
def servers():
    hooks = HookServer(SECRET.encode(), failing={"/flaky": 2})
    mailbox = MailBox(free_port_block(1), SMTP_USER, SMTP_PASSWORD)
    mailbox.start()
    yield mailbox, hooks
    mailbox.stop()
    hooks.stop()


@pytest.fixture(scope="module")
def farm(tmp_path_factory, servers):
    mailbox, hooks = servers
    root = tmp_path_factory.mktemp("farm")
    etc = root / "etc"
    etc.mkdir(mode=0o700)
    for name, text in (("smtp-password", SMTP_PASSWORD), ("hook-secret", SECRET)):
        (etc / name).write_text(text + "\n")
        (etc / name).chmod(0o600)
    (etc / "drqueue.toml").write_text(
        f"""
smtp_host = "127.0.0.1"
smtp_port = {mailbox.port}
smtp_tls = "none"
smtp_from = "farm@example.com"
smtp_user = "{SMTP_USER}"
smtp_password_file = "{etc / "smtp-password"}"
webhook_secret_file = "{etc / "hook-secret"}"
notify_timeout = 3
notify_retry_seconds = 0.3

[mail_addresses]
carol = "carol@example.com"

[[webhooks]]
url = "{hooks.url("/hook")}"
events = ["job.submitted", "job.finished", "job.error", "task.failed", "computer.lost"]

[[webhooks]]
url = "{hooks.url("/flaky")}?token=not-for-events"
events = ["job.finished"]
"""
    )
    farm = Farm(root)
    farm.start_master()
    farm.add_slave("alpha")
    farm.wait_engines(1)
    yield farm
    farm.stop()


def events_of(farm: Farm, job_id: int, family: str) -> list[dict]:
    return [e for e in farm.client.events(job_id) if e["kind"].startswith(family + ".")]


def test_a_finished_job_mails_its_recipients_its_numbers_its_link_and_its_last_frame(
    farm, servers, tmp_path
):
    mailbox, _hooks = servers
    submitted = farm.cli(
        "submit", "fractal", "-s", "1", "-e", "3", "-n", "shot 12", "--output",
        str(tmp_path / "f_####.png"), "--width", "64", "--height", "48",
        "--notify", "finished,first-frame", "--email", "ann@example.com",
        "--email", "bob@example.org", check=True,
    )  # fmt: skip
    job_id = int(submitted.stdout.split()[-1])
    farm.wait_job(job_id)
    done = wait_for(lambda: mailbox.about(f"(job {job_id}) finished"), 60, 0.1, "the mail")
    (first,) = wait_for(lambda: mailbox.about(f"(job {job_id}): first frame"), 60, 0.1, "first")
    (mail,) = done
    assert mail.sender == "farm@example.com"
    assert sorted(mail.recipients) == ["ann@example.com", "bob@example.org"]
    assert mail.message["To"] == "ann@example.com, bob@example.org"
    assert mail.subject == f"[DrQueue] shot 12 (job {job_id}) finished"
    text = mail.text
    assert "Frames done:  3" in text and "Frames failed: 0" in text
    assert "Render time:" in text and "Mean frame:" in text
    assert f"{farm.config.master_url}/jobs/{job_id}" in text
    assert "First error" not in text
    ((name, kind, jpeg),) = mail.attachments
    assert (name, kind, jpeg[:3]) == ("last-frame.jpg", "image/jpeg", b"\xff\xd8\xff")
    assert first.attachments and "first frame of shot 12 is done" in first.text
    sent = events_of(farm, job_id, "email")
    assert [e["kind"] for e in sent] == ["email.sent", "email.sent"]
    assert "email to 2 recipients sent" in sent[0]["message"]  # how many, not who


def test_a_job_in_error_mails_its_owner_the_first_error_and_signed_webhooks_tell_of_it(
    farm, servers
):
    mailbox, hooks = servers
    job_id = farm.client.submit(
        "shell", None, start=1, end=2, owner="carol", retries=0, name="broken",
        params={"cmd": "sh -c 'echo the scene is missing >&2; exit 3'"},
    )["id"]  # fmt: skip
    farm.wait_job(job_id)
    (mail,) = wait_for(lambda: mailbox.about(f"(job {job_id})"), 60, 0.1, "the mail")
    assert mail.recipients == ["carol@example.com"]
    assert mail.subject == f"[DrQueue] broken (job {job_id}) error"
    assert "ended in error" in mail.text and "Frames failed: 2" in mail.text
    assert "First error:  exit code 3" in mail.text
    assert mail.attachments == []  # no frame finished
    end = wait_for(lambda: hooks.received("/hook", "job.error", job_id), 60, 0.1, "job.error")
    body = end[0].body
    assert body["job"]["status"] == "error" and body["job"]["frames_failed"] == 2
    assert body["job"]["first_error"].startswith("exit code 3")
    assert hooks.received("/hook", "job.submitted", job_id)
    wait_for(lambda: len(hooks.received("/hook", "task.failed", job_id)) == 2, 30, 0.1, "2 fails")
    assert all(post.error is None for post in hooks.received("/hook"))
    assert hooks.received("/flaky", job_id=job_id) == []  # it asked for job.finished only


def test_a_webhook_answering_500_twice_is_retried_until_its_200_and_its_events_say_so(
    farm, servers
):
    _mailbox, hooks = servers
    job_id = farm.client.submit("shell", None, start=1, end=1, params={"cmd": "true"})["id"]
    farm.wait_job(job_id)
    wait_for(lambda: events_of(farm, job_id, "webhook")[-1:], 60, 0.1, "a delivery")
    flaky = wait_for(
        lambda: (
            [e for e in events_of(farm, job_id, "webhook") if "/flaky" in e["message"]][2:]
            and [e for e in events_of(farm, job_id, "webhook") if "/flaky" in e["message"]]
        ),
        60,
        0.1,
        "three attempts at /flaky",
    )
    assert [e["kind"] for e in flaky] == ["webhook.failed", "webhook.failed", "webhook.sent"]
    assert "HTTP 500" in flaky[0]["message"] and "after 3 attempts" in flaky[2]["message"]
    posts = hooks.received("/flaky", "job.finished", job_id)
    assert len(posts) == 3 and all(post.error is None for post in posts)
    assert all("not-for-events" not in e["message"] for e in flaky)  # nor the URL's query


def test_a_refused_then_hanging_smtp_server_holds_nothing_up_and_the_mail_survives_a_restart(
    farm, servers
):
    mailbox, hooks = servers
    mailbox.stop()  # refused
    owed = farm.client.submit(
        "shell", None, start=1, end=1, params={"cmd": "true"}, name="owed",
        notify={"email": ["dan@example.com"]},
    )["id"]  # fmt: skip
    farm.wait_job(owed)
    wait_for(lambda: events_of(farm, owed, "email"), 60, 0.1, "a failed attempt")
    assert events_of(farm, owed, "email")[0]["kind"] == "email.failed"
    assert "Connection refused" in events_of(farm, owed, "email")[0]["message"]

    silent = SilentServer(mailbox.port)  # accepts, never answers
    try:
        wait_for(lambda: silent.accepted, 60, 0.1, "the sender to connect to the silent server")
        started = time.monotonic()
        farm.client.farm()
        assert time.monotonic() - started < 2, "the API waited for the SMTP server"
        other = farm.client.submit("shell", None, start=1, end=3, params={"cmd": "true"})["id"]
        assert farm.wait_job(other)["status"] == "finished"
        wait_for(  # and the webhooks go on meanwhile
            lambda: hooks.received("/hook", "job.finished", other), 60, 0.1, "its webhook"
        )
        assert not mailbox.about(f"(job {owed})")
    finally:
        silent.stop()
    farm.kill_master()  # with the mail owed, and the SMTP server away
    mailbox.start()
    farm.start_master()
    (mail,) = wait_for(lambda: mailbox.about(f"(job {owed})"), 90, 0.1, "the owed mail")
    assert mail.recipients == ["dan@example.com"]
    sent = wait_for(
        lambda: [e for e in events_of(farm, owed, "email") if e["kind"] == "email.sent"],
        30,
        0.1,
        "email.sent",
    )
    assert len(sent) == 1 and len(mailbox.about(f"(job {owed})")) == 1
    farm.wait_engines(1)  # the slave is back

    # No secret reached a log or an event.
    logs = (farm.root / "master.out").read_text()
    trail = " ".join(e["message"] for e in farm.client.events(limit=10_000))
    for secret in (SMTP_PASSWORD, SECRET, "not-for-events"):
        assert secret not in logs and secret not in trail


def test_a_slave_that_goes_away_is_a_computer_lost_webhook(farm, servers):
    _mailbox, hooks = servers
    farm.stop_slave("alpha")  # the module's last test: its farm stops next
    (lost,) = wait_for(lambda: hooks.received("/hook", "computer.lost"), 60, 0.1, "computer.lost")
    assert (lost.body["computer"], lost.body["job"], lost.error) == ("alpha", None, None)
    assert lost.body["message"].startswith("alpha lost its last engine")
