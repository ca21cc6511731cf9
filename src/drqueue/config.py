"""Configuration: ``drqueue.toml`` under DRQUEUE_ROOT, overridden by DRQUEUE_* variables.

Every setting has a default that keeps a farm on 127.0.0.1.  The file lives at
``$DRQUEUE_ROOT/etc/drqueue.toml``; any key may be overridden by the variable
``DRQUEUE_<KEY>`` in upper case (``DRQUEUE_API_PORT=9000``).

Secrets (the API token, the ipyparallel connection files) are written owner-
readable only (mode 0600), in directories that are mode 0700.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import os
import secrets
import textwrap
import tomllib
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from drqueue.errors import ConfigError

#: Where everything lives when DRQUEUE_ROOT is not set.
DEFAULT_ROOT = Path.home() / ".drqueue"

#: Ports the ipyparallel 9.2 controller names in its connection files (registration, heartbeat,
#: control, MUX, task, iopub, notification, broadcast), measured by listing its sockets.
CONTROLLER_PUBLIC_PORTS = 15
#: Ports it binds for itself (monitor, broadcast tree); a restart needs them fresh, outside the
#: connection files' ports (``Controller.argv()``), and a range too short for them made
#: ipyparallel take random ports outside it.
CONTROLLER_INTERNAL_PORTS = 3
#: The smallest ``controller_ports`` range with which the controller never listens outside it.
MIN_CONTROLLER_PORTS = CONTROLLER_PUBLIC_PORTS + CONTROLLER_INTERNAL_PORTS


@dataclass(slots=True)
class Config:
    """The settings of a master, a slave or a client; see docs/operations.md for each."""

    #: Where everything lives: set by DRQUEUE_ROOT, not in the drqueue.toml that lives under it.
    root: Path = DEFAULT_ROOT
    #: Address and port of the HTTP API.  127.0.0.1 unless you mean to serve other machines.
    api_host: str = "127.0.0.1"
    api_port: int = 7680
    #: Connections the API serves at once; beyond it, 503 at once (slow clients cannot starve it).
    api_max_connections: int = 2000
    #: The master URL clients use; defaults to http://api_host:api_port.
    master: str = ""
    #: Client-side token; defaults to the token file under root (on the master's machine).
    token: str = ""
    #: Address the ipyparallel controller binds, and its fixed port range (at least 18 ports).
    controller_ip: str = "127.0.0.1"
    controller_ports: str = "7681-7700"
    #: Store URL: sqlite:///path (default under root/db) or mongodb://… (docs/storage.md).
    store: str = ""
    #: Engine heartbeat: period in ms and misses before an engine counts as lost.
    heartbeat_ms: int = 2000
    heartbeat_misses: int = 10
    #: CurveZMQ encryption of all farm traffic.
    curve: bool = False
    #: "owner" shares the farm round-robin between owners at equal priority; "fifo" does not.
    fair_share: str = "owner"
    #: Seconds a slave's load and free memory are trusted before they are collected again.
    info_cache_seconds: float = 60.0
    #: Failures of one job's tasks on one host before the host stops getting that job.
    block_after_failures: int = 2
    #: Seconds a slave waits for one of its engines to register before restarting it.
    engine_register_timeout: float = 30.0
    #: Slave heartbeats a second the master wants at most: each answer tells the slave to come
    #: back in (online slaves / this) seconds, 2 s at least and 60 s at most.
    heartbeats_per_second: float = 100.0
    #: Times a task may be lost with its engine before it is an error.
    max_lost: int = 5
    #: Completed task ids the controller's Hub remembers (ipyparallel keeps all of them, forever).
    hub_completed_kept: int = 10_000
    #: The most frames one job may hold; a larger submit is refused (docs/jobs.md).
    max_frames_per_job: int = 100_000
    #: The largest HTTP request body the API reads, in bytes; a larger one gets 413.
    max_request_bytes: int = 1 << 20
    #: The farm's own failure rules, before the renderers' and the built-in ones, as
    #: [[failure_rules]] tables: pattern = "a regex" (case-insensitive), class = "licence"
    #: (oom, licence, missing-asset, crash, timeout, output-missing, unknown; docs/jobs.md).
    failure_rules: list[dict[str, str]] = field(default_factory=list)
    #: What the farm does with a failed task of each class, as a table: oom = "retry-bigger",
    #: licence = "backoff", missing-asset = "fail", crash = "retry" (the defaults); a job's
    #: ``--on-failure`` wins.  Actions: retry, retry-bigger, backoff, fail.
    failure_actions: dict[str, str] = field(default_factory=dict)
    #: Seconds a job gets no new task after a licence failure (doubling to 16 times it while
    #: the failures last).
    licence_backoff_seconds: float = 30.0
    #: Path mapping rules, as [[path_map]] tables: linux = "/mnt/p", windows = 'P:\', darwin = ...
    path_map: list[dict[str, str]] = field(default_factory=list)
    #: Renderers an artist's token may submit, "*" for all; admins submit any.  shell runs any
    #: command and every renderer takes env and params, so an artist runs code on the slaves.
    artist_renderers: list[str] = field(default_factory=lambda: ["*"])
    #: Hours a web UI session may stay unused before it must log in again.
    session_hours: float = 12.0
    #: Optional TLS for the API.
    tls_cert: str = ""
    tls_key: str = ""
    #: SMTP server the master sends job mail through (empty: no mail), and the From address.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "drqueue@localhost"
    #: Encryption of the SMTP connection: "starttls", "tls" (implicit, port 465) or "none".
    smtp_tls: str = "starttls"
    #: SMTP login: the user, and a file (mode 0600) that holds its password; empty: no login.
    smtp_user: str = ""
    smtp_password_file: str = ""
    #: Each owner's mail address, as a table: ann = "ann@example.com" (for jobs without --email).
    mail_addresses: dict[str, str] = field(default_factory=dict)
    #: Webhooks, as [[webhooks]] tables: url = "https://...", events = ["job.finished", ...].
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    #: The file (mode 0600) holding the secret every webhook POST is signed with (HMAC-SHA256).
    webhook_secret_file: str = ""
    #: Seconds one SMTP session or webhook POST may take in all before it counts as failed.
    notify_timeout: float = 10.0
    #: Seconds before a failed mail or webhook is tried again (doubling each time, up to an
    #: hour), and seconds after which it is given up, with an event.
    notify_retry_seconds: float = 30.0
    notify_give_up_seconds: float = 86400.0

    # -- derived paths ---------------------------------------------------------------------

    @property
    def etc_dir(self) -> Path:
        return self.root / "etc"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def db_dir(self) -> Path:
        return self.root / "db"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def profile_dir(self) -> Path:
        """The ipyparallel profile: its security/ holds the connection files."""
        return self.root / "ipython"

    @property
    def engine_file(self) -> Path:
        return self.profile_dir / "security" / "ipcontroller-engine.json"

    @property
    def client_file(self) -> Path:
        return self.profile_dir / "security" / "ipcontroller-client.json"

    @property
    def token_file(self) -> Path:
        return self.etc_dir / "token"

    @property
    def config_file(self) -> Path:
        return self.etc_dir / "drqueue.toml"

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{self.db_dir / 'drqueue.sqlite'}"

    @property
    def master_url(self) -> str:
        if self.master:
            url = self.master if "://" in self.master else f"http://{self.master}"
            if url.count(":") == 1:  # no port given
                url = f"{url}:{self.api_port}"
            return url.rstrip("/")
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::", "") else self.api_host
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{host}:{self.api_port}"

    def port_list(self) -> list[int]:
        """The controller ports as a list, from "a-b" or "a,b,c"; refuses a range with fewer
        than MIN_CONTROLLER_PORTS distinct ports, with which the controller listens outside it."""
        ports: list[int] = []
        try:
            for part in self.controller_ports.split(","):
                low, _, high = part.strip().partition("-")
                ports.extend(range(int(low), int(high or low) + 1))
        except ValueError:
            raise ConfigError(
                f"controller_ports {self.controller_ports!r} is not like 7681-7700"
            ) from None
        if not all(0 < port < 65536 for port in ports):
            raise ConfigError(
                f"controller_ports {self.controller_ports!r} names ports outside 1-65535"
            )
        ports = list(dict.fromkeys(ports))  # a port named twice is still one port
        if len(ports) < MIN_CONTROLLER_PORTS:
            raise ConfigError(
                f"controller_ports {self.controller_ports!r} has {len(ports)} ports: the "
                f"ipyparallel controller needs at least {MIN_CONTROLLER_PORTS} "
                f"(e.g. 7681-{7680 + MIN_CONTROLLER_PORTS})"
            )
        return ports

    def artist_may_submit(self, renderer: str) -> bool:
        """Whether an artist's token may submit a job of *renderer* (``artist_renderers``)."""
        return "*" in self.artist_renderers or renderer in self.artist_renderers

    def check_artist_renderers(self) -> None:
        """Refuse an ``artist_renderers`` entry that names no renderer (a typo would lock
        artists out of it without a word)."""
        from drqueue.renderers import all_renderers

        known = all_renderers()
        for name in self.artist_renderers:
            if name != "*" and name not in known:
                raise ConfigError(
                    f'artist_renderers names {name!r}, which is no renderer: use "*" or '
                    f"some of {', '.join(sorted(known))}"
                )

    def check_failure_settings(self) -> None:
        """Refuse ``failure_rules`` and ``failure_actions`` that name an unknown class or
        action, or a regex that does not compile (one line, before the master starts)."""
        from drqueue.failures import FailureRuleError, parse_actions, parse_rules

        try:
            parse_rules(self.failure_rules)
            parse_actions(self.failure_actions, "failure_actions")
        except FailureRuleError as exc:
            raise ConfigError(str(exc)) from None
        if not self.licence_backoff_seconds > 0:
            raise ConfigError(
                f"licence_backoff_seconds must be above 0, not {self.licence_backoff_seconds:g}"
            )

    def check_heartbeat_budget(self) -> None:
        """Refuse a ``heartbeats_per_second`` that is not a positive number (one line, before
        the master starts): the heartbeat period divides by it."""
        if not (math.isfinite(self.heartbeats_per_second) and self.heartbeats_per_second > 0):
            raise ConfigError(
                "heartbeats_per_second must be a finite number above 0 (the slave heartbeats a second "
                f"the master wants at most), not {self.heartbeats_per_second:g}"
            )

    # -- secrets -----------------------------------------------------------------------------

    def api_token(self) -> str:
        """The token clients send: DRQUEUE_TOKEN, or the master's token file."""
        if self.token:
            return self.token
        try:
            return self.token_file.read_text().strip()
        except FileNotFoundError:
            return ""
        except PermissionError:
            raise ConfigError(f"cannot read {self.token_file}: set DRQUEUE_TOKEN") from None

    def ensure_dirs(self) -> None:
        """Create root and its directories; etc/ and ipython/ are private to the owner."""
        for path in (self.root, self.logs_dir, self.db_dir, self.tmp_dir):
            path.mkdir(parents=True, exist_ok=True)
        for private in (self.etc_dir, self.profile_dir, self.profile_dir / "security"):
            private.mkdir(parents=True, exist_ok=True)
            os.chmod(private, 0o700)

    def ensure_config_file(self) -> bool:
        """Write the commented default drqueue.toml (mode 0600) unless a file is already there;
        True if it was written.  An existing file is never touched."""
        self.ensure_dirs()
        try:
            fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as out:
            out.write(default_config_text())
        return True

    def ensure_token(self) -> str:
        """Return the admin API token, creating it (mode 0600) on first use."""
        self.ensure_dirs()
        if not self.token_file.exists():
            write_private(self.token_file, secrets.token_urlsafe(32) + "\n")
        os.chmod(self.token_file, 0o600)
        return self.token_file.read_text().strip()


