"""Mail and webhooks, sent by the master from a durable outbox in the store.

Slaves never hold SMTP credentials: the master alone sends.  Three threads of their own, so a
refused, slow or hanging SMTP server or webhook endpoint never holds up the dispatcher or the
API (every connection has a timeout, ``notify_timeout``):

- **the notifier** reads the store's events in id order from a cursor kept in the store
  (``Store.notify_cursor``), turns those that concern someone into *notices* (a job's end or
  first frame for its recipients, the configured kinds for each webhook), and adds them to the
  outbox with the new cursor in one transaction (``Store.enqueue_notices``).  Events are
  already durable and ordered, and each change writes its event in the transaction that makes
  it, so nothing is missed and, each notice having a unique key, nothing is enqueued twice.
  At its first start it begins at the newest event: an existing farm is not mailed its past.
- **two senders**, one for mail and one for webhooks (a hanging SMTP server does not hold the
  webhooks up, nor the reverse), each sending its due notices, marking each sent, or due again
  after ``notify_retry_seconds``, doubling up to an hour, until it is
  ``notify_give_up_seconds`` old and given up.  Each attempt is an event (``email.sent``,
  ``webhook.failed``, ``email.gave-up`` ...) of the notice's job, seen in ``drqueue events``.

A master stopped with notices owed sends them after its restart (at least once: one stopped in
the middle of a send may send that one again).  What a mail or webhook says is decided when it
is enqueued, so a late one still tells of the moment it was about.

Settings (docs/operations.md): ``smtp_host``, ``smtp_port``, ``smtp_from``, ``smtp_tls``
("starttls", "tls" or "none"), ``smtp_user`` and ``smtp_password_file`` (mode 0600),
``mail_addresses`` (owner -> address), ``webhooks`` (``url`` and ``events``),
``webhook_secret_file`` (mode 0600), ``notify_timeout`` (10 s), ``notify_retry_seconds``
(30 s), ``notify_give_up_seconds`` (a day).  :func:`notify_settings` checks them all when the
master starts.  The password and the secret are read there and kept in memory only: they never
reach a log, an event, the API or a render.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import smtplib
import socket
import ssl
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from drqueue.config import Config
from drqueue.errors import ConfigError, DrQueueError, NotFound, StoreBusy
from drqueue.master.thumbnails import thumbnail_of
from drqueue.models import (
    Job,
    TaskState,
    count_frames,
    is_mail_address,
    notify_events,
    notify_recipients,
)
from drqueue.store import Store, policy
from drqueue.store.base import Event, Notice

log = logging.getLogger("drqueue.master.notify")

#: The event kinds a webhook may ask for.
WEBHOOK_EVENTS = (
    "job.submitted",
    "job.finished",
    "job.error",
    "task.first-frame",
    "task.failed",
    "computer.lost",
)

#: The job's notify moment (models.NOTIFY_EVENTS) each event kind is.
MAIL_MOMENTS = {"job.finished": "finished", "job.error": "error", "task.first-frame": "first-frame"}

#: How the SMTP connection is encrypted (smtp_tls).
SMTP_TLS = ("starttls", "tls", "none")

#: Events the notifier reads at once.
EVENTS_PER_READ = 200
#: Seconds the notifier waits for an event whose id is missing before the events after it
#: (MongoDB without transactions reserves an event's id before it inserts it).
SETTLE_SECONDS = 5.0
#: Seconds between the notifier's reads of the events, and between the senders' looks at
#: the outbox.
POLL_SECONDS = 0.5
#: Seconds a stopping master waits for each of these threads.
STOP_WAIT_SECONDS = 2.0
#: The longest error text kept and shown of a failed attempt.
ERROR_CHARS = 300

#: Headers of a webhook POST.
TIMESTAMP_HEADER = "X-DrQueue-Timestamp"
SIGNATURE_HEADER = "X-DrQueue-Signature"
EVENT_HEADER = "X-DrQueue-Event"
DELIVERY_HEADER = "X-DrQueue-Delivery"


# -- settings --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str
    events: frozenset[str]

    @property
    def shown(self) -> str:
        return shown_url(self.url)


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """The master's checked mail and webhook settings (:func:`notify_settings`)."""

    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "drqueue@localhost"
    smtp_tls: str = "starttls"
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    mail_addresses: dict[str, str] = field(default_factory=dict)
    webhooks: tuple[Webhook, ...] = ()
    webhook_secret: bytes = field(default=b"", repr=False)
    timeout: float = 10.0
    retry_seconds: float = 30.0
    give_up_seconds: float = 86400.0
    #: Where a job's web page is: ``<master_url>/jobs/<id>``.
    master_url: str = ""

    @property
    def mails(self) -> bool:
        return bool(self.smtp_host)


