"""The SQLite store's file: created private, and recognised later.

File modes: a folder the store creates is 0700 and a database file it creates is 0600, whatever
the umask (SQLite gives ``-wal`` and ``-shm`` the database file's mode). Folders and files that
already exist keep their modes, since the user may have chosen them (a group that backs the
file up); an existing database that others can read gets a warning with the command to fix it.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import structlog

__all__ = ["FileId", "create_private_file", "file_id", "make_private_folder", "rollback"]

log = structlog.get_logger("repertory.store.sqlite")


FileId = tuple[int, int]


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
