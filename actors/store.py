"""StoreActor: one owner for a backend that needs one (SQLite on a multi-node cluster).

Hosts reach it through :class:`RemoteStore`, which implements the same Store interface, so a
host does not know whether it writes the backend itself or through this actor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ray

from repertory.config import Settings
from repertory.errors import StoreUnavailable

from repertory.stores.base import (CheckpointInfo, CheckpointRecord, SessionInfo, SessionRecord, StateWrite, StorageUsage,
                                   Store)

from .calls import RESTART_WAIT, call_restartable
from .names import ActorNames

__all__ = ["RemoteStore", "StoreActor", "open_actor_store"]


def open_actor_store(settings: Settings, names: ActorNames) -> Store:
    """The store an actor uses: its own connection, or the StoreActor in ``actor`` mode.

    Encryption wraps either one here, in the host: the StoreActor and the Ray object store
    only ever hold sealed records, and the StoreActor needs no key.
    """
    if settings.store_access == "actor":
        return settings.wrap_store(RemoteStore(names))
    return settings.open_store()


class StoreActor:
    """Owns the backend connection; one method per Store verb, each delegating."""

    def __init__(self, url: str) -> None:
        from repertory.logs import configure_logging
        from repertory.stores.factory import open_store

        configure_logging()
        self._store = open_store(url)

    async def ping(self) -> bool:
        return True

    async def load(self, key: str) -> SessionRecord | None:
        return await self._store.load(key)

    async def commit(self, write: StateWrite) -> int:
        return await self._store.commit(write)

    async def delete(self, key: str, op_id: str | None = None) -> bool:
        return await self._store.delete(key, op_id)

    async def list_sessions(self, prefix: str, updated_before: float | None, limit: int | None) -> list[SessionInfo]:
        return await self._store.list_sessions(prefix=prefix, updated_before=updated_before, limit=limit)

    async def touch(self, key: str, expires_at: float | None) -> bool:
        return await self._store.touch(key, expires_at)

    async def put_checkpoint(self, record: CheckpointRecord) -> None:
        await self._store.put_checkpoint(record)

    async def get_checkpoint(self, key: str, cp_id: str) -> CheckpointRecord | None:
        return await self._store.get_checkpoint(key, cp_id)

    async def list_checkpoints(self, key: str, kind: str | None) -> list[CheckpointInfo]:
        return await self._store.list_checkpoints(key, kind)

    async def delete_checkpoints(self, key: str, cp_ids: list[str]) -> int:
        return await self._store.delete_checkpoints(key, cp_ids)

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> float:
        return await self._store.acquire_lease(key, owner, ttl)

    async def release_lease(self, key: str, owner: str) -> None:
        await self._store.release_lease(key, owner)

    async def lease_holder(self, key: str) -> str | None:
        return await self._store.lease_holder(key)

    async def put_step(self, key: str, turn_id: str, seq: int, data: bytes, expires_at: float | None) -> None:
        await self._store.put_step(key, turn_id, seq, data, expires_at)

    async def load_steps(self, key: str, turn_id: str) -> list[tuple[int, bytes]]:
        return await self._store.load_steps(key, turn_id)

    async def drop_steps(self, key: str, turn_id: str) -> None:
        await self._store.drop_steps(key, turn_id)

    async def sweep_expired(self) -> int:
        return await self._store.sweep_expired()

    async def usage(self, keys: list[str]) -> dict[str, StorageUsage]:
        return await self._store.usage(keys)


class RemoteStore(Store):
    """The Store interface over the named StoreActor."""

    def __init__(self, names: ActorNames) -> None:
        self._actor = ray.get_actor(names.store(), namespace=names.namespace)
        self.url = f"ray-actor://{names.namespace}/{names.store()}"

    async def _call(self, method: Any, *args: Any) -> Any:
        # A dead StoreActor is restarted by Ray; resend until it answers. A commit that had
        # landed before the crash then fails its compare-and-set, and the host's retry finds
        # the turn already stored (turn ids), so nothing is applied twice.
        return await call_restartable(
            lambda: method.remote(*args),
            lambda exc: StoreUnavailable(f"the StoreActor did not come back within {RESTART_WAIT:.0f} s: {exc}"))

    async def load(self, key: str) -> SessionRecord | None:
        return await self._call(self._actor.load, key)

    async def commit(self, write: StateWrite) -> int:
        return await self._call(self._actor.commit, write)

    async def delete(self, key: str, op_id: str | None = None) -> bool:
        return await self._call(self._actor.delete, key, op_id)

    async def list_sessions(self, *, prefix: str = "", updated_before: float | None = None,
                            limit: int | None = None) -> list[SessionInfo]:
        return await self._call(self._actor.list_sessions, prefix, updated_before, limit)

    async def touch(self, key: str, expires_at: float | None) -> bool:
        return await self._call(self._actor.touch, key, expires_at)

    async def put_checkpoint(self, record: CheckpointRecord) -> None:
        await self._call(self._actor.put_checkpoint, record)

    async def get_checkpoint(self, key: str, cp_id: str) -> CheckpointRecord | None:
        return await self._call(self._actor.get_checkpoint, key, cp_id)

    async def list_checkpoints(self, key: str, kind: str | None = None) -> list[CheckpointInfo]:
        return await self._call(self._actor.list_checkpoints, key, kind)

    async def delete_checkpoints(self, key: str, cp_ids: list[str]) -> int:
        return await self._call(self._actor.delete_checkpoints, key, cp_ids)

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> float:
        return await self._call(self._actor.acquire_lease, key, owner, ttl)

    async def usage(self, keys: Sequence[str]) -> dict[str, StorageUsage]:
        return await self._call(self._actor.usage, list(keys))

    async def release_lease(self, key: str, owner: str) -> None:
        await self._call(self._actor.release_lease, key, owner)

    async def lease_holder(self, key: str) -> str | None:
        return await self._call(self._actor.lease_holder, key)

    async def put_step(self, key: str, turn_id: str, seq: int, data: bytes, expires_at: float | None) -> None:
        await self._call(self._actor.put_step, key, turn_id, seq, data, expires_at)

    async def load_steps(self, key: str, turn_id: str) -> list[tuple[int, bytes]]:
        return await self._call(self._actor.load_steps, key, turn_id)

    async def drop_steps(self, key: str, turn_id: str) -> None:
        await self._call(self._actor.drop_steps, key, turn_id)

    async def sweep_expired(self) -> int:
        return await self._call(self._actor.sweep_expired)