def setting_groups() -> list[tuple[list[str], str]]:
    """Config's settings in order, grouped as its ``#:`` comments group them: (names, comment).

    The comment above a run of fields is their one-line meaning; the default drqueue.toml
    shows it, and tests check docs/operations.md names every setting, so neither drifts from
    this class.
    """
    source = textwrap.dedent(inspect.getsource(Config))
    (body,) = ast.parse(source).body
    starts = {}
    inside = set()
    for node in body.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            starts[node.lineno] = node.target.id
            inside.update(range(node.lineno + 1, (node.end_lineno or node.lineno) + 1))
    groups: list[tuple[list[str], str]] = []
    comment: list[str] = []
    current: list[str] | None = None
    for number, line in enumerate(source.splitlines(), 1):
        text = line.strip()
        if text.startswith("#:"):
            if current is not None:
                current, comment = None, []
            comment.append(text[2:].strip())
        elif number in starts:
            if current is None:
                current = []
                groups.append((current, " ".join(comment)))
            current.append(starts[number])
        elif number not in inside:
            current, comment = None, []
    return groups


def _toml_value(value: Any) -> str:
    """*value* as TOML: a string, number, bool, or a list of them (JSON spells these alike)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        value = str(value)
    if value == {}:
        return "{}"
    if isinstance(value, (str, int, float)) or (
        isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value)
    ):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"no TOML for the default {value!r}")


def default_config_text() -> str:
    """The default drqueue.toml: every setting commented out with its default, under its meaning."""
    defaults = {
        f.name: f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        for f in fields(Config)
    }
    lines = [
        "# DrQueue's settings.  The master wrote this file at its first start and never rewrites it.",
        "# Every setting is shown commented out with its default: uncomment a line to change it.",
        "# A DRQUEUE_<KEY> environment variable overrides the file (DRQUEUE_API_PORT=9000).",
        "# Each setting is explained in docs/operations.md.",
    ]
    for group, meaning in setting_groups():
        names = [name for name in group if name != "root"]  # the file lives under root
        if not names:
            continue
        lines += ["", *textwrap.wrap(meaning, 98, initial_indent="# ", subsequent_indent="# ")]
        lines += [f"# {name} = {_toml_value(defaults[name])}" for name in names]
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write *text* to *path* so that only the owner can ever read it."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def _a(kind: object) -> str:
    """'an int', 'a float', 'a Path': the type's name with its article."""
    name = getattr(kind, "__name__", str(kind))
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _coerce(name: str, kind: Any, value: Any) -> Any:
    try:
        if kind is bool or kind == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind in (int, "int", float, "float") and isinstance(value, bool):
            raise TypeError("a TOML true or false is not a number")
        if kind in (int, "int"):
            return int(value)
        if kind in (float, "float"):
            return float(value)
        if kind in (Path, "Path"):
            return Path(value).expanduser()
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name} wants {_a(kind)}, not {value!r}") from None
    if kind == "dict[str, str]":
        if isinstance(value, str):  # from a DRQUEUE_* variable: "ann=ann@example.com,bob=..."
            pairs = [part.strip().partition("=") for part in value.split(",") if part.strip()]
            value = {key.strip(): address.strip() for key, _sep, address in pairs}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"setting {name} wants a table of names and strings, not {value!r}")
    if kind == "list[str]":
        if isinstance(value, str):  # from a DRQUEUE_* variable: "blender,povray"
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"setting {name} wants a list of names, not {value!r}")
    return value


def load_config(**overrides: Any) -> Config:
    """Defaults, then drqueue.toml, then DRQUEUE_* variables, then *overrides* (CLI options)."""
    root = Path(
        overrides.get("root") or os.environ.get("DRQUEUE_ROOT") or DEFAULT_ROOT
    ).expanduser()
    values: dict[str, Any] = {"root": root}
    toml_path = Config(root=root).config_file
    if toml_path.exists():
        try:
            with open(toml_path, "rb") as src:
                data = tomllib.load(src)
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ConfigError(f"cannot read {toml_path}: {exc}") from None
        values.update(data)
    known = {f.name: f for f in fields(Config)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{toml_path}: unknown setting {unknown[0]!r}")
    for name in known:
        env_value = os.environ.get(f"DRQUEUE_{name.upper()}")
        if env_value is not None and name not in ("root", "path_map", "webhooks", "failure_rules"):
            values[name] = env_value
    values.update({k: v for k, v in overrides.items() if v is not None})
    for name, value in list(values.items()):
        values[name] = _coerce(name, known[name].type, value)
    config = Config(**values)
    if config.fair_share not in ("owner", "fifo"):
        raise ConfigError(f"fair_share must be 'owner' or 'fifo', not {config.fair_share!r}")
    return config
