"""Ray actors: thin shells over repertory's plain classes."""

from __future__ import annotations

from .agent import AgentActor
from .session_host import SessionHost
from .store import RemoteStore, StoreActor

__all__ = ["AgentActor", "RemoteStore", "SessionHost", "StoreActor"]
