"""What a SQLite (or file system) failure means for the store, as a typed repertory error.

The original error is always kept: quoted in the message and chained as ``__cause__`` by the
caller (``raise translate(...) from exc``).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from repertory.errors import CorruptState, StoreError, StoreUnavailable

__all__ = ["is_busy", "translate"]

_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_NOT_WRITABLE = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_AUTH}
_NOT_WRITABLE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _code(exc: BaseException) -> int | None:
    """SQLite's primary result code (extended codes carry it in their low byte)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_busy(exc: BaseException) -> bool:
    """Another connection holds the lock (SQLITE_BUSY or SQLITE_LOCKED, extended codes included)."""
    code = _code(exc)
    if code is not None:
        return code in _BUSY
    text = str(exc)  # errors raised without a code (older Pythons) still name it
    return "locked" in text or "busy" in text


def translate(exc: BaseException, path: Path, what: str) -> StoreError:
    """The repertory error for ``exc``, raised while the store at ``path`` did ``what``."""
    code = _code(exc)
    err_no = exc.errno if isinstance(exc, OSError) else None
    said = f"SQLite said: {str(exc)!r}" if isinstance(exc, sqlite3.Error) else f"the system said: {exc}"
    if code in _CORRUPT:
        return CorruptState(
            f"the SQLite store at {path} is damaged ({said}); the {what} changed nothing, and the "
            "store refuses every write from now on so that the damage does not spread. Stop the "
            "runtime and copy the file aside, then restore it from a backup, or salvage what is "
            f"readable with 'sqlite3 {path} .recover | sqlite3 {path}.recovered' and use that file"
        )
    if code == sqlite3.SQLITE_FULL or err_no in _FULL_ERRNOS:
        return StoreUnavailable(
            f"the disk holding the SQLite store at {path} is full ({said}), so the {what} was not "
            "written (nothing was acknowledged). Free space on that disk, or move the store "
            "elsewhere with store='sqlite:///other/path', then retry"
        )
    if code in _NOT_WRITABLE or err_no in _NOT_WRITABLE_ERRNOS:
        return StoreUnavailable(
            f"cannot write the SQLite store at {path} ({said}), so the {what} failed. Make the folder "
            f"{path.parent} and the files {path.name}, {path.name}-wal and {path.name}-shm in it "
            f"writable by this user (uid {os.geteuid()}), or pass store='sqlite:///other/path'"
        )
    if code in _BUSY:
        return StoreUnavailable(
            f"the SQLite store at {path} stayed locked by another connection ({said}), so the {what} "
            "was not done. Another process holds a long transaction on the file (a backup tool, an "
            f"open sqlite3 shell: see 'fuser {path}'); end it, then retry"
        )
    if code == sqlite3.SQLITE_IOERR or isinstance(exc, OSError):
        return StoreUnavailable(
            f"the SQLite store at {path} hit an I/O error ({said}) during the {what}; nothing was "
            "acknowledged. Check the disk and the system log (dmesg), then retry"
        )
    return StoreUnavailable(
        f"the SQLite store at {path} failed during the {what} ({said}); nothing was acknowledged. "
        "Retry; if it keeps failing, check the file with "
        f"\"sqlite3 {path} 'PRAGMA integrity_check'\""
    )