def shown_url(url: str) -> str:
    """A webhook URL as events and logs show it: no user, password, query or fragment (where
    a receiver's token may sit)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def read_secret_file(setting: str, path: str) -> str:
    """The text of a secret file: ConfigError (one line) if it is missing, empty, or readable
    by anyone but its owner (mode 0600 or tighter)."""
    file = Path(path).expanduser()
    try:
        mode = file.stat().st_mode
        text = file.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{setting} {path}: cannot read it ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{setting} {path} is readable by others (mode {stat.S_IMODE(mode):04o}): "
            f"chmod 600 {path}"
        )
    if not text:
        raise ConfigError(f"{setting} {path} is empty")
    return text


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _webhook(index: int, table: Any) -> Webhook:
    where = f"webhooks[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table with url and events, not {table!r}")
    unknown = sorted(set(table) - {"url", "events"})
    if unknown:
        raise ConfigError(f"{where} has an unknown key {unknown[0]!r}: only url and events")
    url, events = table.get("url"), table.get("events")
    if not isinstance(url, str):
        raise ConfigError(f"{where} needs a url, like https://example.com/hook")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{where} url {shown_url(url)!r} is refused: only http:// and https:// URLs "
            "with a host are posted to"
        )
    if not isinstance(events, list) or not events:
        raise ConfigError(f"{where} needs events, some of {', '.join(WEBHOOK_EVENTS)}")
    for event in events:
        if event not in WEBHOOK_EVENTS:
            raise ConfigError(
                f"{where} names event {event!r}, which is none of {', '.join(WEBHOOK_EVENTS)}"
            )
    return Webhook(url, frozenset(events))


def notify_settings(config: Config) -> NotifySettings:
    """The mail and webhook settings of *config*, checked: ConfigError, one line, for the first
    that is wrong (the master then refuses to start).  Reads the password and secret files."""
    for name in ("notify_timeout", "notify_retry_seconds", "notify_give_up_seconds"):
        if not getattr(config, name) > 0:
            raise ConfigError(f"{name} must be more than 0 seconds, not {getattr(config, name)}")
    for owner, address in config.mail_addresses.items():
        if not is_mail_address(address):
            raise ConfigError(
                f"mail_addresses: {owner} = {address!r} is not a mail address like ann@example.com"
            )
    password = ""
    if config.smtp_host:
        if config.smtp_tls not in SMTP_TLS:
            raise ConfigError(
                f"smtp_tls must be one of {', '.join(SMTP_TLS)}, not {config.smtp_tls!r}"
            )
        if not 0 < config.smtp_port < 65536:
            raise ConfigError(f"smtp_port {config.smtp_port} is not a port (1-65535)")
        if not is_mail_address(config.smtp_from):
            raise ConfigError(
                f"smtp_from {config.smtp_from!r} is not a mail address like drqueue@example.com"
            )
        if bool(config.smtp_user) != bool(config.smtp_password_file):
            raise ConfigError("smtp_user and smtp_password_file go together: set both or neither")
        if config.smtp_user:
            if config.smtp_tls == "none" and not _is_loopback(config.smtp_host):
                raise ConfigError(
                    f'smtp_tls = "none" would send smtp_user\'s password to {config.smtp_host} '
                    'in the clear: use "starttls" or "tls"'
                )
            password = read_secret_file("smtp_password_file", config.smtp_password_file)
    hooks = tuple(_webhook(i, table) for i, table in enumerate(config.webhooks))
    secret = b""
    if hooks:
        if not config.webhook_secret_file:
            raise ConfigError(
                "webhooks need webhook_secret_file: a file (mode 0600) holding "
                "the secret their POSTs are signed with"
            )
        secret = read_secret_file("webhook_secret_file", config.webhook_secret_file).encode()
    return NotifySettings(
        smtp_host=config.smtp_host,
        smtp_port=config.smtp_port,
        smtp_from=config.smtp_from,
        smtp_tls=config.smtp_tls,
        smtp_user=config.smtp_user,
        smtp_password=password,
        mail_addresses=dict(config.mail_addresses),
        webhooks=hooks,
        webhook_secret=secret,
        timeout=config.notify_timeout,
        retry_seconds=config.notify_retry_seconds,
        give_up_seconds=config.notify_give_up_seconds,
        master_url=config.master_url,
    )


# -- what a notice says ------------------------------------------------------------------------------


@dataclass(slots=True)
class JobReport:
    """What mail and webhooks tell of a job, read from the store when its event is read."""

    id: int
    name: str
    owner: str
    status: str
    frames_done: int
    frames_failed: int
    total_seconds: float
    mean_frame_seconds: float | None
    first_error: str | None
    link: str
    #: The task whose frame a mail shows (the last finished), if one finished.
    shown_task: int | None

    @classmethod
    def read(cls, store: Store, job: Job, master_url: str) -> JobReport:
        """From the job's counters and at most three indexed reads, whatever its size: it is
        read for every event a webhook asks for (each task.failed of a 100,000-task job)."""
        done = frames_in(store, job, TaskState.FINISHED, job.counts.finished)
        failed_tasks = store.list_tasks(job.id, state=TaskState.ERROR, limit=1)
        last = store.last_finished_task(job.id)
        return cls(
            id=job.id,
            name=job.spec.name or f"job {job.id}",
            owner=job.spec.owner,
            status=job.status,
            frames_done=done,
            frames_failed=frames_in(store, job, TaskState.ERROR, job.counts.error),
            total_seconds=job.task_seconds,
            mean_frame_seconds=job.task_seconds / done if done else None,
            first_error=failed_tasks[0].reason if failed_tasks else None,
            link=f"{master_url}/jobs/{job.id}",
            shown_task=last.index if last else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "status": self.status,
            "frames_done": self.frames_done,
            "frames_failed": self.frames_failed,
            "total_seconds": round(self.total_seconds, 3),
            "mean_frame_seconds": (
                None if self.mean_frame_seconds is None else round(self.mean_frame_seconds, 3)
            ),
            "first_error": self.first_error,
            "url": self.link,
        }


def frames_in(store: Store, job: Job, state: TaskState, tasks: int) -> int:
    """The frames of the job's *tasks* tasks in *state*: each holds block_size frames but the
    last task of the job, which holds what is left (models.split_frames)."""
    if not tasks:
        return 0
    spec = job.spec
    frames = count_frames(spec.start, spec.end, spec.step, spec.block_size)
    last_frames = frames - (job.counts.total - 1) * spec.block_size
    short = spec.block_size - last_frames
    if short and store.get_task(job.id, job.counts.total - 1).state == state:
        return tasks * spec.block_size - short
    return tasks * spec.block_size


def _seconds(value: float) -> str:
    minutes, seconds = divmod(value, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02.0f} s"
    return f"{seconds:.1f} s"


def mail_text(event: Event, report: JobReport) -> tuple[str, str]:
    """The subject and body of a job's mail about *event*."""
    if event.kind == "task.first-frame":
        subject = f"[DrQueue] {report.name} (job {report.id}): first frame done"
        opening = f"The first frame of {report.name} is done: check it before the rest renders."
    else:
        subject = f"[DrQueue] {report.name} (job {report.id}) {report.status}"
        opening = f"Job {report.id}, {report.name}, has {report.status}."
        if report.status == "error":
            opening = f"Job {report.id}, {report.name}, ended in error."
    lines = [
        opening,
        "",
        f"State:        {report.status}",
        f"Owner:        {report.owner}",
        f"Frames done:  {report.frames_done}",
        f"Frames failed: {report.frames_failed}",
        f"Render time:  {_seconds(report.total_seconds)} in all",
    ]
    if report.mean_frame_seconds is not None:
        lines.append(f"Mean frame:   {_seconds(report.mean_frame_seconds)}")
    if report.first_error:
        lines.append(f"First error:  {report.first_error}")
    lines += ["", f"The job: {report.link}", "", f"-- DrQueue ({event.message})"]
    return subject, "\n".join(lines) + "\n"


