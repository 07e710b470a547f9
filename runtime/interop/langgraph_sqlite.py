"""LangGraph checkpoints in repertory's SQLite file: tables ``lg_checkpoints``, ``lg_writes``
and ``lg_threads`` (the expiry of threads saved with a TTL).

Reads run on the calling thread with a connection of its own (WAL readers never wait for
writers), writes in one transaction each; see ``SQLiteStore.read``/``write``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from repertory.stores import SQLiteStore

from .langgraph_rows import CheckpointRow, WriteRow

__all__ = ["SqliteThreads"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS lg_checkpoints (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL,
        checkpoint_id TEXT NOT NULL,
        parent_checkpoint_id TEXT,
        type TEXT NOT NULL,
        checkpoint BLOB NOT NULL,
        metadata_type TEXT NOT NULL,
        metadata BLOB NOT NULL,
        run_id TEXT,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
    )""",
    """CREATE TABLE IF NOT EXISTS lg_writes (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL,
        checkpoint_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        task_path TEXT NOT NULL,
        idx INTEGER NOT NULL,
        channel TEXT NOT NULL,
        type TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
    )""",
    """CREATE TABLE IF NOT EXISTS lg_threads (
        thread_id TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS lg_threads_expires ON lg_threads(expires_at)",
)
_NAMES = ("lg_checkpoints", "lg_writes", "lg_threads", "lg_threads_expires")

_LIVE = "NOT EXISTS (SELECT 1 FROM lg_threads t WHERE t.thread_id = c.thread_id AND t.expires_at <= ?)"
_COLUMNS = ("SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.type, c.checkpoint,"
            " c.metadata_type, c.metadata FROM lg_checkpoints c")
_WRITES = ("SELECT task_id, channel, type, value, task_path, idx FROM lg_writes"
           " WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?")


def _with_writes(conn: sqlite3.Connection, row: tuple) -> tuple[CheckpointRow, list[WriteRow]]:
    return row, conn.execute(_WRITES, row[:3]).fetchall()


def _get(conn: sqlite3.Connection, thread_id: str, ns: str, checkpoint_id: str | None, now: float):
    if checkpoint_id is None:
        row = conn.execute(
            f"{_COLUMNS} WHERE c.thread_id = ? AND c.checkpoint_ns = ? AND {_LIVE}"
            " ORDER BY c.checkpoint_id DESC LIMIT 1", (thread_id, ns, now)).fetchone()
    else:
        row = conn.execute(
            f"{_COLUMNS} WHERE c.thread_id = ? AND c.checkpoint_ns = ? AND c.checkpoint_id = ? AND {_LIVE}",
            (thread_id, ns, checkpoint_id, now)).fetchone()
    return None if row is None else _with_writes(conn, row)


def _list(conn: sqlite3.Connection, thread_id: str | None, ns: str | None, checkpoint_id: str | None,
          before: str | None, limit: int | None, now: float):
    where, args = [_LIVE], [now]
    for column, value in (("thread_id", thread_id), ("checkpoint_ns", ns), ("checkpoint_id", checkpoint_id)):
        if value is not None:
            where.append(f"c.{column} = ?")
            args.append(value)
    if before is not None:
        where.append("c.checkpoint_id < ?")
        args.append(before)
    sql = f"{_COLUMNS} WHERE {' AND '.join(where)} ORDER BY c.checkpoint_id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return [_with_writes(conn, row) for row in conn.execute(sql, args).fetchall()]


def _expire(conn: sqlite3.Connection, thread_id: str, expires_at: float | None) -> None:
    if expires_at is None:
        conn.execute("DELETE FROM lg_threads WHERE thread_id = ?", (thread_id,))
    else:
        conn.execute("INSERT OR REPLACE INTO lg_threads (thread_id, expires_at) VALUES (?, ?)",
                     (thread_id, expires_at))


def _drop_if_expired(conn: sqlite3.Connection, thread_id: str, now: float) -> None:
    # An expired thread reads as absent, so a new write must not bring its old rows back.
    if conn.execute("SELECT 1 FROM lg_threads WHERE thread_id = ? AND expires_at <= ?",
                    (thread_id, now)).fetchone() is not None:
        _delete(conn, thread_id)


def _put(conn: sqlite3.Connection, row: CheckpointRow, run_id: str | None, expires_at: float | None,
         now: float) -> None:
    _drop_if_expired(conn, row[0], now)
    conn.execute(
        "INSERT OR REPLACE INTO lg_checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,"
        " type, checkpoint, metadata_type, metadata, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (*row, run_id))
    _expire(conn, row[0], expires_at)


def _put_writes(conn: sqlite3.Connection, key: tuple[str, str, str], rows: Sequence[WriteRow], replace: bool,
                expires_at: float | None, now: float) -> None:
    _drop_if_expired(conn, key[0], now)
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
    conn.executemany(
        f"{verb} INTO lg_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, channel, type, value,"
        " task_path, idx) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [(*key, *r) for r in rows])
    _expire(conn, key[0], expires_at)


def _delete(conn: sqlite3.Connection, thread_id: str) -> None:
    for table in ("lg_checkpoints", "lg_writes", "lg_threads"):
        conn.execute(f"DELETE FROM {table} WHERE thread_id = ?", (thread_id,))


def _copy(conn: sqlite3.Connection, src: str, dst: str, expires_at: float | None, now: float) -> None:
    if conn.execute("SELECT 1 FROM lg_threads WHERE thread_id = ? AND expires_at <= ?", (src, now)).fetchone():
        return  # an expired thread reads as absent: nothing to copy
    _drop_if_expired(conn, dst, now)
    conn.execute("INSERT OR REPLACE INTO lg_checkpoints SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id,"
                 " type, checkpoint, metadata_type, metadata, run_id FROM lg_checkpoints WHERE thread_id = ?",
                 (dst, src))
    conn.execute("INSERT OR REPLACE INTO lg_writes SELECT ?, checkpoint_ns, checkpoint_id, task_id, task_path, idx,"
                 " channel, type, value FROM lg_writes WHERE thread_id = ?", (dst, src))
    if conn.execute("SELECT 1 FROM lg_checkpoints WHERE thread_id = ? LIMIT 1", (dst,)).fetchone():
        _expire(conn, dst, expires_at)


def _delete_runs(conn: sqlite3.Connection, run_ids: Sequence[str]) -> None:
    marks = ", ".join("?" * len(run_ids))
    conn.execute("DELETE FROM lg_writes WHERE (thread_id, checkpoint_ns, checkpoint_id) IN (SELECT thread_id,"
                 f" checkpoint_ns, checkpoint_id FROM lg_checkpoints WHERE run_id IN ({marks}))", run_ids)
    conn.execute(f"DELETE FROM lg_checkpoints WHERE run_id IN ({marks})", run_ids)


def _keep_latest(conn: sqlite3.Connection, thread_ids: Sequence[str]) -> None:
    # the newest checkpoint of each namespace stays, with its writes
    for thread_id in thread_ids:
        latest = ("(SELECT MAX(k.checkpoint_id) FROM lg_checkpoints k WHERE k.thread_id = ?1"
                  " AND k.checkpoint_ns = {t}.checkpoint_ns)")
        conn.execute(f"DELETE FROM lg_writes WHERE thread_id = ?1 AND checkpoint_id <> {latest.format(t='lg_writes')}",
                     (thread_id,))
        conn.execute("DELETE FROM lg_checkpoints WHERE thread_id = ?1 AND checkpoint_id <"
                     f" {latest.format(t='lg_checkpoints')}", (thread_id,))


def _delete_many(conn: sqlite3.Connection, thread_ids: Sequence[str]) -> None:
    for thread_id in thread_ids:
        _delete(conn, thread_id)


def _refresh(conn: sqlite3.Connection, thread_id: str, expires_at: float, now: float) -> None:
    conn.execute("UPDATE lg_threads SET expires_at = ? WHERE thread_id = ? AND expires_at > ?",
                 (expires_at, thread_id, now))


def _expiry(conn: sqlite3.Connection, thread_id: str) -> float | None:
    row = conn.execute("SELECT expires_at FROM lg_threads WHERE thread_id = ?", (thread_id,)).fetchone()
    return None if row is None else row[0]


def _sweep(conn: sqlite3.Connection, now: float) -> int:
    threads = [r[0] for r in conn.execute("SELECT thread_id FROM lg_threads WHERE expires_at <= ?", (now,))]
    for thread_id in threads:
        _delete(conn, thread_id)
    return len(threads)


def _at(ttl: float | None, now: float) -> float | None:
    return None if ttl is None else now + ttl


def _get_fresh(conn: sqlite3.Connection, thread_id: str, ns: str, checkpoint_id: str | None, now: float,
               ttl: float):
    """``_get`` and whether the thread's expiry is due a refresh (less than 90% of ``ttl`` left):
    refreshing on every read would make each read a write."""
    found = _get(conn, thread_id, ns, checkpoint_id, now)
    expires_at = _expiry(conn, thread_id) if found is not None else None
    return found, expires_at is not None and expires_at - now < 0.9 * ttl


class SqliteThreads:
    """The SQLite side of ``RepertorySaver``: rows in, rows out (serialization is the saver's)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        store.add_schema(_SCHEMA, _NAMES)

    def get(self, thread_id: str, ns: str, checkpoint_id: str | None, refresh: float | None = None):
        now = time.time()
        if refresh is None:
            return self.store.read(_get, thread_id, ns, checkpoint_id, now)
        found, due = self.store.read(_get_fresh, thread_id, ns, checkpoint_id, now, refresh)
        if due:
            self.store.write(_refresh, thread_id, now + refresh, now)
        return found

    async def aget(self, thread_id: str, ns: str, checkpoint_id: str | None, refresh: float | None = None):
        now = time.time()
        if refresh is None:
            return await self.store.aread(_get, thread_id, ns, checkpoint_id, now)
        found, due = await self.store.aread(_get_fresh, thread_id, ns, checkpoint_id, now, refresh)
        if due:
            await self.store.awrite(_refresh, thread_id, now + refresh, now)
        return found

    def list(self, thread_id, ns, checkpoint_id, before, limit):
        return self.store.read(_list, thread_id, ns, checkpoint_id, before, limit, time.time())

    async def alist(self, thread_id, ns, checkpoint_id, before, limit):
        return await self.store.aread(_list, thread_id, ns, checkpoint_id, before, limit, time.time())

    def put(self, row: CheckpointRow, run_id: str | None, ttl: float | None) -> None:
        now = time.time()
        self.store.write(_put, row, run_id, _at(ttl, now), now)

    async def aput(self, row: CheckpointRow, run_id: str | None, ttl: float | None) -> None:
        now = time.time()
        await self.store.awrite(_put, row, run_id, _at(ttl, now), now)

    def put_writes(self, key, rows, replace, ttl) -> None:
        now = time.time()
        self.store.write(_put_writes, key, rows, replace, _at(ttl, now), now)

    async def aput_writes(self, key, rows, replace, ttl) -> None:
        now = time.time()
        await self.store.awrite(_put_writes, key, rows, replace, _at(ttl, now), now)

    def delete(self, thread_id: str) -> None:
        self.store.write(_delete, thread_id)

    async def adelete(self, thread_id: str) -> None:
        await self.store.awrite(_delete, thread_id)

    def copy(self, src: str, dst: str, ttl: float | None) -> None:
        now = time.time()
        self.store.write(_copy, src, dst, _at(ttl, now), now)

    async def acopy(self, src: str, dst: str, ttl: float | None) -> None:
        now = time.time()
        await self.store.awrite(_copy, src, dst, _at(ttl, now), now)

    def delete_runs(self, run_ids: Sequence[str], run_of) -> None:
        if run_ids:
            self.store.write(_delete_runs, list(run_ids))

    async def adelete_runs(self, run_ids: Sequence[str], run_of) -> None:
        if run_ids:
            await self.store.awrite(_delete_runs, list(run_ids))

    def prune(self, thread_ids: Sequence[str], keep_latest: bool) -> None:
        self.store.write(_keep_latest if keep_latest else _delete_many, list(thread_ids))

    async def aprune(self, thread_ids: Sequence[str], keep_latest: bool) -> None:
        await self.store.awrite(_keep_latest if keep_latest else _delete_many, list(thread_ids))

    def sweep(self) -> int:
        """Delete the threads whose TTL has passed (they already read as absent); how many."""
        return self.store.write(_sweep, time.time())

    def close(self) -> None:
        pass
