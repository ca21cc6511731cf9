"""The master's mail and webhook settings, checked at start, and the senders' retry rules, over
an in-memory store with real far ends on loopback (no farm: tests/integration/test_notify.py
has one)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from farm import free_port_block, start_master_refused, wait_for
from notify_servers import HookServer, SilentServer, verified_body

from drqueue.config import load_config
from drqueue.errors import ConfigError
from drqueue.master.notify import Notifications, notify_settings, shown_url, sign
from drqueue.models import JobSpec, split_frames
from drqueue.store.memory import MemoryStore


@pytest.fixture(autouse=True)
def no_drqueue_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("DRQUEUE_"):
            monkeypatch.delenv(name)


def secret_file(tmp_path: Path, name: str, text: str, mode: int = 0o600) -> str:
    path = tmp_path / name
    path.write_text(text + "\n")
    path.chmod(mode)
    return str(path)


def settings_of(tmp_path: Path, toml: str):
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc" / "drqueue.toml").write_text(toml)
    return notify_settings(load_config(root=tmp_path))


BAD = [
    ('smtp_host = "mail"\nsmtp_tls = "ssl"', "smtp_tls must be one of starttls, tls, none"),
    ('smtp_host = "mail"\nsmtp_from = "farm"', "smtp_from 'farm' is not a mail address"),
    ('smtp_host = "mail"\nsmtp_user = "u"', "smtp_user and smtp_password_file go together"),
    (
        'smtp_host = "mail.example.com"\nsmtp_tls = "none"\nsmtp_user = "u"\n'
        'smtp_password_file = "PW"',
        'smtp_tls = "none" would send smtp_user\'s password to mail.example.com in the clear',
    ),
    (
        'smtp_host = "mail"\nsmtp_user = "u"\nsmtp_password_file = "OPEN"',
        "is readable by others (mode 0640): chmod 600",
    ),
    (
        'smtp_host = "mail"\nsmtp_user = "u"\nsmtp_password_file = "/nonexistent/pw"',
        "smtp_password_file /nonexistent/pw: cannot read it (No such file or directory)",
    ),
    ('[mail_addresses]\nann = "ann at example"', "mail_addresses: ann = 'ann at example'"),
    (
        '[[webhooks]]\nurl = "ftp://example.com/x"\nevents = ["job.finished"]',
        "webhooks[0] url 'ftp://example.com/x' is refused: only http:// and https://",
    ),
    (
        '[[webhooks]]\nurl = "file:///etc/passwd"\nevents = ["job.finished"]',
        "webhooks[0] url 'file:///etc/passwd' is refused",
    ),
    (
        '[[webhooks]]\nurl = "https://example.com/x"\nevents = ["job.done"]',
        "webhooks[0] names event 'job.done', which is none of job.submitted",
    ),
    (
        '[[webhooks]]\nurl = "https://example.com/x"\nevents = ["job.error"]\nretries = 3',
        "webhooks[0] has an unknown key 'retries'",
    ),
    (
        'webhook_secret_file = "SECRET"\n[[webhooks]]\nurl = "https://example.com/x"\n'
        'events = ["job.error"]\n[[webhooks]]\nurl = "https://example.com/y"',
        "webhooks[1] needs events",
    ),
    (
        '[[webhooks]]\nurl = "https://example.com/x"\nevents = ["job.error"]',
        "webhooks need webhook_secret_file",
    ),
    ("notify_timeout = 0", "notify_timeout must be more than 0 seconds"),
]


@pytest.mark.parametrize(("toml", "message"), BAD)
def test_a_bad_mail_or_webhook_setting_is_one_clear_line(tmp_path, toml, message):
    toml = toml.replace('"PW"', f'"{secret_file(tmp_path, "pw", "Xyzzy-pw")}"')
    toml = toml.replace('"OPEN"', f'"{secret_file(tmp_path, "open", "Xyzzy-pw", 0o640)}"')
    toml = toml.replace('"SECRET"', f'"{secret_file(tmp_path, "secret", "s3")}"')
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, toml)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value) and "Xyzzy" not in str(caught.value)


def test_good_settings_read_the_secrets_and_never_show_them(tmp_path):
    settings = settings_of(
        tmp_path,
        f'smtp_host = "mail.example.com"\nsmtp_user = "farm"\n'
        f'smtp_password_file = "{secret_file(tmp_path, "pw", "pa55word")}"\n'
        f'webhook_secret_file = "{secret_file(tmp_path, "secret", "h00k")}"\n'
        '[[webhooks]]\nurl = "https://user:pw@hooks.example.com:8443/in?token=abc"\n'
        'events = ["job.finished", "computer.lost"]\n',
    )
    assert (settings.smtp_password, settings.webhook_secret) == ("pa55word", b"h00k")
    assert "pa55word" not in repr(settings) and "h00k" not in repr(settings)
    (hook,) = settings.webhooks
    assert hook.events == {"job.finished", "computer.lost"}
    assert hook.shown == "https://hooks.example.com:8443/in"


def test_drqueue_master_refuses_a_bad_webhook_url_in_one_line_before_it_starts(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "drqueue.toml").write_text(
        '[[webhooks]]\nurl = "gopher://example.com/hook"\nevents = ["job.finished"]\n'
    )
    result = start_master_refused(tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: webhooks[0] url 'gopher://example.com/hook' is refused: only http:// and "
        "https:// URLs with a host are posted to"
    ]
    assert not (tmp_path / "etc" / "token").exists()


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body_and_the_receiver_checks_it():
    body = b'{"event":"job.finished"}'
    signature = sign(b"s3", "1700000000", body)
    assert (
        signature
        == "sha256=" + __import__("hmac").new(b"s3", b"1700000000." + body, "sha256").hexdigest()
    )
    headers = {"X-DrQueue-Timestamp": "1700000000", "X-DrQueue-Signature": signature}
    assert verified_body(b"s3", headers, body, now=1700000100) == {"event": "job.finished"}
    with pytest.raises(ValueError, match="bad signature"):
        verified_body(b"other", headers, body, now=1700000100)
    with pytest.raises(ValueError, match="replay"):
        verified_body(b"s3", headers, body, now=1700000000 + 301)


def test_shown_url_drops_userinfo_query_and_fragment():
    assert shown_url("https://u:p@h.example/x/y?t=1#f") == "https://h.example/x/y"
    assert shown_url("http://[::1]:8080/h") == "http://[::1]:8080/h"


# -- the senders, over a memory store --------------------------------------------------------


def notifications(tmp_path: Path, toml: str) -> tuple[MemoryStore, Notifications]:
    config_root = tmp_path / "root"
    (config_root / "etc").mkdir(parents=True)
    (config_root / "etc" / "drqueue.toml").write_text(toml)
    config = load_config(root=config_root)
    store = MemoryStore()
    return store, Notifications(store, config, notify_settings(config))


def finished_job(store: MemoryStore, **spec) -> int:
    job_id = store.create_job(
        JobSpec("shell", 1, 1, params={"cmd": "true"}, **spec), split_frames(1, 1, 1, 1)
    )
    store.mark_dispatched(store.get_task(job_id, 0).id, "a1", 0, "alpha")
    store.record_result("a1", {"status": "finished", "exit_code": 0, "seconds": 1.5})
    return job_id


def test_a_mail_to_a_refused_server_is_retried_with_backoff_then_given_up(tmp_path):
    port = free_port_block(1)
    store, notes = notifications(
        tmp_path,
        f'smtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_tls = "none"\n'
        "notify_retry_seconds = 0.1\nnotify_give_up_seconds = 0.5\n",
    )
    notes.enqueue_new()  # the first read starts at the newest event: nothing of the past
    job_id = finished_job(store, notify={"email": ["ann@example.com"]})
    notes.enqueue_new()
    assert notes.enqueue_new() == 0  # read once
    wait_for(
        lambda: (
            notes.send_due("email", None) >= 0 and store.events(job_id=job_id, kind="email.gave-up")
        ),
        30,
        0.05,
        "the mail to be given up",
    )
    kinds = [e.kind for e in store.events(job_id=job_id, kind="email")]
    assert kinds[0] == "email.failed" and kinds[-1] == "email.gave-up"
    assert kinds.count("email.gave-up") == 1 and "email.sent" not in kinds
    failures = [e.message for e in store.events(job_id=job_id, kind="email.failed")]
    assert "(attempt 1)" in failures[0] and "next try in 0 s" in failures[0]
    if len(failures) > 1:  # the second waits twice as long (0.2 s): shown rounded
        assert "(attempt 2)" in failures[1]
    assert store.due_notices("email", time.time() + 1e6) == []


def test_a_hanging_smtp_server_holds_up_neither_the_webhooks_nor_the_notifier(tmp_path):
    silent = SilentServer(free_port_block(1))
    hooks = HookServer(b"s3cret")
    try:
        store, notes = notifications(
            tmp_path,
            f'smtp_host = "127.0.0.1"\nsmtp_port = {silent._socket.getsockname()[1]}\n'
            f'smtp_tls = "none"\nnotify_timeout = 30\n'
            f'webhook_secret_file = "{secret_file(tmp_path, "secret", "s3cret")}"\n'
            f'[[webhooks]]\nurl = "{hooks.url("/in")}"\nevents = ["job.finished"]\n',
        )
        notes.start()
        wait_for(lambda: store.notify_cursor() is not None, 30, 0.05, "the notifier's start")
        first = finished_job(store, notify={"email": ["ann@example.com"]})
        wait_for(lambda: silent.accepted, 30, 0.05, "the mail sender to hang")
        second = finished_job(store)
        wait_for(lambda: hooks.received("/in", "job.finished", second), 30, 0.05, "hook 2")
        assert hooks.received("/in", "job.finished", first)
        assert store.events(job_id=first, kind="email") == []  # still hanging, not failed
    finally:
        silent.stop()  # ends the hang at once
        notes.stop()
        hooks.stop()


@pytest.mark.parametrize(
    ("notify", "owner", "mailed"),
    [
        ({}, "zoe", []),  # no recipients, no address for the owner
        ({}, "carol", ["carol@example.com"]),  # the owner's address from mail_addresses
        ({"email": ["ann@example.com"]}, "carol", ["ann@example.com"]),  # the job's own
        ({"on": ["first-frame"]}, "zoe", []),  # when, but to nobody
        ({"on": ["error"]}, "carol", []),
    ],
)
def test_who_is_mailed_at_a_jobs_end(tmp_path, notify, owner, mailed):
    store, notes = notifications(
        tmp_path,
        'smtp_host = "mail.example.com"\n[mail_addresses]\ncarol = "carol@example.com"\n',
    )
    notes.enqueue_new()
    job_id = finished_job(store, notify=notify, owner=owner)
    notes.enqueue_new()
    due = store.due_notices("email", time.time() + 1)
    assert [n.payload["to"] for n in due] == ([mailed] if mailed else [])
    if mailed:
        assert due[0].job_id == job_id and due[0].payload["subject"].endswith("finished")


def test_frames_done_and_failed_count_the_short_last_block_without_reading_every_task():
    from drqueue.master.notify import JobReport

    store = MemoryStore()
    spec = JobSpec("shell", 1, 10, block_size=3, retries=0, params={"cmd": "true"})
    job_id = store.create_job(spec, split_frames(1, 10, 1, 3))  # 3, 3, 3 and 1 frames
    for index, status in ((0, "finished"), (3, "finished"), (1, "failed")):
        attempt = f"a{index}"
        store.mark_dispatched(store.get_task(job_id, index).id, attempt, 0, "alpha")
        store.record_result(attempt, {"status": status, "exit_code": 0, "seconds": 2.0})
    report = JobReport.read(store, store.get_job(job_id), "http://farm:7680")
    assert (report.frames_done, report.frames_failed) == (4, 3)
    assert (report.total_seconds, report.mean_frame_seconds) == (4.0, 1.0)
    assert report.first_error == "exit code 0 (failed 1 time)"
    assert (report.link, report.shown_task) == (f"http://farm:7680/jobs/{job_id}", 3)


def test_an_event_older_than_the_give_up_time_is_not_sent_at_all(tmp_path):
    store, notes = notifications(
        tmp_path, 'smtp_host = "mail.example.com"\nnotify_give_up_seconds = 60\n'
    )
    notes.enqueue_new()
    finished_job(store, notify={"email": ["ann@example.com"]})
    notes.enqueue_new(now=time.time() + 61)  # a notifier that was off for longer
    assert store.due_notices("email", time.time() + 1e6) == []
    assert store.notify_cursor() == store.events(limit=1)[-1].id  # read past all the same
