"""The ``sqlite`` memory provider: one table per database file, FTS5/BM25 recall.

``memories`` holds one row per remembered fact, keyed by ``scope`` (``user:<id>`` or
``session:<id>``) and content (the same fact stated again refreshes its row); ``memories_fts``
indexes the text with the Porter stemmer, every word prefixed with a tag of its scope, so the
index is partitioned by scope: a recall reads only that user's postings, and BM25's document
frequencies are the user's own. (Measured at 100,000 memories of 1,000 users, with a query
word found in 40% of all facts: a separate scope column ANDed into the query took 8 ms p50,
since FTS5 still walks the common word's whole posting list.) The file may be the runtime's own store (other tables, same WAL
file) or a file of its own.

Every SQLite call runs on the provider's own thread, never on the caller's event loop (an
agent actor's loop, or on the local runtime the loop that hosts the sessions).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from repertory.memory.quality import MemoryItem
from repertory.stores.sqlite_errors import translate
from repertory.stores.sqlite_files import create_private_file, open_connection

__all__ = ["RECALL_WINDOW", "SQLiteMemoryStore", "fts_query", "index_terms", "scope_tag"]

log = structlog.get_logger("repertory.memory")
T = TypeVar("T")
_BUSY_TIMEOUT_MS = 10_000

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS memories (
        id INTEGER PRIMARY KEY,
        scope TEXT NOT NULL,
        content TEXT NOT NULL,
        kind TEXT NOT NULL,
        importance REAL NOT NULL,
        relevance REAL NOT NULL,
        score REAL NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        session_id TEXT,
        UNIQUE (scope, content)
    )""",
    "CREATE INDEX IF NOT EXISTS memories_scope_score ON memories(scope, score)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(terms, tokenize='porter unicode61')",
)
_SCHEMA_NAMES = frozenset({"memories", "memories_scope_score", "memories_fts"})
_COLUMNS = "m.id, m.content, m.kind, m.importance, m.relevance, m.score, m.created_at, m.updated_at, m.session_id"

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(
    "a an the is are was were be been am i me my mine you your we our us it its s what whats who where when "
    "why how which do does did to of in on at for and or not that this there please tell know remember about "
    "with can could would should will have has had so just as by user users m re ve ll d t".split())
# Words that ask for the same memories: a question about a "favourite" finds a stated preference.
_SAME = {w: group for group in (("favourite", "favorite", "prefer", "preferred", "like", "love"),
                                ("colour", "color"), ("name", "called")) for w in group}
_MAX_TERMS = 24
# A recall ranks (BM25) at most this many of the scope's matching memories, the newest: its cost
# stays bounded when a query word is in most of a large scope's memories (measured, 100,000
# memories of one user, a word in 40% of them: 144 ms p50 ranking all, 8.7 ms with the window).
RECALL_WINDOW = 2000


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("'", ""))


def scope_tag(scope: str) -> str:
    """The prefix of a scope's index terms: letters and digits, so a term stays one token."""
    return "s" + hashlib.sha256(scope.encode()).hexdigest()[:12]


def index_terms(scope: str, content: str) -> str:
    """What the FTS index holds for ``content``: its words, each prefixed with the scope's tag."""
    tag = scope_tag(scope)
    return " ".join(tag + w for w in _words(content))


def fts_query(scope: str, text: str) -> str | None:
    """An FTS5 expression matching, in ``scope``, any content word of ``text`` (or its
    synonyms); None if ``text`` has none."""
    terms: list[str] = []
    for w in _words(text):
        if w in _STOP or len(w) < 2:
            continue
        for t in _SAME.get(w, (w,)):
            if t not in terms:
                terms.append(t)
    if not terms:
        return None
    tag = scope_tag(scope)
    return " OR ".join(f'"{tag}{t}"' for t in terms[:_MAX_TERMS])


def _row(r: tuple) -> dict[str, Any]:
    return {"id": r[0], "content": r[1], "kind": r[2], "importance": r[3], "relevance": r[4], "score": r[5],
            "created_at": r[6], "timestamp": r[7], "session_id": r[8]}


