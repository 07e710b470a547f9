"""Bytes stored per session: its history, its meta, its checkpoints and its long-term memories.

Sizes come from the store itself (``Store.usage``: one query per backend, summing sizes where
they are stored), never from loading the sessions, so ``repertory sessions ls --sort size``
stays cheap on a large store. Sizes are as stored: encrypted records count their envelopes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from repertory._sync import on_portal, run_sync
from repertory.errors import RepertoryError, SessionNotFound
from repertory.ids import SessionRef
from repertory.logs import get_logger
from repertory.memory.settings import MemorySettings, turn_memory
from repertory.runtimes.base import Runtime
from repertory.runtimes.current import get_runtime
from repertory.stores.base import StorageUsage

__all__ = ["SessionUsage", "astorage_usage", "storage_usage", "usage_by_key"]

log = get_logger("repertory.admin")


@dataclass(slots=True, frozen=True)
class SessionUsage:
    """Bytes one session takes: ``messages`` (its history), ``checkpoints`` (checkpoints and
    versions), ``memory`` (the long-term memories it recorded) and ``meta`` (user data,
    metadata, counters)."""

    messages: int
    checkpoints: int
    memory: int
    meta: int

    @property
    def total(self) -> int:
        return self.messages + self.checkpoints + self.memory + self.meta

    def to_dict(self) -> dict[str, int]:
        return {"messages": self.messages, "checkpoints": self.checkpoints, "memory": self.memory,
                "meta": self.meta, "total": self.total}


async def usage_by_key(rt: Runtime, keys: Sequence[str]) -> dict[str, StorageUsage]:
    """What the runtime's store holds for each of ``keys`` (absent sessions left out)."""
    store = rt.admin_store()
    return await on_portal(store.usage, list(keys))


async def _memory_bytes(rt: Runtime, ref: SessionRef, settings: MemorySettings | None) -> int:
    """UTF-8 bytes of the long-term memories this session recorded, in the memory store its
    agent uses (the runtime's default one when the agent names none); 0 where there is none."""
    try:
        spec = turn_memory(settings or MemorySettings(), True, rt.settings.store, ref.user_id, ref.session_id)
        if spec is None:
            return 0
        items = await rt.memory_store(spec).all(spec["scope"])
    except RepertoryError as exc:  # no memory store to read (a Redis store and no memory db_path)
        log.debug("storage_usage_without_memory", session=ref.key, reason=str(exc))
        return 0
    # A user's scope holds the memories of all their sessions: count those this one recorded.
    own = spec["scope"].startswith("session:")
    return sum(len(str(i.get("content", "")).encode("utf-8", "surrogatepass")) for i in items
               if own or i.get("session_id") == ref.session_id)


async def session_usage(rt: Runtime, ref: SessionRef, memory: MemorySettings | None = None) -> SessionUsage:
    """Bytes stored for the session ``ref``; SessionNotFound if there is none."""
    found = (await usage_by_key(rt, [ref.key])).get(ref.key)
    if found is None:
        raise SessionNotFound(f"session {ref.key!r} is not stored; list the stored ones with: repertory sessions ls")
    return SessionUsage(found.messages, found.checkpoints, await _memory_bytes(rt, ref, memory), found.meta)


async def astorage_usage(session_id: str, user_id: str | None = None,
                         memory: MemorySettings | None = None) -> dict[str, Any]:
    """Bytes stored for a session, split into messages, checkpoints, memory and meta (plus total).

    ``memory``: the agent's Memory settings, if it has its own store (default: the runtime's).
    """
    return (await session_usage(get_runtime(), SessionRef(session_id, user_id), memory)).to_dict()


def storage_usage(session_id: str, user_id: str | None = None, memory: MemorySettings | None = None) -> dict[str, Any]:
    """Sync :func:`astorage_usage`."""
    return run_sync(lambda: session_usage(get_runtime(), SessionRef(session_id, user_id), memory)).to_dict()
