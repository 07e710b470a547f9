"""Runtime settings: arguments to ``repertory.init`` over environment variables over defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from repertory.agents.demo_model import DEMO_MODEL
from repertory.errors import InvalidInput
from repertory.stores.base import Store
from repertory.stores.crypto import KeyRing, split_keys
from repertory.stores.encrypted import wrap_store

__all__ = ["Settings", "default_model", "home_dir"]


def home_dir() -> Path:
    """Where embedded state lives: ``$REPERTORY_HOME`` or ``./.repertory``."""
    return Path(os.environ.get("REPERTORY_HOME", ".repertory")).expanduser().resolve()


def default_model() -> str:
    """The model an Agent uses when none is given: ``$REPERTORY_MODEL`` or the demo model."""
    return os.environ.get("REPERTORY_MODEL") or DEMO_MODEL


@dataclass(slots=True)
class Settings:
    """Everything a runtime needs to know; picklable so hosts receive the same copy."""

    store: str = ""
    namespace: str = "repertory"
    num_hosts: int = 0  # 0: one per CPU of the cluster
    max_resident: int = 100_000  # virtual sessions kept in memory per host
    idle_timeout: float = 600.0  # seconds before an idle session is passivated
    max_message_bytes: int = 256 * 1024
    turn_timeout: float = 600.0
    # Seconds a runtime's lease on a contended session lasts unless renewed: how long a runtime
    # that died holding one keeps another waiting (HostCore hands sessions over by lease).
    lease_ttl: float = 10.0
    connect_timeout: float = 15.0  # seconds to reach a Ray cluster that was asked for by address
    sweep_interval: float = 60.0  # seconds between sweeps of expired sessions (SQLite)
    # Seconds a session lives after its last access; None keeps it until deleted. "auto": one
    # hour on Redis (as the seed page does), forever on SQLite.
    default_ttl: float | str | None = "auto"
    store_access: str = "direct"  # "direct": hosts write the store; "actor": through the StoreActor
    # Where agents run on Ray: "actor" in their AgentActor replicas (a hop per turn; tools and
    # model clients isolated from the hosts), "host" inside the host running the session (no hop
    # per turn; a crashing tool takes the host and its resident sessions down with it).
    # "" reads REPERTORY_AGENT_PLACEMENT, else "actor".
    agent_placement: str = ""
    # Journal each step of a turn with tools (model replies, tool results) so that a turn resent
    # after a crash resumes from its last step; False trades that for a write less per step.
    journal_steps: bool = True
    # Encryption at rest: key strings "kid:base64key" (the first encrypts), a comma-separated
    # string or a list; None reads REPERTORY_ENCRYPTION_KEY. Hidden from repr, never logged.
    encryption_key: str | list[str] | None = field(default=None, repr=False)
    encryption_required: bool = False  # refuse plaintext records instead of reading them
    # Bytes of its sessions' histories an agent core keeps (each AgentActor replica, each agent
    # run in a host or in the local runtime), so that a session's next turn sends and decodes
    # only its new messages (repertory.state.prompt); 0 sends every prompt whole.
    prompt_cache_bytes: int = 64 * 1024 * 1024
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.store:
            # A deployment passes its Redis URL from a secret as an environment variable.
            self.store = os.environ.get("REPERTORY_STORE") or f"sqlite:///{home_dir() / 'state.db'}"
        if self.default_ttl == "auto":
            self.default_ttl = 3600.0 if self.store.startswith(("redis://", "rediss://", "redis+cluster://", "rediss+cluster://")) else None
        if self.default_ttl is not None and (not isinstance(self.default_ttl, (int, float)) or self.default_ttl <= 0):
            raise InvalidInput("default_ttl must be a positive number of seconds, None, or 'auto'")
        if not isinstance(self.connect_timeout, (int, float)) or not 0 < self.connect_timeout < float("inf"):
            raise InvalidInput("connect_timeout must be a positive, finite number of seconds")
        if not isinstance(self.lease_ttl, (int, float)) or not 0 < self.lease_ttl < float("inf"):
            raise InvalidInput("lease_ttl must be a positive, finite number of seconds")
        if self.max_message_bytes <= 0:
            raise InvalidInput("max_message_bytes must be positive")
        if not isinstance(self.prompt_cache_bytes, int) or isinstance(self.prompt_cache_bytes, bool) \
                or self.prompt_cache_bytes < 0:
            raise InvalidInput("prompt_cache_bytes must be a whole number of bytes, 0 or more (0: whole prompts)")
        if self.store_access not in ("direct", "actor"):
            raise InvalidInput("store_access must be 'direct' or 'actor'")
        self.agent_placement = self.agent_placement or os.environ.get("REPERTORY_AGENT_PLACEMENT") or "actor"
        if self.agent_placement not in ("actor", "host"):
            raise InvalidInput(f"agent_placement must be 'actor' or 'host', not {self.agent_placement!r}")
        if self.encryption_key is None:
            self.encryption_key = os.environ.get("REPERTORY_ENCRYPTION_KEY") or None
        if self.encryption_key is not None:
            self.encryption_key = split_keys(self.encryption_key) or None
            if self.encryption_key is not None:
                KeyRing(self.encryption_key)  # a malformed key fails here, in the caller, naming the mistake
        if self.encryption_required and self.encryption_key is None:
            raise InvalidInput("encryption_required needs an encryption key: pass encryption_key=... or set "
                               "REPERTORY_ENCRYPTION_KEY")

    def keyring(self) -> KeyRing | None:
        """The encryption keys, or None when encryption at rest is off."""
        return KeyRing(self.encryption_key) if self.encryption_key else None

    def open_store(self) -> Store:
        """This runtime's store, encrypted when keys are configured."""
        from repertory.stores.factory import open_store

        return self.wrap_store(open_store(self.store))

    def wrap_store(self, store: Store) -> Store:
        """``store`` behind encryption when keys are configured; itself otherwise."""
        return wrap_store(store, self.keyring(), required=self.encryption_required)
