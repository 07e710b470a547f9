"""``Memory``: long-term memory settings for agents and sessions, and a direct API.

Give it to an agent (``Agent(memory=Memory(...))``) or turn memory on for a session
(``Session(..., persist_memory=True)``): facts and preferences the user states are extracted
after each turn, stored for the user (or the session, without a user), and recalled by
relevance into the system prompt of later turns and later sessions. The operations run where
the agent runs (its actor on Ray), never on a session host's loop.

The direct API (``add``, ``search``, ``get_all``, ``clear`` and their ``a``-prefixed async
twins) reads and writes the same memories from the calling process.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from repertory._sync import run_sync
from repertory.errors import InvalidInput
from repertory.memory.quality import Scorer, unit
from repertory.memory.settings import MemorySettings, default_db_path, memory_scope
from repertory.memory.stores import MemoryStores
from repertory.runtimes.current import get_runtime

if TYPE_CHECKING:
    from repertory.memory.stores import MemoryStore

__all__ = ["Memory"]


class Memory(MemorySettings):
    """Long-term memory: ``Memory(provider="sqlite", config={...}, quality_threshold=None,
    max_memories=None)``.

    * ``provider``: ``"sqlite"`` (the default; offline keyword recall with FTS5/BM25), or
      ``"chromadb"`` (recall by embedding, in a real chromadb ``PersistentClient``;
      ``pip install 'repertory[chroma]'``), or ``"mem0"`` (repertory's facts kept in a
      ``mem0.Memory``, ``pip install 'repertory[mem0]'``; ``config["mem0"]``: mem0 config
      merged over repertory's offline defaults).
    * ``config["db_path"]``: sqlite: the SQLite file (its folder must exist); default: the
      runtime's own database file. chromadb and mem0: a folder; default: ``chroma`` (``mem0``)
      beside the runtime's database.
    * ``config["embedding_model"]`` (chromadb; sqlite accepts it unused): ``"local/all-MiniLM-L6-v2"``
      (offline; the default when ``repertory[local-embeddings]`` is installed) or a litellm
      embedding model; ``config["embedding_options"]``: litellm options such as ``api_base``.
    * ``quality_threshold``: candidates scoring below it (0..1) are not stored.
    * ``max_memories``: per user (or session); past it, the lowest-scoring are evicted first,
      ranked on scores recomputed at that moment (recency moves).
    * ``recall_limit``: how many memories a prompt gets (default 5).
    * ``scorer`` / :meth:`set_quality_scorer`: a function of a memory item; default
      :class:`~repertory.QualityFilter` (relevance 0.4, recency 0.3, importance 0.3).
    """

    def __init__(self, provider: str = "sqlite", config: Mapping[str, Any] | None = None,
                 quality_threshold: float | None = None, max_memories: int | None = None, *,
                 recall_limit: int = 5, scorer: Scorer | None = None) -> None:
        super().__init__(provider, config, quality_threshold, max_memories, recall_limit=recall_limit, scorer=scorer)
        self._stores = MemoryStores()

    def __getstate__(self) -> dict[str, Any]:  # an open store stays in its process
        return {k: v for k, v in self.__dict__.items() if k != "_stores"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._stores = MemoryStores()

    def _store(self) -> MemoryStore:
        spec = {"provider": self.provider, "db_path": self.db_path, "embedding_model": self.embedding_model,
                "embedding_options": self.embedding_options, "mem0": self.mem0}
        if self.provider != "sqlite":
            # One process per chromadb or mem0 folder (not safe for several): the runtime's, or
            # on Ray its memory actor, which the agents of this runtime use too.
            rt = get_runtime()
            spec["db_path"] = self.db_path or default_db_path(rt.settings.store, self.provider)
            return rt.memory_store(spec)
        if spec["db_path"] is None:
            spec["db_path"] = default_db_path(get_runtime().settings.store)
        return self._stores(spec)

    async def aadd(self, content: str, *, user_id: str | None = None, session_id: str | None = None,
                   importance: float = 0.5, relevance: float = 0.5, kind: str = "fact",
                   timestamp: float | None = None) -> bool:
        """Offer a memory; True if its score passed ``quality_threshold`` and it was stored."""
        if not isinstance(content, str) or not content.strip():
            raise InvalidInput("a memory's content must be a non-empty str")
        scope = memory_scope(user_id, session_id)
        item = {"content": content.strip(), "kind": kind, "importance": unit(importance),
                "relevance": unit(relevance), "timestamp": time.time() if timestamp is None else float(timestamp),
                "scope": scope, "session_id": session_id}
        score = self.score(item)
        if not self.accepts(score):
            return False
        await self._store().add(scope, item, score, max_memories=self.max_memories,
                                rescore=self.score if self.max_memories else None)
        return True

    def add(self, content: str, **kwargs: Any) -> bool:
        """Sync :meth:`aadd`."""
        return run_sync(self.aadd, content, **kwargs)

    async def asearch(self, query: str, *, user_id: str | None = None, session_id: str | None = None,
                      limit: int | None = None) -> list[dict[str, Any]]:
        """The memories most relevant to ``query`` (sqlite: BM25; chromadb: nearest embeddings), best first."""
        return await self._store().search(memory_scope(user_id, session_id), query, limit or self.recall_limit)

    def search(self, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Sync :meth:`asearch`."""
        return run_sync(self.asearch, query, **kwargs)

    async def aget_all(self, *, user_id: str | None = None, session_id: str | None = None) -> list[dict[str, Any]]:
        """Every memory of the user (or session), oldest first: content, kind, importance,
        relevance, score, timestamp, created_at, session_id."""
        return await self._store().all(memory_scope(user_id, session_id))

    def get_all(self, **kwargs: Any) -> list[dict[str, Any]]:
        """Sync :meth:`aget_all`."""
        return run_sync(self.aget_all, **kwargs)

    async def aclear(self, *, user_id: str | None = None, session_id: str | None = None) -> int:
        """Forget every memory of the user (or session); returns how many."""
        return await self._store().clear(memory_scope(user_id, session_id))

    def clear(self, **kwargs: Any) -> int:
        """Sync :meth:`aclear`."""
        return run_sync(self.aclear, **kwargs)

    def close(self) -> None:
        """Close the SQLite files the direct API opened (they reopen on next use); a chromadb
        folder belongs to the runtime and closes with it."""
        self._stores.close()
