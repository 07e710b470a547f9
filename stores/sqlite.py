"""The embedded default store: one SQLite file in WAL mode.

SQLite calls run on one dedicated thread per store so they never block the event loop.
Writes are group-committed: every write that arrives while a transaction is in flight joins
the next one, so a busy host pays one commit for many turns. Each write is still a
compare-and-set on the session version. Several processes (the host actors of one node) may
open the same file; WAL and ``busy_timeout`` serialise their transactions.

Failures come out typed (see ``sqlite_errors``): a damaged file is CorruptState, and from then
on the store refuses every write so that the damage does not spread; a full disk, a read-only
folder or a file that cannot be opened is StoreUnavailable. Before a write is acknowledged the
store checks that its file is still the one at its path (one stat): a database deleted or
replaced under a running store would otherwise swallow acknowledged turns.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import structlog

from repertory.errors import ConcurrentUpdate, CorruptState, StoreError, StoreUnavailable

from .base import (DELETE_MEMORY, CheckpointInfo, CheckpointRecord, SessionInfo, SessionRecord, StateWrite, StorageUsage,
                   Store)
from .groups import Group
from .sqlite_errors import is_busy, translate
from .sqlite_files import (SESSION_SCHEMA, SESSION_SCHEMA_NAMES, FileId, create_private_file, file_id,
                           make_private_folder, open_connection, rollback)

__all__ = ["SQLiteStore"]

log = structlog.get_logger("repertory.store.sqlite")
_INLINE_MAX = 16  # larger groups commit on the store thread, so the loop is never held long
_CHECKPOINT_EVERY = 256  # inline commits between WAL checkpoints on the store thread
_INLINE_MAX_MESSAGES = 256  # longer histories are read on the store thread

_BUSY_TIMEOUT = 30.0  # seconds a statement waits for another connection's lock
_FIRST_PAUSE, _LAST_PAUSE = 50e-6, 0.002  # seconds between asks for the write lock (_begin)
# INSERT of 1..8 messages rows in one statement
_INSERT_ROWS = tuple("INSERT INTO messages (key, seq, data) VALUES " + ", ".join(["(?, ?, ?)"] * n)
                     for n in range(1, 9))
_UPSERT_ROWS = tuple(sql.replace("INSERT", "INSERT OR REPLACE", 1) for sql in _INSERT_ROWS)

T = TypeVar("T")


class SQLiteStore(Store):
    """Store sessions in ``path`` (created with its folder if missing)."""

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL") -> None:
        self.path = Path(path).expanduser().resolve()
        self.url = f"sqlite:///{self.path}"
        self._synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="repertory-sqlite")
        self._conn: sqlite3.Connection | None = None
        # Writes that arrive together commit in one transaction (group commit), and so do
        # activation leases: a burst of activations (a batch, a host restarted) costs one.
        self._commits: Group[StateWrite, int] = Group(self._commit_group, self._commit_now)
        self._leases: Group[tuple[str, str, float], float] = Group(self._lease_group, self._lease_now)
        self._inline: sqlite3.Connection | None = None
        self._inline_commits = 0
        self._checkpointing = False  # a WAL checkpoint is queued or running on the store thread
        self._file_id: FileId | None = None  # the file the connections opened
        self._refusal: StoreError | None = None  # why writes are refused (damaged or lost file)
        self._schema: tuple[str, ...] = SESSION_SCHEMA
        self._schema_names: frozenset[str] = SESSION_SCHEMA_NAMES
        # Connections for read/write/aread/awrite, one per caller at a time: WAL lets each
        # thread read without waiting for the store thread (a hop costs ~90 µs).
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._pool_open = True

    # -- failures ---------------------------------------------------------------------
    def _error(self, exc: BaseException, what: str) -> StoreError:
        err = translate(exc, self.path, what)
        if isinstance(err, CorruptState) and self._refusal is None:
            self._refusal = err
            log.error("sqlite store damaged: writes refused", path=str(self.path), op=what, error=str(exc))
        return err

    def _check_writable(self) -> None:
        if self._refusal is not None:
            raise type(self._refusal)(f"write refused, nothing was written. Earlier: {self._refusal}") \
                from self._refusal

    def _check_file(self, op: str) -> None:
        """Raise unless the file at our path is still the one the connections write to."""
        now = file_id(self.path)
        if now == self._file_id:
            return
        what = "deleted" if now is None else "replaced by another file"
        err = StoreUnavailable(
            f"the SQLite store's file {self.path} was {what} while the store had it open, so what "
            f"it writes goes to a file nobody will read again: the {op} is not acknowledged, and the "
            "store refuses writes from now on. Find what removed it (a clean-up job, an 'rm'), "
            "restore it from a backup if you have one, and restart"
        )
        if self._refusal is None:
            self._refusal = err
            log.error("sqlite store file gone: writes refused", path=str(self.path), file=what)
        raise err

    # -- the store thread -------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                conn = self._open()
            except (sqlite3.Error, OSError) as exc:
                raise self._error(exc, "open") from exc
            self._conn = conn
        return self._conn

    def _open(self) -> sqlite3.Connection:
        make_private_folder(self.path.parent)
        create_private_file(self.path)
        conn = open_connection(self.path, synchronous=self._synchronous, busy_timeout=_BUSY_TIMEOUT,
                               schema=self._schema, schema_names=self._schema_names)
        if self._file_id is None:
            self._file_id = file_id(self.path)
        return conn

    def _load_sync(self, key: str, conn: sqlite3.Connection | None = None,
                   max_messages: int | None = None) -> SessionRecord | None | bool:
        """The session; False if it has more than ``max_messages`` (read it elsewhere)."""
        conn = conn or self._connect()
        row = conn.execute(
            "SELECT version, meta, n_messages, updated_at, expires_at FROM sessions WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        version, meta, n, updated_at, expires_at = row
        if expires_at is not None and expires_at <= time.time():
            return None
        if max_messages is not None and n > max_messages:
            return False
        msgs = [r[0] for r in conn.execute(
            "SELECT data FROM messages WHERE key = ? AND seq < ? ORDER BY seq", (key, n)
        )]
        return SessionRecord(key, version, meta, msgs, updated_at, expires_at)

    def _inline_connect(self) -> sqlite3.Connection | None:
        """The event loop's own connection: never waits for a lock (busy_timeout 0)."""
        if self._inline is None and self._conn is not None:  # the schema exists by now
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                conn.execute("PRAGMA busy_timeout=0")
                # WAL checkpoints can take milliseconds: the store thread runs them instead.
                conn.execute("PRAGMA wal_autocheckpoint=0")
            except sqlite3.Error as exc:
                raise self._error(exc, "open") from exc
            try:
                self._check_file("open")  # it opened by path: it must be the store thread's file
            except StoreError:
                conn.close()
                raise
            self._inline = conn
        return self._inline

    def _begin(self, conn: sqlite3.Connection, wait: bool = True) -> None:
        """BEGIN IMMEDIATE: the write lock, waited for while another connection holds it.

        The loop's own connection does not wait, nor does ``wait=False`` (busy_timeout 0: the
        caller moves the write to the store thread). The store thread's does, but not through
        SQLite's busy handler, which sleeps 1, 2, 5, 10, 15 ms... between tries: a lock held for
        100 µs by another host's commit (several hosts on one file: the Ray runtime starts one
        per CPU) cost a write milliseconds. It asks again after 50 µs, doubling up to 2 ms,
        for ``_BUSY_TIMEOUT``.
        """
        if not wait or conn is self._inline:
            conn.execute("BEGIN IMMEDIATE")
            return
        conn.execute("PRAGMA busy_timeout=0")
        try:
            deadline = time.monotonic() + _BUSY_TIMEOUT
            pause = _FIRST_PAUSE
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.Error as exc:
                    if not is_busy(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(pause)
                pause = min(pause * 2, _LAST_PAUSE)
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT * 1000)}")

    def _checkpoint_wal(self) -> None:
        # The loop's commits wait on this thread while it runs (_on_loop), and RESTART,
        # not PASSIVE, so that the next commit writes the log from its start. A passive one
        # raced the loop's commits, never found the log fully copied, so the log never
        # restarted: it grew for as long as writes went on, every commit extended the file, and
        # an fsync that changes a file's size costs about twice one that does not (FULL,
        # steady writes: ~520 against ~275 µs a commit).
        try:
            self._connect().execute("PRAGMA wal_checkpoint(RESTART)")
        except (sqlite3.Error, StoreError) as exc:  # nobody awaits it: the next write reports the trouble
            log.warning("sqlite wal checkpoint failed", path=str(self.path), error=str(exc))
        finally:
            self._checkpointing = False

    def _commit_sync(self, writes: list[StateWrite], conn: sqlite3.Connection | None = None) -> list[int | Exception]:
        self._check_writable()
        conn = conn or self._connect()
        results: list[int | Exception] = []
        self._begin(conn)
        try:
            for w in writes:
                results.append(self._apply(conn, w))
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        self._check_file("commit")
        return results

    @staticmethod
    def _apply(conn: sqlite3.Connection, w: StateWrite) -> int | Exception:
        if w.expected_revision and not w.replace:
            # The common write, an append to the history the writer loaded: one UPDATE that is
            # at once the compare-and-set, the lease check and the proof that nothing is stored
            # past base_count (so no stale rows to delete), then the INSERT. 4 statements a
            # commit instead of 6 (A/B per commit: NORMAL 59 -> 52, FULL 261 -> 243 µs). Any
            # other case (a truncation, a refusal) falls through to the general path below.
            now = time.time()
            if conn.execute(
                "UPDATE sessions SET version = version + 1, meta = ?, n_messages = n_messages + ?, updated_at = ?,"
                " expires_at = ? WHERE key = ? AND version = ? AND n_messages = ? AND NOT EXISTS"
                " (SELECT 1 FROM leases WHERE key = ? AND until > ? AND owner IS NOT ?)",
                (w.meta, len(w.messages), w.updated_at, w.expires_at, w.key, w.expected_revision, w.base_count,
                 w.key, now, w.owner),
            ).rowcount == 1:
                # OR REPLACE: a file written by an older release may hold rows past its count
                SQLiteStore._insert_messages(conn, w.key, w.base_count, w.messages, _UPSERT_ROWS)
                if w.checkpoint is not None:
                    SQLiteStore._put_cp_in(conn, w.checkpoint)
                return w.expected_revision + 1
        now = time.time()
        holder = conn.execute("SELECT owner FROM leases WHERE key = ? AND until > ?", (w.key, now)).fetchone()
        if holder is not None and holder[0] != w.owner:
            return ConcurrentUpdate(f"session {w.key!r} is leased to another runtime; wait for its turn and retry")
        if w.expected_revision == 0:
            # An expired row counts as absent: it may be replaced by a new session, which must not
            # inherit its checkpoints (its messages are replaced below).
            if conn.execute(
                "DELETE FROM sessions WHERE key = ? AND expires_at IS NOT NULL AND expires_at <= ?",
                (w.key, now),
            ).rowcount:
                conn.execute("DELETE FROM checkpoints WHERE key = ?", (w.key,))
            cur = conn.execute(
                "INSERT OR IGNORE INTO sessions (key, version, meta, n_messages, updated_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (w.key, w.first_revision, w.meta, len(w.messages), w.updated_at, w.expires_at),
            )
            applied, replace, start = cur.rowcount == 1, True, 0
        else:
            # Appends go right after the stored messages when base_count is past them, as on the
            # other backends: counting missing ones left a hole that the next append filled over.
            row = conn.execute(
                "UPDATE sessions SET version = version + 1, meta = ?,"
                " n_messages = (CASE WHEN ? THEN 0 ELSE MIN(n_messages, ?) END) + ?, updated_at = ?,"
                " expires_at = ? WHERE key = ? AND version = ? RETURNING n_messages",
                (w.meta, w.replace, w.base_count, len(w.messages), w.updated_at, w.expires_at, w.key,
                 w.expected_revision),
            ).fetchone()
            applied, replace = row is not None, w.replace
            start = row[0] - len(w.messages) if row is not None else 0
        if not applied:
            row = conn.execute("SELECT version FROM sessions WHERE key = ?", (w.key,)).fetchone()
            return ConcurrentUpdate(
                f"session {w.key!r} is at revision {row[0] if row else 0}, the write expected "
                f"{w.expected_revision}; reload the session and retry"
            )
        if replace:
            conn.execute("DELETE FROM messages WHERE key = ?", (w.key,))
        else:
            conn.execute("DELETE FROM messages WHERE key = ? AND seq >= ?", (w.key, start))
        SQLiteStore._insert_messages(conn, w.key, start, w.messages, _INSERT_ROWS)
        if w.checkpoint is not None:
            SQLiteStore._put_cp_in(conn, w.checkpoint)
        return w.expected_revision + 1 if w.expected_revision else w.first_revision

    @staticmethod
    def _insert_messages(conn: sqlite3.Connection, key: str, start: int, messages: list[bytes],
                         statements: tuple[str, ...]) -> None:
        n = len(messages)
        if 0 < n <= len(statements):
            # a turn's few messages in one statement: executemany costs ~5 µs more for two
            conn.execute(statements[n - 1], [v for i, m in enumerate(messages) for v in (key, start + i, m)])
        elif n:
            conn.executemany(statements[0], [(key, start + i, m) for i, m in enumerate(messages)])

    def _tx(self, fn, *args):
        return self._in_tx(self._connect(), fn, *args)

    @staticmethod
    def _delete_in(conn: sqlite3.Connection, key: str, op_id: str | None = None) -> bool:
        if op_id is not None:
            row = conn.execute("SELECT op_id FROM deletions WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] == op_id:
                return True  # a resend of a delete that was applied
            conn.execute("INSERT OR REPLACE INTO deletions (key, op_id, at) VALUES (?, ?, ?)",
                         (key, op_id, time.time()))
        cur = conn.execute("DELETE FROM sessions WHERE key = ?", (key,))
        conn.execute("DELETE FROM messages WHERE key = ?", (key,))
        conn.execute("DELETE FROM checkpoints WHERE key = ?", (key,))
        conn.execute("DELETE FROM steps WHERE key = ?", (key,))
        return cur.rowcount == 1

    @staticmethod
    def _lease_in(conn: sqlite3.Connection, key: str, owner: str, ttl: float) -> float:
        now = time.time()
        cur = conn.execute(
            "INSERT INTO leases (key, owner, until) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
            " SET owner = excluded.owner, until = excluded.until WHERE owner = excluded.owner OR until <= ?",
            (key, owner, now + ttl, now))
        if cur.rowcount == 1:
            return 0.0
        row = conn.execute("SELECT until FROM leases WHERE key = ?", (key,)).fetchone()
        return max(row[0] - now, 1e-3) if row else 1e-3

    @staticmethod
    def _holder_in(conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute("SELECT owner FROM leases WHERE key = ? AND until > ?", (key, time.time())).fetchone()
        return row[0] if row else None

    @staticmethod
    def _release_in(conn: sqlite3.Connection, key: str, owner: str) -> None:
        conn.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, owner))

    @staticmethod
    def _sweep_in(conn: sqlite3.Connection, now: float) -> int:
        conn.execute("DELETE FROM leases WHERE until <= ?", (now,))
        conn.execute("DELETE FROM deletions WHERE at <= ?", (now - DELETE_MEMORY,))
        conn.execute("DELETE FROM steps WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
        keys = [r[0] for r in conn.execute(
            "SELECT key FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))]
        for key in keys:
            SQLiteStore._delete_in(conn, key)
        return len(keys)

    @staticmethod
    def _put_cp_in(conn: sqlite3.Connection, rec: CheckpointRecord) -> None:
        i = rec.info
        conn.execute(
            "INSERT OR REPLACE INTO checkpoints (key, cp_id, kind, seq, created_at, turn, label, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (i.key, i.cp_id, i.kind, i.seq, i.created_at, i.turn, i.label, rec.data),
        )

    @staticmethod
    def _delete_cps_in(conn: sqlite3.Connection, key: str, cp_ids: list[str]) -> int:
        return sum(conn.execute("DELETE FROM checkpoints WHERE key = ? AND cp_id = ?", (key, c)).rowcount
                   for c in cp_ids)

    def _get_cp_sync(self, key: str, cp_id: str) -> CheckpointRecord | None:
        row = self._connect().execute(
            "SELECT kind, seq, created_at, turn, label, data FROM checkpoints WHERE key = ? AND cp_id = ?",
            (key, cp_id)).fetchone()
        if row is None:
            return None
        kind, seq, created_at, turn, label, data = row
        return CheckpointRecord(CheckpointInfo(key, cp_id, kind, seq, created_at, turn, label), data)

    def _list_cps_sync(self, key: str, kind: str | None) -> list[CheckpointInfo]:
        sql = "SELECT cp_id, kind, seq, created_at, turn, label FROM checkpoints WHERE key = ?"
        args: list[object] = [key]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        sql += " ORDER BY created_at, seq"
        return [CheckpointInfo(key, *row) for row in self._connect().execute(sql, args)]

    def _touch_in(self, conn: sqlite3.Connection, key: str, expires_at: float | None) -> bool:
        return conn.execute(
            "UPDATE sessions SET expires_at = ? WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
            (expires_at, key, time.time())).rowcount == 1

    def _list_sync(self, prefix: str, updated_before: float | None, limit: int | None) -> list[SessionInfo]:
        conn = self._connect()
        sql = "SELECT key, version, n_messages, updated_at, expires_at FROM sessions WHERE key >= ? AND key < ?"
        args: list[object] = [prefix, prefix + "\U0010ffff"]
        sql += " AND (expires_at IS NULL OR expires_at > ?)"
        args.append(time.time())
        if updated_before is not None:
            sql += " AND updated_at < ?"
            args.append(updated_before)
        sql += " ORDER BY updated_at"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [SessionInfo(*row) for row in conn.execute(sql, args)]

    def _usage_sync(self, keys: Sequence[str]) -> dict[str, StorageUsage]:
        # length() of a blob reads its size from the record header, not the blob itself.
        conn, wanted, now = self._connect(), json.dumps(list(keys)), time.time()
        found = {k: [0, m, 0] for k, m in conn.execute(
            "SELECT key, length(meta) FROM sessions WHERE key IN (SELECT value FROM json_each(?)) "
            "AND (expires_at IS NULL OR expires_at > ?)", (wanted, now))}
        for column, table in ((0, "messages"), (2, "checkpoints")):
            for key, size in conn.execute(f"SELECT key, SUM(length(data)) FROM {table} "  # noqa: S608 (fixed names)
                                          "WHERE key IN (SELECT value FROM json_each(?)) GROUP BY key", (wanted,)):
                if key in found:
                    found[key][column] = size or 0
        return {k: StorageUsage(*v) for k, v in found.items()}

    async def _run(self, what: str, fn, *args):
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc, what) from exc

    # -- hooks for other tables in the same file (repertory.interop) -------------------
    def add_schema(self, statements: Sequence[str], names: Iterable[str]) -> None:
        """Create more tables in this store's file: ``statements`` may run again (IF NOT
        EXISTS), ``names`` are the tables and indexes they make. Runs now, on the calling thread;
        takes the write lock only if they are missing from the file."""
        names = frozenset(names)
        if names <= self._schema_names:
            return  # added before (every adapter object on a shared store asks)
        self._schema = (*self._schema, *statements)
        self._schema_names = self._schema_names | names
        present = self.read(lambda conn: {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")})
        if not names <= present:
            self.write(lambda conn: [conn.execute(sql) for sql in statements])

    def _take(self) -> sqlite3.Connection:
        if not self._pool_open:
            raise StoreUnavailable(f"the SQLite store {self.path} was closed; open a new one")
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            try:
                return self._open()
            except (sqlite3.Error, OSError) as exc:
                raise self._error(exc, "open") from exc

    def _give(self, conn: sqlite3.Connection) -> None:
        if self._pool_open:
            self._pool.put(conn)
        else:
            conn.close()

    def _in_tx(self, conn: sqlite3.Connection, fn: Callable[..., T], *args: object, wait: bool = True) -> T:
        self._check_writable()
        self._begin(conn, wait)
        try:
            out = fn(conn, *args)
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        self._check_file("write")
        return out

    def read(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(conn, *args)`` on the calling thread. No transaction: like ``load``, each
        statement reads one consistent snapshot, and none waits for a writer (WAL)."""
        conn = self._take()
        try:
            return fn(conn, *args)
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc, "read") from exc
        finally:
            self._give(conn)

    def write(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(conn, *args)`` on the calling thread, in one write transaction."""
        conn = self._take()
        try:
            return self._in_tx(conn, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc, "write") from exc
        finally:
            self._give(conn)

    async def aread(self, fn: Callable[..., T], *args: object) -> T:
        """:meth:`read` from a coroutine: on the loop's thread, since WAL readers never wait
        for writers (short reads only: the loop runs nothing else meanwhile)."""
        return self.read(fn, *args)

    async def awrite(self, fn: Callable[..., T], *args: object) -> T:
        """:meth:`write` from a coroutine: on the loop's thread when no other writer holds the
        lock (~30 µs), else on the store thread, so the loop never waits for a lock."""
        conn = self._take()
        try:
            conn.execute("PRAGMA busy_timeout=0")
            try:
                return self._in_tx(conn, fn, *args, wait=False)
            finally:
                conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT * 1000)}")
        except sqlite3.Error as exc:
            if not is_busy(exc):
                raise self._error(exc, "write") from exc
        except OSError as exc:
            raise self._error(exc, "write") from exc
        finally:
            self._give(conn)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.write, fn, *args)

    # -- the async verbs --------------------------------------------------------------
    async def load(self, key: str) -> SessionRecord | None:
        conn = self._inline_connect()
        if conn is not None:
            # WAL readers never wait for writers: a short history is read on the loop thread
            # (~50 µs instead of a thread hop); a long one on the store thread.
            try:
                rec = self._load_sync(key, conn, _INLINE_MAX_MESSAGES)
            except sqlite3.Error as exc:
                if not is_busy(exc):
                    raise self._error(exc, "load") from exc
                rec = False  # a checkpoint holds the WAL index for a moment: read on the store thread
            if rec is not False:
                return rec  # type: ignore[return-value]
        return await self._run("load", self._load_sync, key)

    async def commit(self, write: StateWrite) -> int:
        self._check_writable()
        return await self._commits.submit(write)

    def _commit_now(self, writes: list[StateWrite]) -> list[int | Exception] | None:
        # on the loop thread when no other writer holds the lock (~30 µs instead of a ~180 µs
        # thread hop); a large group goes to the store thread
        return self._on_loop(lambda conn: self._commit_sync(writes, conn), "commit") \
            if len(writes) <= _INLINE_MAX else None

    async def _commit_group(self, writes: list[StateWrite]) -> list[int | Exception]:
        results = self._commit_now(writes)
        return results if results is not None else await self._run("commit", self._commit_sync, writes)

    def _on_loop(self, write: Callable[[sqlite3.Connection], T], what: str) -> T | None:
        """``write(conn)`` (one transaction) on the loop's own connection, or None when it must
        wait on the store thread: another writer holds the lock, or a WAL checkpoint is queued
        there (which the loop's writes must not starve)."""
        conn = self._inline_connect()
        if conn is None or self._checkpointing:
            return None
        try:
            results = write(conn)
        except sqlite3.Error as exc:
            if is_busy(exc):
                return None
            raise self._error(exc, what) from exc
        # the loop's connection never checkpoints the WAL itself (wal_autocheckpoint=0)
        self._inline_commits += 1
        if self._inline_commits % _CHECKPOINT_EVERY == 0:
            self._checkpointing = True
            asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint_wal)
        return results

    async def delete(self, key: str, op_id: str | None = None) -> bool:
        return await self._run("delete", self._tx, self._delete_in, key, op_id)

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> float:
        self._check_writable()
        return await self._leases.submit((key, owner, ttl))

    def _lease_now(self, leases: list[tuple[str, str, float]]) -> list[float] | None:
        return self._on_loop(lambda conn: self._in_tx(conn, self._leases_in, leases), "acquire_lease")

    async def _lease_group(self, leases: list[tuple[str, str, float]]) -> list[float]:
        results = self._lease_now(leases)
        return results if results is not None else await self._run("acquire_lease", self._tx, self._leases_in, leases)

    @classmethod
    def _leases_in(cls, conn: sqlite3.Connection, leases: list[tuple[str, str, float]]) -> list[float]:
        return [cls._lease_in(conn, key, owner, ttl) for key, owner, ttl in leases]

    async def release_lease(self, key: str, owner: str) -> None:
        await self._run("release_lease", self._tx, self._release_in, key, owner)

    async def lease_holder(self, key: str) -> str | None:
        return await self._run("lease_holder", self._tx, self._holder_in, key)

    async def sweep_expired(self) -> int:
        """Delete sessions (and their checkpoints) whose expiry has passed; returns how many."""
        return await self._run("sweep_expired", self._tx, self._sweep_in, time.time())

    async def touch(self, key: str, expires_at: float | None) -> bool:
        return await self._run("touch", self._tx, self._touch_in, key, expires_at)

    async def put_checkpoint(self, record: CheckpointRecord) -> None:
        await self._run("put_checkpoint", self._tx, self._put_cp_in, record)

    async def get_checkpoint(self, key: str, cp_id: str) -> CheckpointRecord | None:
        return await self._run("get_checkpoint", self._get_cp_sync, key, cp_id)

    async def list_checkpoints(self, key: str, kind: str | None = None) -> list[CheckpointInfo]:
        return await self._run("list_checkpoints", self._list_cps_sync, key, kind)

    async def delete_checkpoints(self, key: str, cp_ids: list[str]) -> int:
        return await self._run("delete_checkpoints", self._tx, self._delete_cps_in, key, list(cp_ids))

    async def usage(self, keys: Sequence[str]) -> dict[str, StorageUsage]:
        return await self._run("usage", self._usage_sync, keys) if keys else {}

    async def put_step(self, key: str, turn_id: str, seq: int, data: bytes, expires_at: float | None) -> None:
        self._check_writable()
        await self._run("put_step", self._tx, self._put_step_in, key, turn_id, seq, data, expires_at)

    async def load_steps(self, key: str, turn_id: str) -> list[tuple[int, bytes]]:
        return await self._run("load_steps", self._load_steps_sync, key, turn_id)

    async def drop_steps(self, key: str, turn_id: str) -> None:
        await self._run("drop_steps", self._tx, self._drop_steps_in, key, turn_id)

    @staticmethod
    def _put_step_in(conn: sqlite3.Connection, key: str, turn_id: str, seq: int, data: bytes,
                     expires_at: float | None) -> None:
        conn.execute("INSERT OR REPLACE INTO steps (key, turn_id, seq, data, expires_at) VALUES (?, ?, ?, ?, ?)",
                     (key, turn_id, seq, data, expires_at))

    def _load_steps_sync(self, key: str, turn_id: str) -> list[tuple[int, bytes]]:
        return [(r[0], r[1]) for r in self._connect().execute(
            "SELECT seq, data FROM steps WHERE key = ? AND turn_id = ? AND (expires_at IS NULL OR expires_at > ?)"
            " ORDER BY seq", (key, turn_id, time.time()))]

    @staticmethod
    def _drop_steps_in(conn: sqlite3.Connection, key: str, turn_id: str) -> None:
        conn.execute("DELETE FROM steps WHERE key = ? AND turn_id = ?", (key, turn_id))

    async def list_sessions(
        self, *, prefix: str = "", updated_before: float | None = None, limit: int | None = None
    ) -> list[SessionInfo]:
        return await self._run("list_sessions", self._list_sync, prefix, updated_before, limit)

    async def close(self) -> None:
        self._pool_open = False
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break
        if self._inline is not None:
            self._inline.close()
            self._inline = None

        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=True)
