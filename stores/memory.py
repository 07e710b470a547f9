"""An in-process store for unit tests and the ``local`` runtime's ephemeral mode."""

from __future__ import annotations

import time

from repertory.errors import ConcurrentUpdate

from .base import SessionInfo, SessionRecord, StateWrite, Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """Keeps records in a dict, with the same compare-and-set rules as the real backends."""

    url = "memory://"

    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}

    def _live(self, key: str) -> SessionRecord | None:
        rec = self._records.get(key)
        if rec is not None and rec.expires_at is not None and rec.expires_at <= time.time():
            del self._records[key]
            return None
        return rec

    async def load(self, key: str) -> SessionRecord | None:
        rec = self._live(key)
        if rec is None:
            return None
        return SessionRecord(rec.key, rec.version, rec.meta, list(rec.messages), rec.updated_at, rec.expires_at)

    async def commit(self, write: StateWrite) -> int:
        rec = self._live(write.key)
        current = rec.version if rec else 0
        if current != write.expected_version:
            raise ConcurrentUpdate(
                f"session {write.key!r} is at version {current}, the write expected "
                f"{write.expected_version}; reload the session and retry"
            )
        if rec is None or write.replace:
            messages = list(write.messages)
        else:
            messages = rec.messages[: write.base_count] + list(write.messages)
        self._records[write.key] = SessionRecord(
            write.key, current + 1, write.meta, messages, write.updated_at, write.expires_at
        )
        return current + 1

    async def delete(self, key: str) -> bool:
        return self._records.pop(key, None) is not None

    async def list_sessions(
        self, *, prefix: str = "", updated_before: float | None = None, limit: int | None = None
    ) -> list[SessionInfo]:
        out = [
            SessionInfo(r.key, r.version, len(r.messages), r.updated_at, r.expires_at)
            for k in list(self._records)
            if k.startswith(prefix) and (r := self._live(k)) is not None
            and (updated_before is None or r.updated_at < updated_before)
        ]
        out.sort(key=lambda i: i.updated_at)
        return out[:limit] if limit is not None else out
