"""API tokens and their roles.

The master's own token (``etc/token``, made at first start) is an **admin**
token. More tokens are made with ``drqueue token create --role artist --owner
NAME`` on the master's machine; only their SHA-256 is kept, in
``etc/tokens.json`` (mode 0600), which the API re-reads when it changes.

- **admin** tokens control everything, computers and pools included;
- **artist** tokens submit jobs as their owner and control only their own jobs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from drqueue.config import Config, write_private
from drqueue.errors import ConfigError

ROLES = ("admin", "artist")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who called the API."""

    name: str
    role: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenBook:
    """The tokens a master accepts."""

    def __init__(self, config: Config, admin_token: str):
        self.path: Path = config.etc_dir / "tokens.json"
        self.admin_token = admin_token
        self._mtime = -1.0
        self._by_digest: dict[str, Identity] = {}

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._by_digest, self._mtime = {}, -1.0
            return
        if mtime == self._mtime:
            return
        entries = json.loads(self.path.read_text()).get("tokens", [])
        self._by_digest = {e["sha256"]: Identity(e["owner"], e["role"]) for e in entries}
        self._mtime = mtime

    def identify(self, token: str) -> Identity | None:
        """The identity of *token*, compared in constant time, or None."""
        if token and hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return Identity("admin", "admin")
        self._load()
        digest = _digest(token)
        for known, identity in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return identity
        return None


def create_token(config: Config, role: str, owner: str) -> str:
    """Make a new token, keep its digest in etc/tokens.json, and return it (shown once)."""
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not owner or len(owner) > 100 or any(ch in owner for ch in "\x00\n/"):
        raise ConfigError(f"owner {owner!r} is not a valid name")
    config.ensure_dirs()
    path = config.etc_dir / "tokens.json"
    data = json.loads(path.read_text()) if path.exists() else {"tokens": []}
    token = secrets.token_urlsafe(32)
    data["tokens"].append(
        {"sha256": _digest(token), "role": role, "owner": owner, "created": time.time()}
    )
    write_private(path, json.dumps(data, indent=1))
    return token
