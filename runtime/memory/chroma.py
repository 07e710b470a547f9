"""The ``chromadb`` memory provider: a real ``chromadb.PersistentClient``, recall by embedding.

One collection per embedding model (:func:`~repertory.memory.embeddings.collection_name`) in
the folder ``config["db_path"]``; each memory is one record whose id is a digest of its scope
and content (the same fact stated again refreshes its record, as in the sqlite provider) and
whose metadata carry scope, kind, importance, relevance, score and times. Every query filters
on the scope, so one user's memories never reach another's prompt.

A ``PersistentClient`` is not safe for several processes on one folder (chromadb's documented
constraint: writers in two processes corrupt its index). So one process owns a folder: on the
local runtime, the runtime's own process; on Ray, one memory actor per folder
(:mod:`repertory.actors.memory`), which agent actors and drivers call.

Every chromadb call runs on the store's own thread, never on the caller's event loop.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any


from repertory.errors import MemoryConfigError
from repertory.memory.embeddings import Embedder, collection_name, embedder_for
from repertory.memory.threaded import ThreadedMemoryStore, add_capped

__all__ = ["ChromaMemoryStore", "memory_id"]

_META = ("kind", "importance", "relevance", "score", "created_at", "updated_at")


def memory_id(scope: str, content: str) -> str:
    """The record id of ``content`` in ``scope``: stating a fact again finds its record."""
    return hashlib.blake2b(f"{scope}\0{content}".encode(), digest_size=16).hexdigest()


def _row(mid: str, doc: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {"id": mid, "content": doc, "kind": meta.get("kind", "fact"), "importance": meta.get("importance", 0.5),
            "relevance": meta.get("relevance", 0.5), "score": meta.get("score", 0.0),
            "created_at": meta.get("created_at", 0.0), "timestamp": meta.get("updated_at", 0.0),
            "session_id": meta.get("session_id")}


class ChromaMemoryStore(ThreadedMemoryStore):
    """Long-term memories in a chromadb folder; the same async verbs as the sqlite store."""

    provider = "chromadb"

    def __init__(self, path: str | Path, embedding_model: str, embedding_options: dict[str, Any] | None = None,
                 *, embedder: Embedder | None = None) -> None:
        super().__init__(path)
        self.embedding_model = embedding_model
        self._embedder = embedder or embedder_for(embedding_model, embedding_options)
        self._collection: Any = None

    def _open(self) -> Any:
        if self._collection is None:
            import chromadb
            from chromadb.config import Settings

            if self.path.exists() and not self.path.is_dir():
                raise MemoryConfigError(f"chromadb memory needs a folder at config['db_path'], and "
                                        f"{str(self.path)!r} is a file; give a folder path")
            client = chromadb.PersistentClient(path=str(self.path), settings=Settings(anonymized_telemetry=False))
            # embedding_function=None: vectors always come from our embedder, so chromadb's
            # default (which downloads a model) never runs.
            self._collection = client.get_or_create_collection(
                collection_name(self.embedding_model), embedding_function=None,
                metadata={"hnsw:space": "cosine", "embedding_model": self.embedding_model})
        return self._collection

    # -- verbs ------------------------------------------------------------------------
    async def add_many(self, scope: str, items: list[tuple[dict[str, Any], float]], *, max_memories: int | None = None,
                       rescore: Any = None) -> list[str]:
        """Store ``(item, score)`` pairs (or refresh the same facts); then, over
        ``max_memories``, delete the scope's lowest-scored (rescored with ``rescore``)."""
        if not items:
            return []
        if max_memories is not None:
            return await add_capped(self, scope, items, max_memories, rescore)
        vectors = await self._embedder.embed([i["content"] for i, _ in items])
        return await self._run(_upsert, scope, [(dict(i), s) for i, s in items], vectors)

    async def search(self, scope: str, query: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` memories of ``scope`` nearest to ``query`` (cosine), best first;
        ``rank`` is the distance."""
        if not query.strip():
            return []
        vector = (await self._embedder.embed([query]))[0]
        return await self._run(_query, scope, vector, limit)

    async def all(self, scope: str) -> list[dict[str, Any]]:
        """Every memory of ``scope``, oldest first."""
        return await self._run(_all, scope)

    async def count(self, scope: str) -> int:
        return len(await self._run(_ids, scope))

    async def delete(self, scope: str, ids: list[str]) -> int:
        """Delete the memories ``ids`` of ``scope``; returns how many there were."""
        return await self._run(_delete, scope, list(ids))

    async def clear(self, scope: str) -> int:
        """Delete every memory of ``scope``; returns how many."""
        return await self._run(_clear, scope)

    def _close_client(self) -> None:
        self._collection = None


def _metadata(scope: str, item: dict[str, Any], score: float, created: float, updated: float) -> dict[str, Any]:
    meta = {"scope": scope, "kind": str(item.get("kind", "fact")), "importance": float(item["importance"]),
            "relevance": float(item["relevance"]), "score": float(score), "created_at": created, "updated_at": updated}
    if item.get("session_id") is not None:
        meta["session_id"] = str(item["session_id"])
    return meta


def _upsert(col: Any, scope: str, items: list[tuple[dict, float]], vectors: list[list[float]]) -> list[str]:
    ids = [memory_id(scope, i["content"]) for i, _ in items]
    found = col.get(ids=list(dict.fromkeys(ids)), include=["metadatas"])
    old = dict(zip(found["ids"], found["metadatas"]))
    new_ids, new_docs, new_vecs, new_meta = [], [], [], []
    upd_ids, upd_meta = [], []
    for mid, (item, score), vec in zip(ids, items, vectors):
        ts = float(item.get("timestamp") or time.time())
        prev = old.get(mid)
        if prev is None:
            meta = _metadata(scope, item, score, ts, ts)
            if mid in new_ids:  # the same fact twice in one batch
                k = new_ids.index(mid)
                new_meta[k] = {**meta, "created_at": new_meta[k]["created_at"],
                               **{f: max(new_meta[k][f], meta[f]) for f in ("importance", "relevance", "score")}}
                continue
            new_ids.append(mid), new_docs.append(item["content"]), new_vecs.append(vec), new_meta.append(meta)
        else:
            meta = {**prev, "importance": max(prev.get("importance", 0.0), float(item["importance"])),
                    "relevance": max(prev.get("relevance", 0.0), float(item["relevance"])),
                    "score": max(prev.get("score", 0.0), float(score)),
                    "updated_at": max(prev.get("updated_at", 0.0), ts)}
            old[mid] = meta
            if mid in upd_ids:
                upd_meta[upd_ids.index(mid)] = meta
            else:
                upd_ids.append(mid), upd_meta.append(meta)
    if new_ids:
        col.add(ids=new_ids, documents=new_docs, embeddings=new_vecs, metadatas=new_meta)
    if upd_ids:
        col.update(ids=upd_ids, metadatas=upd_meta)
    return ids


def _query(col: Any, scope: str, vector: list[float], limit: int) -> list[dict[str, Any]]:
    res = col.query(query_embeddings=[vector], n_results=limit, where={"scope": scope},
                    include=["documents", "metadatas", "distances"])
    out = []
    for mid, doc, meta, dist in zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0]):
        row = _row(mid, doc, meta)
        row["rank"] = dist
        out.append(row)
    return out


def _all(col: Any, scope: str) -> list[dict[str, Any]]:
    res = col.get(where={"scope": scope}, include=["documents", "metadatas"])
    rows = [_row(m, d, meta) for m, d, meta in zip(res["ids"], res["documents"], res["metadatas"])]
    rows.sort(key=lambda r: (r["created_at"], r["id"]))
    return rows


def _ids(col: Any, scope: str) -> list[str]:
    return col.get(where={"scope": scope}, include=[])["ids"]


def _delete(col: Any, scope: str, ids: list[str]) -> int:
    if not ids:
        return 0
    present = col.get(ids=ids, where={"scope": scope}, include=[])["ids"]
    if present:
        col.delete(ids=present)
    return len(present)


def _clear(col: Any, scope: str) -> int:
    ids = _ids(col, scope)
    if ids:
        col.delete(ids=ids)
    return len(ids)
