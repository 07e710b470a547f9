"""What a server needs to know: where to listen, its agents, limits, and where its secrets are.

Secrets (token keys, the admin key) are given in code, or read where the server runs from
``$REPERTORY_SECRET_KEYS`` / ``$REPERTORY_ADMIN_KEY`` or from the files that
``$REPERTORY_SECRET_KEYS_FILE`` / ``$REPERTORY_ADMIN_KEY_FILE`` (or the config) name. A Ray Serve
deployment receives the config without them (:meth:`ServerConfig.without_secrets`): each
replica reads them from its own environment or files.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repertory.agents.agent import Agent
from repertory.errors import InvalidInput
from repertory.tokens import ENV_KEYS, Keyring

__all__ = ["ADMIN_ENV", "ServerConfig", "is_loopback"]

ADMIN_ENV = "REPERTORY_ADMIN_KEY"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: the only hosts a no-auth server may bind."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_secret_file(path: str | os.PathLike[str], what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InvalidInput(f"cannot read the {what} file {path}: {exc.strerror}; check the path") from None


@dataclass
class ServerConfig:
    """Settings of ``repertory serve`` / :func:`repertory.server.create_app`.

    ``agents``: agents by name (or ``agents_file``, YAML/JSON); a chat names one, else the
    first. Without any, sessions continue with their stored agent (the default assistant).
    ``insecure_no_auth=True`` serves every session without tokens, to anyone: refused on a
    host that is not loopback. ``rate_limit`` is per token (``limits`` notation,
    ``"120/minute"``; None: off), per server process.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    agents: dict[str, Agent] = field(default_factory=dict)
    agents_file: str | None = None
    secret_keys: str | Keyring | None = None
    admin_key: str | None = None
    secret_keys_file: str | None = None
    admin_key_file: str | None = None
    insecure_no_auth: bool = False
    max_body_bytes: int = 1024 * 1024
    rate_limit: str | None = "600/minute"
    token_ttl: float = 3600.0
    # A runtime to start when none runs in the server's process (repertory.init arguments).
    init: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.insecure_no_auth and not is_loopback(self.host):
            raise InvalidInput(f"insecure_no_auth serves every session to anyone: it is refused on {self.host!r}; "
                               "bind 127.0.0.1, or set REPERTORY_SECRET_KEYS and use tokens")
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1024:
            raise InvalidInput("max_body_bytes must be an int of at least 1024")
        if self.agents and not all(isinstance(a, Agent) for a in self.agents.values()):
            raise InvalidInput("agents must be a dict of name -> repertory.Agent")

    def keyring(self) -> Keyring | None:
        """The token keys: given, else from the file, else ``$REPERTORY_SECRET_KEYS``; None if none."""
        if self.secret_keys is not None:
            return Keyring.of(self.secret_keys)
        path = self.secret_keys_file or os.environ.get(f"{ENV_KEYS}_FILE")
        if path:
            return Keyring.from_env(_read_secret_file(path, "secret keys"))
        if os.environ.get(ENV_KEYS, "").strip():
            return Keyring.from_env()
        return None

    def admin(self) -> str | None:
        """The admin key: given, else from the file, else ``$REPERTORY_ADMIN_KEY``; None if none."""
        if self.admin_key is not None:
            key = self.admin_key
        elif self.admin_key_file or os.environ.get(f"{ADMIN_ENV}_FILE"):
            key = _read_secret_file(self.admin_key_file or os.environ[f"{ADMIN_ENV}_FILE"], "admin key")
        else:
            key = os.environ.get(ADMIN_ENV) or None
        if key is not None and len(key) < 16:
            raise InvalidInput("the admin key must be at least 16 characters")
        return key

    def without_secrets(self) -> ServerConfig:
        """A copy to ship to other processes: secret values dropped, file paths kept."""
        return dataclasses.replace(self, secret_keys=None, admin_key=None)

    def __repr__(self) -> str:
        return (f"ServerConfig(host={self.host!r}, port={self.port}, agents={sorted(self.agents)}, "
                f"insecure_no_auth={self.insecure_no_auth}, rate_limit={self.rate_limit!r})")
