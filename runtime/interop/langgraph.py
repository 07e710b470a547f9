"""A LangGraph checkpointer on repertory's stores: ``RepertorySaver``.

    from repertory.interop.langgraph import RepertorySaver

    saver = RepertorySaver("sqlite:///state.db")          # or "redis://127.0.0.1:6379/0", ttl=3600
    graph = builder.compile(checkpointer=saver)
    graph.invoke(inputs, {"configurable": {"thread_id": "t1"}})

On SQLite the checkpoints live in the store's own file (tables ``lg_*``), read on the calling
thread; on Redis under ``<prefix>:{~lg/<thread>}:*`` (one cluster slot per thread, one Lua call
per verb), on plain Redis (no modules). Values go through LangGraph's serializer, never pickle:
a serializer with ``pickle_fallback`` is refused, and a stored pickle is never loaded.
Needs ``pip install 'repertory[langgraph]'``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from repertory._sync import run_sync
from repertory.errors import CorruptState, InvalidInput
from repertory.stores import SQLiteStore, Store

from .langgraph_redis import RedisThreads
from .langgraph_rows import CheckpointRow, WriteRow
from .langgraph_sqlite import SqliteThreads
from .stores import check_ttl, open_backend

__all__ = ["RepertorySaver"]


def _uses_pickle(serde: Any) -> bool:
    return bool(getattr(serde, "pickle_fallback", False) or getattr(getattr(serde, "serde", None),
                                                                       "pickle_fallback", False))


class RepertorySaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints (sync and async) in a repertory SQLite or Redis store.

    ``store``: a URL (``sqlite:///path.db``, ``redis://host:6379/0?prefix=rp``), a SQLite or
    Redis store object (shared, not closed here), or None for the runtime's store (the embedded
    ``$REPERTORY_HOME/state.db`` unless ``repertory.init(store=...)`` chose another).
    ``ttl`` (seconds or timedelta): a thread expires that long after its last write, and after
    its last read too with ``refresh_on_read``; None keeps threads until ``delete_thread``.
    """

    def __init__(self, store: str | Store | None = None, *, ttl: float | timedelta | None = None,
                 refresh_on_read: bool = True, serde: SerializerProtocol | None = None) -> None:
        serde = serde if serde is not None else JsonPlusSerializer()
        if _uses_pickle(serde):
            raise InvalidInput("RepertorySaver never stores or loads pickle; pass a serializer without "
                               "pickle_fallback (the default JsonPlusSerializer() is fine)")
        super().__init__(serde=serde)
        self.ttl = check_ttl(ttl)
        self.refresh_on_read = bool(refresh_on_read)
        self.store, self._owned = open_backend(store)
        self._threads = SqliteThreads(self.store) if isinstance(self.store, SQLiteStore) else RedisThreads(self.store)

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Release connections (and the store, if this saver opened it from a URL)."""
        self._threads.close()
        if self._owned:
            run_sync(self.store.close)

    async def aclose(self) -> None:
        """:meth:`close` from a coroutine, in the loop that used the async methods."""
        self._threads.close()
        if self._owned:
            await self.store.close()

    def __enter__(self) -> RepertorySaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RepertorySaver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def sweep_expired(self) -> int:
        """SQLite: delete threads whose TTL has passed (they already read as absent); how many.
        Redis expires them by itself (returns 0)."""
        return self._threads.sweep() if isinstance(self._threads, SqliteThreads) else 0

    # -- rows <-> LangGraph's types -----------------------------------------------------
    def _loads(self, type_: str, data: bytes) -> Any:
        if type_.startswith("pickle"):
            raise CorruptState("a stored LangGraph value is a pickle, which repertory never loads "
                               "(it can run any code); delete the thread or re-create it without pickle")
        return self.serde.loads_typed((type_, data))

    def _tuple(self, config: RunnableConfig | None, found: tuple[CheckpointRow, list[WriteRow]]) -> CheckpointTuple:
        (thread_id, ns, checkpoint_id, parent, ctype, checkpoint, mtype, metadata), writes = found
        if config is None:
            config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}
        parent_config = ({"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent}}
                         if parent else None)
        pending = [(task_id, channel, self._loads(type_, value))
                   for task_id, channel, type_, value, _, _ in
                   sorted(writes, key=lambda w: writes_sort_key(w[4], w[0], w[5]))]
        return CheckpointTuple(config, self._loads(ctype, checkpoint), self._loads(mtype, metadata),
                               parent_config, pending)

    def _row(self, config: RunnableConfig, checkpoint: Checkpoint,
             metadata: CheckpointMetadata) -> tuple[CheckpointRow, str | None, RunnableConfig]:
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        meta = get_checkpoint_metadata(config, metadata)
        row: CheckpointRow = (thread_id, ns, checkpoint["id"], conf.get("checkpoint_id"),
                              *self.serde.dumps_typed(checkpoint), *self.serde.dumps_typed(meta))
        run_id = meta.get("run_id")
        saved = {"configurable": {"thread_id": conf["thread_id"], "checkpoint_ns": ns,
                                  "checkpoint_id": checkpoint["id"]}}
        return row, (str(run_id) if run_id is not None else None), saved

    def _write_rows(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                    task_path: str) -> tuple[tuple[str, str, str], list[WriteRow], bool]:
        conf = config["configurable"]
        key = (str(conf["thread_id"]), str(conf.get("checkpoint_ns", "")), str(conf["checkpoint_id"]))
        rows: list[WriteRow] = [(task_id, channel, *self.serde.dumps_typed(value), task_path,
                                 WRITES_IDX_MAP.get(channel, idx)) for idx, (channel, value) in enumerate(writes)]
        # as LangGraph's own savers: special writes (errors, interrupts) replace, others are kept once
        return key, rows, all(w[0] in WRITES_IDX_MAP for w in writes)

    @staticmethod
    def _where(config: RunnableConfig | None, before: RunnableConfig | None):
        conf = (config or {}).get("configurable", {})
        thread_id = str(conf["thread_id"]) if conf.get("thread_id") is not None else None
        return (thread_id, conf.get("checkpoint_ns"), conf.get("checkpoint_id") or None,
                get_checkpoint_id(before) if before else None)

    def _matches(self, tup: CheckpointTuple, filter: dict[str, Any] | None) -> bool:
        return not filter or all(tup.metadata.get(k) == v for k, v in filter.items())

    def _refresh(self) -> float | None:
        return self.ttl if self.refresh_on_read else None

    @staticmethod
    def _get_args(config: RunnableConfig) -> tuple[str, str, str | None]:
        conf = config["configurable"]
        return str(conf["thread_id"]), conf.get("checkpoint_ns", ""), get_checkpoint_id(config)

    # -- the sync verbs -----------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``, or the thread's latest)."""
        thread_id, ns, checkpoint_id = self._get_args(config)
        found = self._threads.get(thread_id, ns, checkpoint_id, self._refresh())
        return None if found is None else self._tuple(config if checkpoint_id else None, found)

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of ``config``'s thread (and namespace, if given), or of all
        threads; metadata equal to ``filter``; older than ``before``; at most ``limit``."""
        thread_id, ns, checkpoint_id, before_id = self._where(config, before)
        rows = self._threads.list(thread_id, ns, checkpoint_id, before_id, None if filter else limit)
        yield from self._select(rows, filter, limit)

    def _select(self, rows, filter, limit) -> Iterator[CheckpointTuple]:
        n = 0
        for found in rows:
            if limit is not None and n >= limit:
                return
            tup = self._tuple(None, found)
            if self._matches(tup, filter):
                n += 1
                yield tup

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        """Store a checkpoint; returns the config that names it."""
        row, run_id, saved = self._row(config, checkpoint, metadata)
        self._threads.put(row, run_id, self.ttl)
        return saved

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        """Store a task's pending writes for the checkpoint ``config`` names."""
        self._threads.put_writes(*self._write_rows(config, writes, task_id, task_path), self.ttl)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of the thread."""
        self._threads.delete(str(thread_id))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of one thread into another (the whole parent chain)."""
        self._threads.copy(str(source_thread_id), str(target_thread_id), self.ttl)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) whose metadata names one of ``run_ids``."""
        self._threads.delete_runs([str(r) for r in run_ids], self._run_of)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"keep_latest"``: only the newest checkpoint of each namespace stays (with its writes);
        ``"delete"``: the threads go. As LangGraph warns, keep_latest cuts the history a
        ``DeltaChannel`` is rebuilt from."""
        self._threads.prune([str(t) for t in thread_ids], self._keep_latest(strategy))

    # -- the async verbs ----------------------------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, ns, checkpoint_id = self._get_args(config)
        found = await self._threads.aget(thread_id, ns, checkpoint_id, self._refresh())
        return None if found is None else self._tuple(config if checkpoint_id else None, found)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        thread_id, ns, checkpoint_id, before_id = self._where(config, before)
        rows = await self._threads.alist(thread_id, ns, checkpoint_id, before_id, None if filter else limit)
        for tup in self._select(rows, filter, limit):
            yield tup

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        row, run_id, saved = self._row(config, checkpoint, metadata)
        await self._threads.aput(row, run_id, self.ttl)
        return saved

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        await self._threads.aput_writes(*self._write_rows(config, writes, task_id, task_path), self.ttl)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._threads.adelete(str(thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._threads.acopy(str(source_thread_id), str(target_thread_id), self.ttl)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._threads.adelete_runs([str(r) for r in run_ids], self._run_of)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._threads.aprune([str(t) for t in thread_ids], self._keep_latest(strategy))

    def _run_of(self, row: CheckpointRow) -> str | None:
        run_id = self._loads(row[6], row[7]).get("run_id")
        return None if run_id is None else str(run_id)

    @staticmethod
    def _keep_latest(strategy: str) -> bool:
        if strategy not in ("keep_latest", "delete"):
            raise InvalidInput(f"prune strategy must be 'keep_latest' or 'delete', not {strategy!r}")
        return strategy == "keep_latest"

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Increasing string versions, as LangGraph's SQL savers make them."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"
