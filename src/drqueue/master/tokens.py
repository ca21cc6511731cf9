"""API tokens and their roles.

The master's own token (``etc/token``, made at first start) is an **admin**
token. More tokens are made with ``drqueue token create --role ROLE --owner
NAME`` on the master's machine; only their SHA-256 is kept, in
``etc/tokens.json`` (mode 0600).  The API re-reads both files when they change
(their inode, size or mtime), so ``drqueue token revoke`` and ``drqueue token
rotate-admin`` take effect at the next request, without a restart.

- **admin** tokens control everything, computers and pools included;
- **artist** tokens submit jobs as their owner and control only their own jobs;
- **slave** tokens only heartbeat and fetch the engine connection file: a slave
  needs nothing else, and a render that reads its slave's token can do nothing
  with it but pose as a slave.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drqueue.config import Config, write_private
from drqueue.errors import ConfigError, NotFound

log = logging.getLogger(__name__)

ROLES = ("admin", "artist", "slave")

#: The id and name `drqueue token list` shows for the master's own token (etc/token).
MASTER_TOKEN_ID = "admin"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who called the API."""

    name: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    @property
    def slave(self) -> bool:
        return self.role == "slave"


def token_digest(token: str) -> str:
    """The SHA-256 of *token*, as tokens.json keeps it and a web session remembers it."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(entry: dict[str, Any]) -> str:
    """A stored token's id: the start of its SHA-256, which says nothing about the token."""
    return entry["sha256"][:12]


def _version(path: Path) -> tuple[int, int, int] | None:
    """What tells that *path* changed (write_private replaces the file: a new inode), or None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class TokenBook:
    """The tokens a master accepts, re-read from etc/ whenever the files change."""

    def __init__(self, config: Config, admin_token: str):
        self.path: Path = config.etc_dir / "tokens.json"
        self.admin_path: Path = config.token_file
        #: The master's token as given at start; replaced by etc/token's once that file changes.
        self.admin_token = admin_token
        self._admin_version = _version(self.admin_path)
        self._version: tuple[int, int, int] | None = None
        self._by_digest: dict[str, Identity] = {}

    def _load(self) -> None:
        admin_version = _version(self.admin_path)
        if admin_version != self._admin_version:
            # Rotated (or removed, which revokes it) while the master runs.
            try:
                self.admin_token = self.admin_path.read_text().strip()
            except FileNotFoundError:
                self.admin_token = ""
            self._admin_version = admin_version
        version = _version(self.path)
        if version == self._version:
            return
        # Noted first: a file that cannot be read is not read again on every request (a 16 MB
        # broken file made each one parse it); the tokens known so far stay until it is fixed.
        self._version = version
        try:
            entries = json.loads(self.path.read_text()).get("tokens", []) if version else []
            by_digest = {e["sha256"]: Identity(e["owner"], e["role"]) for e in entries}
        except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
            log.error("%s cannot be read, the tokens known before stay: %s", self.path, exc)
            return
        self._by_digest = by_digest

    def identify(self, token: str) -> Identity | None:
        """The identity of *token*, compared in constant time, or None."""
        self._load()
        if (
            token
            and self.admin_token
            and hmac.compare_digest(token.encode(), self.admin_token.encode())
        ):
            return Identity("admin", "admin")
        return self._identify_digest(token_digest(token))

    def identify_digest(self, digest: str) -> Identity | None:
        """The identity of the token whose SHA-256 is *digest* (a web session's), or None once
        that token is revoked or rotated; compared in constant time."""
        self._load()
        if self.admin_token and hmac.compare_digest(digest, token_digest(self.admin_token)):
            return Identity("admin", "admin")
        return self._identify_digest(digest)

    def _identify_digest(self, digest: str) -> Identity | None:
        # A dict lookup, not a constant-time compare with each stored digest: the key is a
        # SHA-256, so what its timing could tell says nothing of a token; comparing with each
        # of 4,000 slave tokens cost every request 0.27 ms on the event loop (hostile review).
        return self._by_digest.get(digest)

    def admin_digest(self) -> str:
        """The SHA-256 of the master's own token as it is now ("" if there is none)."""
        self._load()
        return token_digest(self.admin_token) if self.admin_token else ""


def _read_book(config: Config) -> dict[str, Any]:
    path = config.etc_dir / "tokens.json"
    return json.loads(path.read_text()) if path.exists() else {"tokens": []}


def _write_book(config: Config, data: dict[str, Any]) -> None:
    write_private(config.etc_dir / "tokens.json", json.dumps(data, indent=1))


def token_entries(config: Config) -> list[dict[str, Any]]:
    """The entries of etc/tokens.json as kept there (sha256, role, owner, created): what
    `drqueue store export` moves with the farm.  ConfigError if the file cannot be read."""
    try:
        return list(_read_book(config)["tokens"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read {config.etc_dir / 'tokens.json'}: {exc}") from None


def replace_token_entries(config: Config, entries: list[dict[str, Any]]) -> None:
    """Make *entries* the whole of etc/tokens.json (`drqueue store import`)."""
    config.ensure_dirs()
    _write_book(config, {"tokens": entries})


def create_token(config: Config, role: str, owner: str) -> str:
    """Make a new token, keep its digest in etc/tokens.json, and return it (shown once)."""
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not owner or len(owner) > 100 or any(ch in owner for ch in "\x00\n/"):
        raise ConfigError(f"owner {owner!r} is not a valid name")
    config.ensure_dirs()
    data = _read_book(config)
    token = secrets.token_urlsafe(32)
    data["tokens"].append(
        {"sha256": token_digest(token), "role": role, "owner": owner, "created": time.time()}
    )
    _write_book(config, data)
    return token


def list_tokens(config: Config) -> list[dict[str, Any]]:
    """Every token the master accepts, without secrets: id, role, name and creation time."""
    found = []
    if config.token_file.exists():
        created = config.token_file.stat().st_mtime
        found.append({"id": MASTER_TOKEN_ID, "role": "admin", "name": "admin", "created": created})
    for entry in _read_book(config)["tokens"]:
        found.append(
            {
                "id": token_id(entry),
                "role": entry["role"],
                "name": entry["owner"],
                "created": entry.get("created"),
            }
        )
    return found


def revoke_tokens(config: Config, which: str) -> list[dict[str, Any]]:
    """Revoke the token with id *which*, or every token named *which*; return what was revoked.

    The master's own token is not revoked here (the master's machine needs one admin token):
    :func:`rotate_admin_token` replaces it.
    """
    if which == MASTER_TOKEN_ID:
        raise ConfigError(
            "the master's own token is replaced, not revoked: run `drqueue token rotate-admin`"
        )
    data = _read_book(config)
    gone = [e for e in data["tokens"] if which in (token_id(e), e["owner"])]
    if not gone:
        raise NotFound(f"no token has the id or name {which!r}: see `drqueue token list`")
    data["tokens"] = [e for e in data["tokens"] if e not in gone]
    _write_book(config, data)
    return [{"id": token_id(e), "role": e["role"], "name": e["owner"]} for e in gone]


def rotate_admin_token(config: Config) -> str:
    """Replace the master's own token (etc/token) with a new one and return it; the old one
    stops working at the running API's next request."""
    config.ensure_dirs()
    token = secrets.token_urlsafe(32)
    write_private(config.token_file, token + "\n")
    os.chmod(config.token_file, 0o600)
    return token
