"""An in-process store for unit tests and the ``local`` runtime's ephemeral mode."""

from __future__ import annotations

import time

from repertory.errors import ConcurrentUpdate

from collections.abc import Sequence

from .base import CheckpointInfo, CheckpointRecord, SessionInfo, SessionRecord, StateWrite, StorageUsage, Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """Keeps records in a dict, with the same compare-and-set rules as the real backends."""

    url = "memory://"

    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}
        self._checkpoints: dict[str, dict[str, CheckpointRecord]] = {}
        self._leases: dict[str, tuple[str, float]] = {}  # key -> (owner, monotonic deadline)
        self._deleted: dict[str, str] = {}  # key -> op id of its last delete
        # (key, turn id) -> {seq: data}, expiry
        self._steps: dict[tuple[str, str], tuple[dict[int, bytes], float | None]] = {}

    def _holder(self, key: str) -> tuple[str, float] | None:
        lease = self._leases.get(key)
        if lease is not None and lease[1] <= time.monotonic():
            del self._leases[key]
            return None
        return lease

    def _live(self, key: str) -> SessionRecord | None:
        rec = self._records.get(key)
        if rec is not None and rec.expires_at is not None and rec.expires_at <= time.time():
            del self._records[key]
            self._checkpoints.pop(key, None)
            return None
        return rec

    async def load(self, key: str) -> SessionRecord | None:
        rec = self._live(key)
        if rec is None:
            return None
        return SessionRecord(rec.key, rec.revision, rec.meta, list(rec.messages), rec.updated_at, rec.expires_at)

    async def commit(self, write: StateWrite) -> int:
        rec = self._live(write.key)
        current = rec.revision if rec else 0
        holder = self._holder(write.key)
        if holder is not None and holder[0] != write.owner:
            raise ConcurrentUpdate(f"session {write.key!r} is leased to another runtime; wait for its turn and retry")
        if current != write.expected_revision:
            raise ConcurrentUpdate(
                f"session {write.key!r} is at revision {current}, the write expected "
                f"{write.expected_revision}; reload the session and retry"
            )
        if rec is None or write.replace:
            messages = list(write.messages)
        else:
            messages = rec.messages[: write.base_count] + list(write.messages)
        revision = current + 1 if current else write.first_revision
        self._records[write.key] = SessionRecord(
            write.key, revision, write.meta, messages, write.updated_at, write.expires_at
        )
        if write.checkpoint is not None:
            await self.put_checkpoint(write.checkpoint)
        return revision

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> float:
        holder = self._holder(key)
        now = time.monotonic()
        if holder is not None and holder[0] != owner:
            return max(holder[1] - now, 1e-3)
        self._leases[key] = (owner, now + ttl)
        return 0.0

    async def lease_holder(self, key: str) -> str | None:
        holder = self._holder(key)
        return holder[0] if holder is not None else None

    async def release_lease(self, key: str, owner: str) -> None:
        holder = self._holder(key)
        if holder is not None and holder[0] == owner:
            del self._leases[key]

    async def delete(self, key: str, op_id: str | None = None) -> bool:
        if op_id is not None:
            if self._deleted.get(key) == op_id:
                return True
            self._deleted[key] = op_id
        self._checkpoints.pop(key, None)
        for k in [k for k in self._steps if k[0] == key]:
            del self._steps[k]
        return self._records.pop(key, None) is not None

    async def put_step(self, key: str, turn_id: str, seq: int, data: bytes, expires_at: float | None) -> None:
        steps = self._live_steps(key, turn_id)
        steps[seq] = bytes(data)
        self._steps[(key, turn_id)] = (steps, expires_at)

    async def load_steps(self, key: str, turn_id: str) -> list[tuple[int, bytes]]:
        return sorted(self._live_steps(key, turn_id).items())

    async def drop_steps(self, key: str, turn_id: str) -> None:
        self._steps.pop((key, turn_id), None)

    def _live_steps(self, key: str, turn_id: str) -> dict[int, bytes]:
        steps, expires_at = self._steps.get((key, turn_id), ({}, None))
        if expires_at is not None and expires_at <= time.time():
            del self._steps[(key, turn_id)]
            return {}
        return dict(steps)

    async def sweep_expired(self) -> int:
        """Drop expired sessions (and their checkpoints); returns how many."""
        before = len(self._records)
        for key in list(self._records):
            self._live(key)
        return before - len(self._records)

    async def touch(self, key: str, expires_at: float | None) -> bool:
        rec = self._live(key)
        if rec is None:
            return False
        rec.expires_at = expires_at
        return True

    async def put_checkpoint(self, record: CheckpointRecord) -> None:
        self._checkpoints.setdefault(record.info.key, {})[record.info.cp_id] = record

    async def get_checkpoint(self, key: str, cp_id: str) -> CheckpointRecord | None:
        return self._checkpoints.get(key, {}).get(cp_id)

    async def list_checkpoints(self, key: str, kind: str | None = None) -> list[CheckpointInfo]:
        infos = [r.info for r in self._checkpoints.get(key, {}).values() if kind is None or r.info.kind == kind]
        return sorted(infos, key=lambda i: (i.created_at, i.seq))

    async def delete_checkpoints(self, key: str, cp_ids: list[str]) -> int:
        cps = self._checkpoints.get(key, {})
        return sum(cps.pop(c, None) is not None for c in cp_ids)

    async def list_sessions(
        self, *, prefix: str = "", updated_before: float | None = None, limit: int | None = None
    ) -> list[SessionInfo]:
        out = [
            SessionInfo(r.key, r.revision, len(r.messages), r.updated_at, r.expires_at)
            for k in list(self._records)
            if k.startswith(prefix) and (r := self._live(k)) is not None
            and (updated_before is None or r.updated_at < updated_before)
        ]
        out.sort(key=lambda i: i.updated_at)
        return out[:limit] if limit is not None else out

    async def usage(self, keys: Sequence[str]) -> dict[str, StorageUsage]:
        return {k: StorageUsage(sum(map(len, r.messages)), len(r.meta),
                                sum(len(c.data) for c in self._checkpoints.get(k, {}).values()))
                for k in keys if (r := self._live(k)) is not None}
