"""The SQLite store's file: created private, recognised later, set up safely by many processes.

File modes: a folder the store creates is 0700 and a database file it creates is 0600, whatever
the umask (SQLite gives ``-wal`` and ``-shm`` the database file's mode). Folders and files that
already exist keep their modes, since the user may have chosen them (a group that backs the
file up); an existing database that others can read gets a warning with the command to fix it.
"""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from .sqlite_errors import is_busy

__all__ = ["SESSION_SCHEMA", "SESSION_SCHEMA_NAMES", "FileId", "create_private_file", "file_id", "make_private_folder",
           "open_connection", "rollback"]

log = structlog.get_logger("repertory.store.sqlite")

FileId = tuple[int, int]

# The tables and indexes the store needs; every statement may run again (IF NOT EXISTS).
SESSION_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sessions (
        key TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        meta BLOB NOT NULL,
        n_messages INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        expires_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS sessions_updated ON sessions(updated_at)",
    "CREATE INDEX IF NOT EXISTS sessions_expires ON sessions(expires_at) WHERE expires_at IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS messages (
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (key, seq)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        key TEXT NOT NULL,
        cp_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        seq INTEGER NOT NULL,
        created_at REAL NOT NULL,
        turn INTEGER NOT NULL,
        label TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (key, cp_id)
    ) WITHOUT ROWID""",
    # The op id of a session's last delete (Store.delete), kept for DELETE_MEMORY seconds.
    """CREATE TABLE IF NOT EXISTS deletions (
        key TEXT PRIMARY KEY,
        op_id TEXT NOT NULL,
        at REAL NOT NULL
    ) WITHOUT ROWID""",
    # A session's lease (Store.acquire_lease); `until` is wall-clock time on this machine.
    """CREATE TABLE IF NOT EXISTS leases (
        key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until REAL NOT NULL
    ) WITHOUT ROWID""",
    # The step journal of running turns (Store.put_step); rows go when their turn commits.
    """CREATE TABLE IF NOT EXISTS steps (
        key TEXT NOT NULL,
        turn_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        data BLOB NOT NULL,
        expires_at REAL,
        PRIMARY KEY (key, turn_id, seq)
    ) WITHOUT ROWID""",
)
SESSION_SCHEMA_NAMES = frozenset({"sessions", "sessions_updated", "sessions_expires", "messages", "checkpoints",
                                  "leases", "deletions", "steps"})


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` and its missing parents as 0700; existing folders are left as they are."""
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another process made it at the same moment
        os.chmod(path, 0o700)  # mkdir's mode went through the umask


def create_private_file(path: Path) -> bool:
    """Create the database file as 0600 (empty: SQLite takes an empty file as a new database);
    False if it existed, in which case its mode is left alone but reported if others can read it.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            log.warning("sqlite store readable by other users", path=str(path), mode=f"{mode:04o}",
                        fix=f"unless that is meant: chmod 600 {path} {path}-wal {path}-shm; "
                            f"chmod 700 {path.parent}")
        return False
    # Closing a descriptor drops every POSIX lock this process holds on the file, SQLite's
    # included; safe here because the file is brand new, so no connection of ours has it open.
    try:
        os.fchmod(fd, 0o600)  # os.open's mode went through the umask
    finally:
        os.close(fd)
    return True


def file_id(path: Path) -> FileId | None:
    """(device, inode) of the file now at ``path``, or None if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def open_connection(path: Path, *, synchronous: str, busy_timeout: float, schema: Sequence[str] = SESSION_SCHEMA,
                    schema_names: frozenset[str] = SESSION_SCHEMA_NAMES) -> sqlite3.Connection:
    """A connection in WAL mode with the schema in place; safe while other processes do the same.

    ``schema`` (statements that may run again) and ``schema_names`` (the tables and indexes it
    makes) default to the session store's; long-term memory passes its own.

    The busy timeout is set first, so every later statement waits for a lock instead of failing.
    Some lock waits never reach the busy handler, though: switching a new file to WAL while
    another process does the same answers SQLITE_BUSY at once (measured: 16 of 1600 openers,
    8 at a time). Set-up is idempotent, so it is simply retried until ``busy_timeout`` has passed.
    """
    deadline = time.monotonic() + busy_timeout
    pause = 0.005
    while True:
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            _set_up(conn, synchronous, schema, schema_names)
            return conn
        except sqlite3.Error as exc:
            conn.close()
            if not is_busy(exc) or time.monotonic() + pause > deadline:
                raise
        except BaseException:
            conn.close()
            raise
        time.sleep(pause * random.uniform(0.5, 1.5))  # jitter: openers that collided spread out
        pause = min(pause * 2, 0.25)


def _set_up(conn: sqlite3.Connection, synchronous: str, schema: Sequence[str], schema_names: frozenset[str]) -> None:
    # Asking first: an opener of an existing store takes no lock for a switch it does not need.
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    if schema_names <= names:
        return
    # One write transaction: concurrent openers queue on its lock and find the work done.
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in schema:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open. SQLite rolls back by itself on some errors
    (SQLITE_FULL, SQLITE_IOERR): a second ROLLBACK would fail with "cannot rollback - no
    transaction is active" and replace the error that matters."""
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        log.warning("sqlite rollback failed", error=str(exc))