class SQLiteMemoryStore:
    """Long-term memories in one SQLite file; async methods run on the store's thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="repertory-memory")

    # -- the thread -------------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._guarded, fn, args)

    def _guarded(self, fn: Callable[..., T], args: tuple) -> T:
        try:
            return fn(self._connect(), *args)
        except sqlite3.Error as exc:
            raise translate(exc, self.path, f"memory {getattr(fn, '__name__', 'call').lstrip('_')}") from exc

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            create_private_file(self.path)
            self._conn = open_connection(self.path, synchronous="NORMAL", busy_timeout=_BUSY_TIMEOUT_MS / 1000,
                                         schema=_SCHEMA, schema_names=_SCHEMA_NAMES)
        return self._conn

    # -- verbs ------------------------------------------------------------------------
    async def add(self, scope: str, item: MemoryItem, score: float, *, max_memories: int | None = None,
                  rescore: Callable[[MemoryItem], float] | None = None) -> int:
        """Store ``item`` (or refresh the same fact) with ``score``; then, over ``max_memories``,
        rescore the scope's memories with ``rescore`` and delete the lowest first. Returns its id."""
        return (await self._run(_add, scope, [(dict(item), score)], max_memories, rescore))[0]

    async def add_many(self, scope: str, items: list[tuple[MemoryItem, float]], *, max_memories: int | None = None,
                       rescore: Callable[[MemoryItem], float] | None = None) -> list[int]:
        """:meth:`add` for several ``(item, score)`` pairs in one transaction; returns their ids."""
        if not items:
            return []
        return await self._run(_add, scope, [(dict(i), s) for i, s in items], max_memories, rescore)

    async def search(self, scope: str, query: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` memories of ``scope`` by BM25 relevance to ``query`` (best first),
        among the newest :data:`RECALL_WINDOW` that match."""
        return await self._run(_search, scope, query, limit)

    async def recall(self, scope: str, query: str, limit: int) -> list[dict[str, Any]]:
        """:meth:`search`, topped up with the scope's best-scored memories up to ``limit``:
        what a prompt gets (a question may share no word with the fact that answers it)."""
        return await self._run(_recall, scope, query, limit)

    async def all(self, scope: str) -> list[dict[str, Any]]:
        """Every memory of ``scope``, oldest first."""
        return await self._run(_all, scope)

    async def count(self, scope: str) -> int:
        return await self._run(_count, scope)

    async def clear(self, scope: str) -> int:
        """Delete every memory of ``scope``; returns how many."""
        return await self._run(_clear, scope)

    def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._pool.submit(close).result()
        self._pool.shutdown(wait=True)


def _add(conn: sqlite3.Connection, scope: str, items: list[tuple[dict, float]], max_memories: int | None,
         rescore: Callable[[MemoryItem], float] | None) -> list[int]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        ids = [_add_one(conn, scope, item, score) for item, score in items]
        if max_memories is not None:
            _evict(conn, scope, max_memories, rescore)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return ids


def _add_one(conn: sqlite3.Connection, scope: str, item: dict, score: float) -> int:
    ts = float(item.get("timestamp") or time.time())
    row = conn.execute("SELECT id, importance, relevance FROM memories WHERE scope = ? AND content = ?",
                       (scope, item["content"])).fetchone()
    if row is None:
        cur = conn.execute(
            "INSERT INTO memories (scope, content, kind, importance, relevance, score, created_at, updated_at, "
            "session_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (scope, item["content"], item.get("kind", "fact"), item["importance"], item["relevance"], score,
             ts, ts, item.get("session_id")))
        mid = cur.lastrowid
        conn.execute("INSERT INTO memories_fts (rowid, terms) VALUES (?, ?)",
                     (mid, index_terms(scope, item["content"])))
    else:
        mid = row[0]
        conn.execute("UPDATE memories SET importance = ?, relevance = ?, score = max(score, ?), "
                     "updated_at = max(updated_at, ?) WHERE id = ?",
                     (max(row[1], item["importance"]), max(row[2], item["relevance"]), score, ts, mid))
    return mid


def _evict(conn: sqlite3.Connection, scope: str, max_memories: int,
           rescore: Callable[[MemoryItem], float] | None) -> None:
    n = conn.execute("SELECT COUNT(*) FROM memories WHERE scope = ?", (scope,)).fetchone()[0]
    if n <= max_memories:
        return
    if rescore is not None:  # scores move with time (recency): rank on today's scores
        rows = [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM memories m WHERE scope = ?", (scope,))]
        conn.executemany("UPDATE memories SET score = ? WHERE id = ?",
                         [(float(rescore({**r, "scope": scope})), r["id"]) for r in rows])
    gone = [r[0] for r in conn.execute(
        "SELECT id FROM memories WHERE scope = ? ORDER BY score, updated_at, id LIMIT ?", (scope, n - max_memories))]
    conn.executemany("DELETE FROM memories WHERE id = ?", [(i,) for i in gone])
    conn.executemany("DELETE FROM memories_fts WHERE rowid = ?", [(i,) for i in gone])
    log.debug("memories_evicted", scope=scope, evicted=len(gone), kept=max_memories)


def _search(conn: sqlite3.Connection, scope: str, query: str, limit: int) -> list[dict[str, Any]]:
    expr = fts_query(scope, query)
    if expr is None:
        return []
    # BM25 ranks the newest RECALL_WINDOW matches only: FTS5 stops reading postings there.
    # m.scope is checked too: two scopes could share a tag (48 bits).
    rows = conn.execute(
        f"SELECT {_COLUMNS}, f.rank FROM (SELECT rowid, bm25(memories_fts) AS rank FROM memories_fts "
        "WHERE memories_fts MATCH ? ORDER BY rowid DESC LIMIT ?) f JOIN memories m ON m.id = f.rowid "
        "WHERE m.scope = ? ORDER BY f.rank, m.score DESC LIMIT ?",
        (expr, RECALL_WINDOW, scope, limit)).fetchall()
    out = []
    for r in rows:
        d = _row(r)
        d["rank"] = r[-1]
        out.append(d)
    return out


def _recall(conn: sqlite3.Connection, scope: str, query: str, limit: int) -> list[dict[str, Any]]:
    hits = _search(conn, scope, query, limit)
    if len(hits) < limit:
        seen = [h["id"] for h in hits] or [-1]
        marks = ",".join("?" * len(seen))
        hits += [_row(r) for r in conn.execute(
            f"SELECT {_COLUMNS} FROM memories m WHERE scope = ? AND id NOT IN ({marks}) "
            "ORDER BY score DESC, updated_at DESC LIMIT ?", (scope, *seen, limit - len(hits)))]
    return hits


def _all(conn: sqlite3.Connection, scope: str) -> list[dict[str, Any]]:
    return [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM memories m WHERE scope = ? ORDER BY id", (scope,))]


def _count(conn: sqlite3.Connection, scope: str) -> int:
    return conn.execute("SELECT COUNT(*) FROM memories WHERE scope = ?", (scope,)).fetchone()[0]


def _clear(conn: sqlite3.Connection, scope: str) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        ids = [(r[0],) for r in conn.execute("SELECT id FROM memories WHERE scope = ?", (scope,))]
        conn.executemany("DELETE FROM memories_fts WHERE rowid = ?", ids)
        conn.execute("DELETE FROM memories WHERE scope = ?", (scope,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return len(ids)