def webhook_body(event: Event, report: JobReport | None) -> str:
    """The JSON a webhook receives for *event* (docs/operations.md, "Webhooks")."""
    return json.dumps(
        {
            "id": event.id,
            "event": event.kind,
            "at": event.at,
            "message": event.message,
            "job_id": event.job_id,
            "task_index": event.task_index,
            "computer": event.computer,
            "job": report.to_dict() if report else None,
        },
        separators=(",", ":"),
    )


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-DrQueue-Signature of a POST: HMAC-SHA256 over ``timestamp + "." + body``."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def notices_for(event: Event, store: Store, settings: NotifySettings, now: float) -> list[Notice]:
    """The notices *event* asks for: mail to its job's recipients, a POST to each webhook."""
    hooks = [hook for hook in settings.webhooks if event.kind in hook.events]
    moment = MAIL_MOMENTS.get(event.kind)
    if not hooks and not (moment and settings.mails):
        return []
    if now - event.at > settings.give_up_seconds:
        return []  # it would be given up at once (a notifier that was off for that long)
    job = report = None
    if event.job_id is not None:
        try:
            job = store.get_job(event.job_id)
        except NotFound:
            job = None  # deleted since
        if job is not None:
            report = JobReport.read(store, job, settings.master_url)
    notices = []

    def notice(channel: str, target: str, payload: dict[str, Any], key: str) -> Notice:
        return Notice(
            key=f"{event.id}:{channel}:{key}",
            channel=channel,
            target=target,
            payload=payload,
            event_id=event.id,
            job_id=event.job_id,
            created_at=event.at,  # given up notify_give_up_seconds after what it tells of
            due_at=now,
        )

    if moment and settings.mails and job is not None and report is not None:
        recipients = notify_recipients(job.spec.notify)
        if not recipients and job.spec.owner in settings.mail_addresses:
            recipients = [settings.mail_addresses[job.spec.owner]]
        if recipients and moment in notify_events(job.spec.notify, bool(recipients)):
            subject, body = mail_text(event, report)
            payload = {"to": recipients, "subject": subject, "body": body}
            payload["thumbnail_task"] = report.shown_task
            # The events show how many were mailed, not who: every artist reads the events.
            count = f"{len(recipients)} recipient{'s' if len(recipients) > 1 else ''}"
            notices.append(notice("email", count, payload, "mail"))
    if hooks:
        body = webhook_body(event, report)
        for index, hook in enumerate(hooks):  # the key names the URL by its hash: no token
            payload = {"url": hook.url, "body": body, "event": event.kind}
            which = hashlib.sha256(hook.url.encode()).hexdigest()[:16]
            notices.append(notice("webhook", hook.shown, payload, f"{index}:{which}"))
    return notices


