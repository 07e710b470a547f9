"""The SQLite store's file and connections: helpers the store thread runs."""

from __future__ import annotations

import sqlite3

import structlog

__all__ = ["rollback"]

log = structlog.get_logger("repertory.store.sqlite")


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
