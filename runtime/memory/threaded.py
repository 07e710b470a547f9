"""What the chromadb and mem0 stores share: one worker thread for a client that blocks, the
verbs built on a provider's own ``add_many``/``search``/``all``, and capped adds."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from repertory.errors import MemoryConfigError, StoreError

__all__ = ["ThreadedMemoryStore", "add_capped"]

log = structlog.get_logger("repertory.memory")


async def add_capped(store: Any, scope: str, items: list[tuple[dict[str, Any], float]], max_memories: int,
                     rescore: Any) -> list[str]:
    """Add ``items`` to a scope capped at ``max_memories``: rank the scope's memories (rescored
    now with ``rescore`` when given: recency moves) together with the candidates, write only the
    candidates that make the cut and delete the memories that fall out. Exact, and no write is
    spent on a candidate that would be evicted at once. Works on any store with ``add_many``
    (uncapped), ``all`` and ``delete``."""
    rows = await store.all(scope)
    if rescore is not None:
        for r in rows:
            r["score"] = float(rescore({**r, "scope": scope}))
    # By content, not id: a provider may name records its own way (mem0's ids are its own).
    ranked: dict[str, tuple[float, float]] = {r["content"]: (r["score"], r["timestamp"]) for r in rows}
    for item, score in items:
        ts = float(item.get("timestamp") or time.time())
        old = ranked.get(item["content"])
        ranked[item["content"]] = (max(score, old[0]), max(ts, old[1])) if old else (score, ts)
    order = sorted(ranked, key=lambda c: ranked[c], reverse=True)
    keep = set(order[:max_memories])
    write = [(i, s) for i, s in items if i["content"] in keep]
    gone = [r["id"] for r in rows if r["content"] not in keep]
    ids = await store.add_many(scope, write) if write else []
    if gone:
        await store.delete(scope, gone)
        log.debug("memories_evicted", scope=scope, evicted=len(gone), kept=max_memories)
    return ids


class ThreadedMemoryStore:
    """A memory store whose client calls run on its own thread, never on the caller's loop.

    Subclasses set ``provider`` and implement ``_open`` (the client, opened on the thread),
    ``add_many``, ``search``, ``all``, ``delete`` and ``clear``.
    """

    provider = "memory"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"repertory-{self.provider}")

    def _open(self) -> Any:
        raise NotImplementedError

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._guarded, fn, args)

    def _guarded(self, fn: Any, args: tuple) -> Any:
        try:
            return fn(self._open(), *args)
        except (MemoryConfigError, StoreError):
            raise
        except Exception as exc:  # the provider raises its own classes, and ValueError, for a bad folder or record
            raise StoreError(f"{self.provider} memory at {str(self.path)!r} failed in {fn.__name__.lstrip('_')}: "
                             f"{type(exc).__name__}: {exc}") from exc

    async def add_many(self, scope: str, items: list[tuple[dict[str, Any], float]], *, max_memories: int | None = None,
                       rescore: Any = None) -> list[str]:
        raise NotImplementedError

    async def search(self, scope: str, query: str, limit: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def all(self, scope: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def add(self, scope: str, item: dict[str, Any], score: float, *, max_memories: int | None = None,
                  rescore: Any = None) -> str | None:
        ids = await self.add_many(scope, [(item, score)], max_memories=max_memories, rescore=rescore)
        return ids[0] if ids else None  # None: the cap kept it out

    async def recall(self, scope: str, query: str, limit: int) -> list[dict[str, Any]]:
        """:meth:`search`, topped up with the scope's best-scored memories up to ``limit``."""
        hits = await self.search(scope, query, limit)
        if len(hits) < limit:
            seen = {h["id"] for h in hits}
            rest = sorted((m for m in await self.all(scope) if m["id"] not in seen),
                          key=lambda m: (-m["score"], -m["timestamp"]))
            hits += rest[: limit - len(hits)]
        return hits

    async def count(self, scope: str) -> int:
        return len(await self.all(scope))

    def _close_client(self) -> None:
        pass

    def close(self) -> None:
        self._close_client()
        self._pool.shutdown(wait=True)
