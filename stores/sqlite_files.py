"""The SQLite store's file and connections: helpers the store thread runs."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import structlog

__all__ = ["FileId", "file_id", "rollback"]

log = structlog.get_logger("repertory.store.sqlite")


FileId = tuple[int, int]


def file_id(path: Path) -> FileId | None:
    """(device, inode) of the file now at ``path``, or None if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


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