# -- sending -------------------------------------------------------------------------------------


class SendFailed(DrQueueError):
    """One attempt at a mail or a webhook failed; the text says why, in one line."""


class SendRefused(SendFailed):
    """The server refused the mail for good (an SMTP 5xx answer): trying again cannot help, so
    it is given up at once rather than retried, with an event each time, for a day."""


#: Lines an SMTP server may answer in one session: a multi-line answer has no limit of its own
#: in smtplib, and a server that never stopped one grew the master by gigabytes in seconds.
MAX_REPLY_LINES = 500


class _Lines:
    """An SMTP connection's reply stream that ends the session after MAX_REPLY_LINES lines."""

    def __init__(self, stream: Any):
        self.stream = stream
        self.lines = 0

    def readline(self, size: int = -1) -> bytes:
        self.lines += 1
        if self.lines > MAX_REPLY_LINES:
            raise OSError(f"the SMTP server answered more than {MAX_REPLY_LINES} lines")
        return self.stream.readline(size)

    def close(self) -> None:
        self.stream.close()


class _Bounded:
    """smtplib's SMTP with its replies read through :class:`_Lines`."""

    sock: Any
    file: Any

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            self.file = _Lines(self.sock.makefile("rb"))
        return super().getreply()  # type: ignore[misc]


class _SMTP(_Bounded, smtplib.SMTP):
    pass


class _SMTP_SSL(_Bounded, smtplib.SMTP_SSL):  # noqa: N801 (smtplib's name)
    pass


