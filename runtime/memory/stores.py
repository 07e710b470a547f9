"""Opening a memory provider's store from a turn's memory spec, and what every store offers.

A spec is plain data (:func:`repertory.memory.settings.turn_memory`): provider, ``db_path`` and,
for chromadb, the embedding model. :class:`MemoryStores` keeps one open store per spec key, so
a runtime (or an agent actor) opens each file or folder once.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["MemoryStore", "MemoryStores", "open_memory_store", "store_key"]


class MemoryStore(Protocol):
    """The verbs of a memory provider; every method but ``close`` is async."""

    async def add_many(self, scope: str, items: list[tuple[dict[str, Any], float]], *,
                       max_memories: int | None = None, rescore: Any = None) -> list[Any]: ...

    async def add(self, scope: str, item: dict[str, Any], score: float, *, max_memories: int | None = None,
                  rescore: Any = None) -> Any: ...

    async def search(self, scope: str, query: str, limit: int) -> list[dict[str, Any]]: ...

    async def recall(self, scope: str, query: str, limit: int) -> list[dict[str, Any]]: ...

    async def all(self, scope: str) -> list[dict[str, Any]]: ...

    async def count(self, scope: str) -> int: ...

    async def clear(self, scope: str) -> int: ...

    def close(self) -> None: ...


def store_key(spec: dict[str, Any]) -> str:
    """Which store a spec names: provider, path and (chromadb) embedding model."""
    return "\0".join((spec.get("provider") or "sqlite", spec["db_path"], spec.get("embedding_model") or ""))


def open_memory_store(spec: dict[str, Any]) -> MemoryStore:
    """The store of ``spec``, opened in this process."""
    provider = spec.get("provider") or "sqlite"
    if provider == "chromadb":
        from repertory.memory.chroma import ChromaMemoryStore  # chromadb loads on first use

        return ChromaMemoryStore(spec["db_path"], spec["embedding_model"], spec.get("embedding_options"))
    if provider == "mem0":
        from repertory.memory.mem0_store import Mem0MemoryStore  # mem0 loads on first use

        return Mem0MemoryStore(spec["db_path"], spec["embedding_model"], spec.get("mem0"))
    from repertory.memory.sqlite import SQLiteMemoryStore  # sqlite3 loads on first use

    return SQLiteMemoryStore(spec["db_path"])


class MemoryStores:
    """Open stores by :func:`store_key`; ``opener`` opens a missing one (default: in this process)."""

    def __init__(self, opener: Any = open_memory_store) -> None:
        self._opener = opener
        self._open: dict[str, MemoryStore] = {}

    def __call__(self, spec: dict[str, Any]) -> MemoryStore:
        key = store_key(spec)
        s = self._open.get(key)
        if s is None:
            s = self._open[key] = self._opener(spec)
        return s

    def close(self) -> None:
        for s in self._open.values():
            s.close()
        self._open.clear()
