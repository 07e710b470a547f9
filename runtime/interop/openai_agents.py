"""An OpenAI Agents SDK session on repertory's stores: ``RepertorySession``.

    from agents import Agent, Runner
    from repertory.interop.openai_agents import RepertorySession

    session = RepertorySession("user-42", "sqlite:///state.db")   # or "redis://...", ttl=3600
    await Runner.run(agent, "Hello", session=session)

Items are kept as JSON text, in order: on SQLite in the store's own file (tables ``agents_*``),
on Redis under ``<prefix>:{~agents/<session_id>}:*`` (one cluster slot, one Lua call per
method). Every change bumps the session's revision; ``add_items``, ``pop_item`` and
``clear_session`` take ``if_revision=`` to apply only if nobody changed the session since.
Needs ``pip install 'repertory[openai-agents]'``.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta

from agents.items import TResponseInputItem
from agents.memory import SessionABC
from agents.memory.session_settings import SessionSettings, resolve_session_limit

from repertory._sync import run_sync
from repertory.errors import InvalidInput
from repertory.stores import SQLiteStore, Store

from .agents_redis import RedisItems
from .agents_sqlite import SqliteItems
from .stores import check_ttl, open_backend

__all__ = ["RepertorySession"]


def _encode(items: list[TResponseInputItem]) -> list[str]:
    try:
        return [json.dumps(item, separators=(",", ":"), allow_nan=False) for item in items]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"an Agents session item must be JSON data (dicts, lists, str, numbers): {exc}; "
                           "nothing was stored") from exc


class RepertorySession(SessionABC):
    """The conversation items of ``session_id`` in a repertory SQLite or Redis store.

    ``store``: a URL (``sqlite:///path.db``, ``redis://host:6379/0?prefix=rp``), a SQLite or Redis
    store object (shared by many sessions, not closed here; a Redis store belongs to the event
    loop that first uses it), or None for the runtime's store. ``ttl`` (seconds or timedelta): the
    session expires that long after its last write or read; None keeps it until cleared.
    ``session_settings.limit`` is the default ``get_items`` limit, as in the SDK.
    """

    def __init__(self, session_id: str, store: str | Store | None = None, *, ttl: float | timedelta | None = None,
                 session_settings: SessionSettings | None = None) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise InvalidInput(f"session_id must be a non-empty str, got {session_id!r}")
        self.session_id = session_id
        self.session_settings = session_settings if session_settings is not None else SessionSettings()
        self.ttl = check_ttl(ttl)
        self.store, self._owned = open_backend(store)
        self._items = SqliteItems(self.store) if isinstance(self.store, SQLiteStore) else RedisItems(self.store)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The items, oldest first; with ``limit``, the newest ``limit`` of them."""
        limit = resolve_session_limit(limit, self.session_settings)
        return [json.loads(d) for d in await self._items.get(self.session_id, limit, self.ttl)]

    async def add_items(self, items: list[TResponseInputItem], *, if_revision: int | None = None) -> None:
        """Append ``items`` in one atomic write. With ``if_revision``, only if the session is
        still at that revision (0: does not exist yet); else ``ConcurrentUpdate``."""
        data = _encode(items)
        if not data:
            return
        await self._items.add(self.session_id, data, if_revision, random.randint(1, 2**31), self.ttl)

    async def pop_item(self, *, if_revision: int | None = None) -> TResponseInputItem | None:
        """Remove and return the newest item (None if there is none)."""
        data = await self._items.pop(self.session_id, if_revision, self.ttl)
        return None if data is None else json.loads(data)

    async def clear_session(self, *, if_revision: int | None = None) -> None:
        """Remove every item (and the session's revision: a new start gets a fresh one)."""
        await self._items.clear(self.session_id, if_revision)

    async def revision(self) -> int:
        """The session's compare-and-set counter; 0 if it holds nothing."""
        return await self._items.revision(self.session_id)

    def sweep_expired(self) -> int:
        """SQLite: delete every session of this store whose TTL has passed; how many.
        Redis expires them by itself (returns 0)."""
        return self._items.sweep()

    async def aclose(self) -> None:
        """Close the store if this session opened it from a URL."""
        if self._owned:
            await self.store.close()

    def close(self) -> None:
        """:meth:`aclose` from sync code."""
        if self._owned:
            run_sync(self.store.close)

    def __repr__(self) -> str:
        return f"RepertorySession({self.session_id!r}, store={self.store.url!r})"
