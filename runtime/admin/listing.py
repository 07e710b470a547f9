"""Listing and cleanup of stored sessions.

Store reads run on the sync portal's loop (store objects are loop-bound); a delete goes
through the session's host, so a resident copy never outlives it and a session used after it
was listed is kept.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from repertory._sync import on_portal, run_sync
from repertory.errors import InvalidInput
from repertory.ids import RESERVED_KEY_PREFIX, SessionRef, validate_user_id
from repertory.logs import get_logger
from repertory.runtimes.base import Runtime
from repertory.runtimes.current import get_runtime
from repertory.stores.base import SessionInfo

__all__ = ["Age", "Progress", "SessionSummary", "acleanup", "alist_sessions", "as_age", "cleanup", "list_sessions",
           "list_summaries", "parse_duration"]

log = get_logger("repertory.admin")
_CONCURRENCY = 32  # host calls in flight during a cleanup
Progress = Callable[[int, int], None]  # (done, total)


@dataclass(slots=True, frozen=True)
class SessionSummary:
    """One stored session, as listed (times are UTC-aware)."""

    session_id: str
    user_id: str | None
    key: str
    n_messages: int
    updated_at: datetime
    expires_at: datetime | None
    revision: int
    # Bytes the store holds for it (messages, meta and checkpoints), when listed by size.
    bytes_stored: int | None = None


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _summary(info: SessionInfo, size: int | None = None) -> SessionSummary:
    user_id, _, session_id = info.key.rpartition("/")  # ids never hold '/', see storage_key
    return SessionSummary(session_id, user_id or None, info.key, info.n_messages, _utc(info.updated_at),
                          None if info.expires_at is None else _utc(info.expires_at), info.revision, size)


# -- durations --------------------------------------------------------------------------
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"45m"``, ``"12h"``, ``"30d"``, ``"2w"`` (or combined, ``"1d12h"``) as a timedelta."""
    compact = "".join(text.split()).lower() if isinstance(text, str) else ""
    parts = _PART.findall(compact)
    try:
        if compact and "".join(n + u for n, u in parts) == compact:
            return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))
    except OverflowError:
        pass
    raise InvalidInput(f"cannot read the duration {text!r}; write a number and a unit "
                       "(s, m, h, d, w), e.g. 90s, 45m, 12h, 30d, 2w, or combined: 1d12h")


Age = timedelta | int | float | str  # a timedelta, a number of days, or "30d", "12h", ...


def as_age(older_than: Age) -> timedelta:
    """``older_than`` as a timedelta: a timedelta, a number of days, or a duration text."""
    if isinstance(older_than, str):
        age = parse_duration(older_than)
    elif isinstance(older_than, (int, float)) and not isinstance(older_than, bool):
        if not math.isfinite(older_than):
            raise InvalidInput(f"older_than must be a finite number of days, got {older_than!r}")
        age = timedelta(days=older_than)
    elif isinstance(older_than, timedelta):
        age = older_than
    else:
        raise InvalidInput("older_than takes a datetime.timedelta, a number of days, or a duration "
                           f"such as '30d'; got {older_than!r}")
    if age < timedelta(0):
        raise InvalidInput(f"older_than must not be negative, got {older_than!r}")
    return age


def _cutoff(older_than: Age) -> float:
    return time.time() - as_age(older_than).total_seconds()


# -- listing and cleanup ----------------------------------------------------------------
async def list_summaries(rt: Runtime, prefix: str, user_id: str | None, older_than: Age | None,
                limit: int | None, sort: str = "updated") -> list[SessionSummary]:
    if sort not in ("updated", "size"):
        raise InvalidInput(f"sort is 'updated' (least recently updated first) or 'size' (largest first), not {sort!r}")
    if not isinstance(prefix, str):
        raise InvalidInput(f"prefix must be a str, got {type(prefix).__name__}")
    user_id = validate_user_id(user_id)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInput(f"limit must be a positive int or None, got {limit!r}")
    before = None if older_than is None else _cutoff(older_than)
    key_prefix = prefix if user_id is None else f"{user_id}/{prefix}"
    store = rt.admin_store()

    async def read(limit: int | None = limit) -> list[SessionInfo]:
        # Shared states and interop data live under keys no session id can take ('~' cannot
        # start an id): they are not sessions, and listing, export and cleanup leave them alone.
        ask = limit
        while True:
            rows = await store.list_sessions(prefix=key_prefix, updated_before=before, limit=ask)
            sessions = [r for r in rows if not r.key.startswith(RESERVED_KEY_PREFIX)]
            if limit is None or len(sessions) >= limit or len(rows) < ask:
                return sessions[:limit]
            ask += len(rows) - len(sessions)

    if sort == "updated":
        return [_summary(i) for i in await on_portal(read)]

    async def by_size() -> list[SessionSummary]:
        # Every matching session is sized (one query per backend), then the largest are kept.
        infos = await read(None)
        sizes = await store.usage([i.key for i in infos])
        rows = [_summary(i, sizes[i.key].total) for i in infos if i.key in sizes]
        rows.sort(key=lambda r: -(r.bytes_stored or 0))
        return rows[:limit]

    return await on_portal(by_size)


async def alist_sessions(prefix: str = "", user_id: str | None = None, older_than: Age | None = None,
                         limit: int | None = None, sort: str = "updated") -> list[SessionSummary]:
    """Stored sessions, least recently updated first (``sort="size"``: largest first, with
    ``bytes_stored``).

    ``prefix`` matches the storage key (``session_id``, or ``user_id/session_id``); with
    ``user_id`` it matches session ids of that user. ``older_than``: only sessions not
    updated for that long. Expired sessions are not listed.
    """
    return await list_summaries(get_runtime(), prefix, user_id, older_than, limit, sort)


def list_sessions(prefix: str = "", user_id: str | None = None, older_than: Age | None = None,
                  limit: int | None = None, sort: str = "updated") -> list[SessionSummary]:
    """Sync :func:`alist_sessions`."""
    return run_sync(list_summaries, get_runtime(), prefix, user_id, older_than, limit, sort)  # init off the portal


async def _cleanup(rt: Runtime, older_than: Age, dry_run: bool) -> list[SessionSummary]:
    older_than = as_age(older_than)
    cutoff = time.time() - older_than.total_seconds()
    stale = await list_summaries(rt, "", None, older_than, None)
    if dry_run or not stale:
        return stale
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def drop(s: SessionSummary) -> bool:
        async with gate:
            # Through the host, under the session's lock: a resident copy goes too, and a
            # session used since it was listed is kept.
            return await rt.delete(SessionRef.from_key(s.key), cutoff)

    existed = await asyncio.gather(*(drop(s) for s in stale))
    removed = [s for s, gone in zip(stale, existed) if gone]
    log.info("sessions_cleaned", removed=len(removed), older_than_s=older_than.total_seconds())
    return removed


async def acleanup(older_than: Age, *, dry_run: bool = False) -> list[SessionSummary]:
    """Delete sessions not updated for ``older_than``; returns what was (or, dry run, would be) removed.

    ``older_than`` is a timedelta, a number of days (``cleanup(30)``) or a duration text
    (``"12h"``). Each delete runs under the session's lock and keeps a session that was
    updated after it was listed, so a live session is never removed by a cleanup.
    """
    return await _cleanup(get_runtime(), older_than, dry_run)


def cleanup(older_than: Age, *, dry_run: bool = False) -> list[SessionSummary]:
    """Sync :func:`acleanup`."""
    return run_sync(_cleanup, get_runtime(), older_than, dry_run)