def header_text(text: str) -> str:
    """*text* safe in a mail header: no line breaks, and no ``=?`` that the email package would
    decode as an RFC 2047 encoded word (a job named ``=?utf-8?q?...=0D=0AReply-To:...?=``
    once wrote headers of its own into the farm's mail)."""
    return " ".join(text.split()).replace("=?", "= ?")


def send_mail(settings: NotifySettings, payload: dict[str, Any], jpeg: bytes | None) -> str:
    """Send one mail; what the server answered, or SendFailed."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(payload["to"])
    message["Subject"] = header_text(payload["subject"])
    message.set_content(payload["body"])
    if jpeg:
        message.add_attachment(jpeg, maintype="image", subtype="jpeg", filename="last-frame.jpg")
    if settings.smtp_tls == "tls":
        smtp: smtplib.SMTP = _SMTP_SSL(
            timeout=settings.timeout, context=ssl.create_default_context()
        )
    else:
        smtp = _SMTP(timeout=settings.timeout)
    # The whole session within notify_timeout: smtplib's timeout bounds each read only, and a
    # server answering a line every few seconds held the mail sender for ever.
    watchdog = threading.Timer(settings.timeout, _cut, args=(smtp,))
    watchdog.daemon = True
    watchdog.start()
    try:
        smtp.connect(settings.smtp_host, settings.smtp_port)
        with smtp:
            if settings.smtp_tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            refused = smtp.send_message(message, to_addrs=payload["to"])
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendRefused(_one_line(exc)) from None
    except smtplib.SMTPResponseException as exc:
        failed = SendRefused if 500 <= exc.smtp_code < 600 else SendFailed
        raise failed(_one_line(exc)) from None
    except (OSError, smtplib.SMTPException, ValueError) as exc:  # ValueError: a bad header
        raise SendFailed(_one_line(exc)) from None
    finally:
        watchdog.cancel()
        smtp.close()
    if refused:
        return f"sent, refused for {', '.join(sorted(refused))}"
    return "sent"


def post_webhook(
    settings: NotifySettings, client: httpx.Client, payload: dict[str, Any], key: str
) -> str:
    """POST one webhook, signed; what it answered (2xx), or SendFailed."""
    body = payload["body"].encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "DrQueue",
        EVENT_HEADER: payload["event"],
        DELIVERY_HEADER: key,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(settings.webhook_secret, timestamp, body),
    }
    try:
        # Only the status matters: the answer's body is never read (one that never ended once
        # grew the master by gigabytes; one a byte at a time held the sender for ever).
        with client.stream("POST", payload["url"], content=body, headers=headers) as answer:
            status = answer.status_code
    except httpx.HTTPError as exc:
        raise SendFailed(_one_line(exc)) from None
    if not 200 <= status < 300:
        raise SendFailed(f"HTTP {status}")
    return f"answered HTTP {status}"


def _cut(smtp: smtplib.SMTP) -> None:
    """End an SMTP session past its deadline: its blocked read fails at once."""
    sock = smtp.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no answer"
    return f"{type(exc).__name__}: {text}"[:ERROR_CHARS]


# -- the threads -----------------------------------------------------------------------------------


class Notifications:
    """The notifier and the two senders of one master (see the module's docstring)."""

    def __init__(self, store: Store, config: Config, settings: NotifySettings):
        self.store = store
        self.config = config
        self.settings = settings
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def active(self) -> bool:
        return self.settings.mails or bool(self.settings.webhooks)

    def start(self) -> None:
        if not self.active:
            return
        loops = [("notifier", self._notify_loop)]
        if self.settings.mails:
            loops.append(("mail-sender", lambda: self._send_loop("email")))
        if self.settings.webhooks:
            # httpx logs every request's whole URL at INFO, and a webhook's query may hold the
            # receiver's token: DrQueue logs each delivery itself, with the URL shown_url makes.
            logging.getLogger("httpx").setLevel(logging.WARNING)
            loops.append(("webhook-sender", lambda: self._send_loop("webhook")))
        for name, target in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the threads; a sender held by a silent server is left to its timeout (its
        notice stays due, and is sent after the master's restart)."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(STOP_WAIT_SECONDS)

    def _guarded(self, step: Callable[[], int], what: str) -> int:
        """*step*'s answer, or 0 when it failed (logged; the loop tries again)."""
        try:
            return step()
        except StoreBusy as exc:
            log.warning("%s waits for the store: %s", what, exc)
        except Exception:
            log.exception("%s failed; trying again", what)
        return 0

    def _notify_loop(self) -> None:
        while not self._stopping.is_set():
            if self._guarded(self.enqueue_new, "the notifier") < EVENTS_PER_READ:
                self._stopping.wait(POLL_SECONDS)

    def enqueue_new(self, now: float | None = None) -> int:
        """Read the events after the cursor, add their notices to the outbox and move the
        cursor past them; return how many events were read."""
        store = self.store
        now = time.time() if now is None else now
        cursor = store.notify_cursor()
        if cursor is None:
            newest = store.events(limit=1)
            store.enqueue_notices([], newest[-1].id if newest else 0)
            return 0
        events = store.events(
            since_id=cursor, before_id=cursor + EVENTS_PER_READ + 1, limit=EVENTS_PER_READ
        )
        if not events:
            if store.events(since_id=cursor + EVENTS_PER_READ, limit=1):
                store.enqueue_notices([], cursor + EVENTS_PER_READ)  # a run of missing ids
            return 0
        notices: list[Notice] = []
        read = cursor
        for event in events:
            if event.id != read + 1 and now - event.at < SETTLE_SECONDS:
                break  # an earlier id may still be on its way in
            notices += notices_for(event, store, self.settings, now)
            read = event.id
        if read != cursor:
            store.enqueue_notices(notices, read)
        return read - cursor

    def _send_loop(self, channel: str) -> None:
        client = httpx.Client(timeout=self.settings.timeout, follow_redirects=False)
        try:
            while not self._stopping.is_set():
                tried = self._guarded(
                    functools.partial(self.send_due, channel, client), f"the {channel} sender"
                )
                if not tried:
                    self._stopping.wait(POLL_SECONDS)
        finally:
            client.close()

    def send_due(self, channel: str, client: httpx.Client) -> int:
        """Try each of *channel*'s due notices once; return how many were tried."""
        notices = self.store.due_notices(channel, time.time())
        for notice in notices:
            if self._stopping.is_set():
                break
            self._attempt(notice, client)
        return len(notices)

    def _attempt(self, notice: Notice, client: httpx.Client) -> None:
        attempts = notice.attempts + 1
        try:
            if notice.channel == "email":
                detail = send_mail(self.settings, notice.payload, self._thumbnail(notice))
            else:
                detail = post_webhook(self.settings, client, notice.payload, notice.key)
        except SendFailed as exc:
            error = str(exc)
            now = time.time()
            retry_at = (
                None
                if isinstance(exc, SendRefused)
                else policy.notice_retry_at(
                    attempts=attempts,
                    created_at=notice.created_at,
                    now=now,
                    first_delay=self.settings.retry_seconds,
                    give_up_after=self.settings.give_up_seconds,
                )
            )
            if retry_at is None:
                log.warning("%s to %s given up: %s", notice.channel, notice.target, error)
                event = policy.gave_up_event(notice.channel, notice.target, attempts, error)
                self.store.finish_notice(notice, event)
            else:
                log.info("%s to %s failed: %s", notice.channel, notice.target, error)
                event = policy.delivery_failed_event(
                    notice.channel, notice.target, attempts, error, retry_at - now
                )
                self.store.retry_notice(notice, retry_at, error, event)
            return
        log.info("%s to %s: %s", notice.channel, notice.target, detail)
        event = policy.delivered_event(notice.channel, notice.target, attempts, detail)
        self.store.finish_notice(notice, event)

    def _thumbnail(self, notice: Notice) -> bytes | None:
        """The JPEG of the frame a mail shows, or None (no image, or it cannot be read)."""
        index = notice.payload.get("thumbnail_task")
        if index is None or notice.job_id is None:
            return None
        try:
            task = self.store.get_task(notice.job_id, index)
            return thumbnail_of(notice.job_id, task, self.config).jpeg
        except Exception as exc:  # a mail without its picture beats no mail
            log.info("no thumbnail for the mail of job %s: %s", notice.job_id, exc)
            return None
