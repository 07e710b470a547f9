"""Agents SDK sessions in repertory's SQLite file: tables ``agents_sessions`` (revision, expiry)
and ``agents_items`` (the items as JSON text, in order).

Reads run on the caller's thread (the event loop's: WAL readers never wait), writes there too
when no other writer holds the lock; see ``SQLiteStore.aread``/``awrite``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from repertory.errors import ConcurrentUpdate
from repertory.stores import SQLiteStore

__all__ = ["SqliteItems"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS agents_sessions (
        session_id TEXT PRIMARY KEY,
        revision INTEGER NOT NULL,
        next_seq INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        expires_at REAL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS agents_sessions_expires ON agents_sessions(expires_at) WHERE expires_at IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS agents_items (
        session_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (session_id, seq)
    ) WITHOUT ROWID""",
)
_NAMES = ("agents_sessions", "agents_sessions_expires", "agents_items")

_LIVE = "NOT EXISTS (SELECT 1 FROM agents_sessions s WHERE s.session_id = ?1 AND s.expires_at <= ?2)"


def _get(conn: sqlite3.Connection, sid: str, limit: int | None, now: float) -> list[str]:
    if limit is None or limit < 0:  # a negative limit reads everything, as SQLite's LIMIT does
        return [r[0] for r in conn.execute(
            f"SELECT data FROM agents_items WHERE session_id = ?1 AND {_LIVE} ORDER BY seq", (sid, now))]
    rows = conn.execute(f"SELECT data FROM agents_items WHERE session_id = ?1 AND {_LIVE}"
                        " ORDER BY seq DESC LIMIT ?3", (sid, now, limit)).fetchall()
    return [r[0] for r in reversed(rows)]


def _state(conn: sqlite3.Connection, sid: str, now: float) -> tuple[int, int]:
    """(revision, next seq) of a live session; (0, 0) for none, an expired one being dropped."""
    row = conn.execute("SELECT revision, next_seq, expires_at FROM agents_sessions WHERE session_id = ?",
                       (sid,)).fetchone()
    if row is None:
        return 0, 0
    if row[2] is not None and row[2] <= now:
        _clear(conn, sid)
        return 0, 0
    return row[0], row[1]


def _check(sid: str, revision: int, expected: int | None) -> None:
    if expected is not None and expected != revision:
        raise ConcurrentUpdate(f"Agents session {sid!r} is at revision {revision}, the call expected {expected}; "
                               "read it again (get_items, revision) and retry")


def _add(conn: sqlite3.Connection, sid: str, data: Sequence[str], expected: int | None, first: int,
         expires_at: float | None, now: float) -> int:
    revision, seq = _state(conn, sid, now)
    _check(sid, revision, expected)
    new = revision + 1 if revision else first
    conn.executemany("INSERT INTO agents_items (session_id, seq, data) VALUES (?, ?, ?)",
                     [(sid, seq + i, d) for i, d in enumerate(data)])
    conn.execute("INSERT OR REPLACE INTO agents_sessions (session_id, revision, next_seq, updated_at, expires_at)"
                 " VALUES (?, ?, ?, ?, ?)", (sid, new, seq + len(data), now, expires_at))
    return new


def _pop(conn: sqlite3.Connection, sid: str, expected: int | None, expires_at: float | None,
         now: float) -> str | None:
    revision, _ = _state(conn, sid, now)
    _check(sid, revision, expected)
    row = conn.execute("DELETE FROM agents_items WHERE session_id = ? AND seq = (SELECT MAX(seq) FROM agents_items"
                       " WHERE session_id = ?) RETURNING data", (sid, sid)).fetchone()
    if row is not None:
        conn.execute("UPDATE agents_sessions SET revision = revision + 1, updated_at = ?, expires_at = ?"
                     " WHERE session_id = ?", (now, expires_at, sid))
    return None if row is None else row[0]


def _clear(conn: sqlite3.Connection, sid: str, expected: int | None = None, now: float = 0.0) -> None:
    if expected is not None:
        _check(sid, _state(conn, sid, now)[0], expected)
    conn.execute("DELETE FROM agents_items WHERE session_id = ?", (sid,))
    conn.execute("DELETE FROM agents_sessions WHERE session_id = ?", (sid,))


def _revision(conn: sqlite3.Connection, sid: str, now: float) -> int:
    row = conn.execute("SELECT revision, expires_at FROM agents_sessions WHERE session_id = ?", (sid,)).fetchone()
    return 0 if row is None or (row[1] is not None and row[1] <= now) else row[0]


def _touch(conn: sqlite3.Connection, sid: str, expires_at: float, now: float) -> None:
    conn.execute("UPDATE agents_sessions SET expires_at = ? WHERE session_id = ? AND expires_at > ?",
                 (expires_at, sid, now))


def _sweep(conn: sqlite3.Connection, now: float) -> int:
    sids = [r[0] for r in conn.execute("SELECT session_id FROM agents_sessions WHERE expires_at <= ?", (now,))]
    for sid in sids:
        _clear(conn, sid)
    return len(sids)


class SqliteItems:
    """The SQLite side of ``RepertorySession``: JSON texts in, JSON texts out."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        store.add_schema(_SCHEMA, _NAMES)
        self._touched: dict[str, float] = {}  # session -> when this handle last refreshed its TTL

    async def get(self, sid: str, limit: int | None, ttl: float | None) -> list[str]:
        now = time.time()
        data = await self.store.aread(_get, sid, limit, now)
        # refresh on access, at most every tenth of the TTL: a read should not cost a write
        if ttl is not None and data and now - self._touched.get(sid, 0.0) > ttl / 10:
            self._touched[sid] = now
            await self.store.awrite(_touch, sid, now + ttl, now)
        return data

    async def add(self, sid: str, data: Sequence[str], expected: int | None, first: int, ttl: float | None) -> int:
        now = time.time()
        self._touched[sid] = now
        return await self.store.awrite(_add, sid, data, expected, first, None if ttl is None else now + ttl, now)

    async def pop(self, sid: str, expected: int | None, ttl: float | None) -> str | None:
        now = time.time()
        return await self.store.awrite(_pop, sid, expected, None if ttl is None else now + ttl, now)

    async def clear(self, sid: str, expected: int | None) -> None:
        await self.store.awrite(_clear, sid, expected, time.time())

    async def revision(self, sid: str) -> int:
        return await self.store.aread(_revision, sid, time.time())

    def sweep(self) -> int:
        return self.store.write(_sweep, time.time())
