"""MemoryActor: the one process that opens a chromadb (or mem0) folder on Ray, and the store
that calls it.

chromadb's ``PersistentClient`` is not safe for several processes on one folder, and every
agent replica, session host and driver of a runtime may want the same memories. So each folder
gets one named actor (per runtime scope); the others call it. It holds the embedding model too,
loaded once. SQLite memory needs no actor: WAL lets every process open the file.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from repertory.errors import RuntimeNotReady
from repertory.host import wire
from repertory.logs import configure_logging
from repertory.memory.stores import open_memory_store, store_key
from repertory.memory.threaded import add_capped

from .calls import call_restartable
from .names import ActorNames

__all__ = ["MemoryActor", "RayMemoryStore", "ray_memory_store"]


class MemoryActor:
    """Serves one chromadb or mem0 folder; restarted by Ray, its memories are on disk."""

    def __init__(self, spec: dict[str, Any]) -> None:
        configure_logging()
        self._store = open_memory_store(spec)

    # Eviction runs in the caller (its scorer may be any function): the actor only stores.
    async def add_many(self, data: bytes) -> bytes:
        scope, items = wire.decode(data)
        return wire.encode(await self._store.add_many(scope, [(i, s) for i, s in items]))

    async def search(self, data: bytes) -> bytes:
        return wire.encode(await self._store.search(*wire.decode(data)))

    async def recall(self, data: bytes) -> bytes:
        return wire.encode(await self._store.recall(*wire.decode(data)))

    async def all(self, data: bytes) -> bytes:
        return wire.encode(await self._store.all(*wire.decode(data)))

    async def count(self, data: bytes) -> bytes:
        return wire.encode(await self._store.count(*wire.decode(data)))

    async def delete(self, data: bytes) -> bytes:
        return wire.encode(await self._store.delete(*wire.decode(data)))

    async def clear(self, data: bytes) -> bytes:
        return wire.encode(await self._store.clear(*wire.decode(data)))

    async def ping(self) -> str:
        return "memory"


class RayMemoryStore:
    """A memory store whose calls go to a :class:`MemoryActor` (resent while Ray restarts it:
    every call is idempotent, a memory's id being a digest of its scope and content)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def _call(self, method: str, *args: Any) -> Any:
        data = wire.encode(list(args))
        return wire.decode(await call_restartable(
            lambda: getattr(self.handle, method).remote(data),
            lambda exc: RuntimeNotReady(f"the memory actor did not come back: {exc}")))

    async def add_many(self, scope: str, items: list[tuple[dict[str, Any], float]], *,
                       max_memories: int | None = None, rescore: Any = None) -> list[str]:
        if not items:
            return []
        if max_memories is not None:
            return await add_capped(self, scope, items, max_memories, rescore)
        return await self._call("add_many", scope, [[dict(i), s] for i, s in items])

    async def add(self, scope: str, item: dict[str, Any], score: float, *, max_memories: int | None = None,
                  rescore: Any = None) -> str | None:
        ids = await self.add_many(scope, [(item, score)], max_memories=max_memories, rescore=rescore)
        return ids[0] if ids else None  # None: the cap kept it out

    async def search(self, scope: str, query: str, limit: int) -> list[dict[str, Any]]:
        return await self._call("search", scope, query, limit)

    async def recall(self, scope: str, query: str, limit: int) -> list[dict[str, Any]]:
        return await self._call("recall", scope, query, limit)

    async def all(self, scope: str) -> list[dict[str, Any]]:
        return await self._call("all", scope)

    async def count(self, scope: str) -> int:
        return await self._call("count", scope)

    async def delete(self, scope: str, ids: list[str]) -> int:
        return await self._call("delete", scope, ids)

    async def clear(self, scope: str) -> int:
        return await self._call("clear", scope)

    def close(self) -> None:  # the actor keeps the folder open for the runtime's other callers
        pass


def ray_memory_store(spec: dict[str, Any], names: ActorNames, **options: Any) -> RayMemoryStore | Any:
    """The store of ``spec`` for a process of this runtime: chromadb through its folder's
    actor (created by the first caller, on the caller's node, where the folder is), sqlite
    opened here."""
    if (spec.get("provider") or "sqlite") == "sqlite":
        return open_memory_store(spec)
    node = ray.get_runtime_context().get_node_id()
    handle = ray.remote(MemoryActor).options(
        name=names.memory(store_key(spec)), namespace=names.namespace, get_if_exists=True, max_restarts=-1,
        num_cpus=0, max_concurrency=1000, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True),
        **options).remote(spec)
    return RayMemoryStore(handle)
