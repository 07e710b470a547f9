"""Shared state: a revisioned key-value map many sessions and agents read and write.

:class:`SharedStateCore` is the logic (no Ray): every mutation is applied under one lock and
written to the store (compare-and-set on the record's revision) before it is acknowledged, so
concurrent writers lose nothing and a restart finds every acknowledged change. Watchers wait
on a condition and receive the changes after a given revision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from repertory.stores.base import StateWrite, Store
from repertory.stores.codec import MsgpackCodec

from repertory.errors import InvalidInput
from repertory.state.conflicts import retry_conflicts

__all__ = ["SHARED_STATE_PREFIX", "SharedStateCore", "shared_state_key", "stored_shared_state"]

SHARED_STATE_PREFIX = "~shared/"  # session ids start with a letter or digit: no clash

_codec = MsgpackCodec()
_MISSING = object()
_HISTORY = 1024  # recent changes kept for watchers that fall behind
_RECENT_OPS = 256


def shared_state_key(state_id: str) -> str:
    """Store key of a shared state ('~' never appears in session ids, so no clash)."""
    return f"{SHARED_STATE_PREFIX}{state_id}"


async def stored_shared_state(store: Store, state_id: str) -> dict[str, Any]:
    """A shared state as its store holds it: ``{"id", "revision", "values"}`` (revision 0 and no
    values if it was never written). Every acknowledged write is in the store, so this is the
    state as of the last acknowledged write, read in one load."""
    rec = await store.load(shared_state_key(state_id))
    if rec is None:
        return {"id": state_id, "revision": 0, "values": {}}
    body = _codec.decode(rec.meta, source=f"shared state {state_id!r}")
    return {"id": state_id, "revision": rec.revision, "values": dict(body.get("values", {}))}


class SharedStateCore:
    """One shared state's values, revision and watchers."""

    def __init__(self, store: Store, state_id: str) -> None:
        self.store = store
        self.state_id = state_id
        self.key = shared_state_key(state_id)
        self.values: dict[str, Any] = {}
        self.revision = 0  # store revision of the record
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._changes: list[tuple[int, dict[str, Any]]] = []
        self._recent_ops: list[list[Any]] = []  # [op_id, result]: a resent op is answered, not redone
        self._loaded = False

    async def _load(self) -> None:
        if self._loaded:
            return
        rec = await self.store.load(self.key)
        if rec is not None:
            body = _codec.decode(rec.meta, source=f"shared state {self.state_id!r}")
            self.values = dict(body.get("values", {}))
            self._recent_ops = list(body.get("recent_ops", []))
            self.revision = rec.revision
        self._loaded = True

    @staticmethod
    def _check_value(value: Any) -> None:
        _codec.encode(value)  # raises InvalidInput naming the unsupported type

    async def _mutate(self, fn, op_id: str | None) -> Any:
        async with self._lock:
            await self._load()
            if op_id is not None:
                for done_id, done_result in self._recent_ops:
                    if done_id == op_id:
                        return done_result
            new = dict(self.values)
            result, changed = fn(new)
            if not changed:
                return result
            now = time.time()
            recent = [*self._recent_ops[-(_RECENT_OPS - 1):], [op_id, result]] if op_id else self._recent_ops
            body = {"values": new, "updated_at": now, "recent_ops": recent}
            write = StateWrite(self.key, self.revision, _codec.encode(body), replace=True, updated_at=now)
            revision = await self.store.commit(write)
            self.values, self.revision, self._recent_ops = new, revision, recent
            self._changes.append((revision, {k: new.get(k) for k in changed}))
            del self._changes[:-_HISTORY]
        async with self._changed:
            self._changed.notify_all()
        return result

    async def _apply(self, op_id: str | None, fn: Callable[[dict], tuple[Any, list[str]]]) -> Any:
        """Apply a write once per ``op_id``, retried on a lost compare-and-set."""
        def stale() -> None:
            self._loaded = False  # another process wrote this state: reload

        return await retry_conflicts(lambda: self._mutate(fn, op_id), on_conflict=stale,
                                     what=f"shared state {self.state_id}")

    # Each write edits a copy of the values and returns (result, changed keys).
    async def set(self, op_id: str | None, key: str, value: Any) -> None:
        def fn(values: dict) -> tuple[Any, list[str]]:
            self._check_key(key)
            self._check_value(value)
            values[key] = value
            return None, [key]

        return await self._apply(op_id, fn)

    async def update(self, op_id: str | None, mapping: dict[str, Any]) -> None:
        def fn(values: dict) -> tuple[Any, list[str]]:
            if not isinstance(mapping, dict):
                raise InvalidInput("update takes a dict")
            for k in mapping:
                self._check_key(k)
            self._check_value(mapping)
            values.update(mapping)
            return None, list(mapping)

        return await self._apply(op_id, fn)

    async def delete(self, op_id: str | None, key: str) -> bool:
        def fn(values: dict) -> tuple[Any, list[str]]:
            if key not in values:
                return False, []
            del values[key]
            return True, [key]

        return await self._apply(op_id, fn)

    async def compare_and_set(self, op_id: str | None, key: str, expected: Any, new: Any) -> bool:
        def fn(values: dict) -> tuple[Any, list[str]]:
            self._check_key(key)
            self._check_value(new)
            if values.get(key, None) != expected:
                return False, []
            values[key] = new
            return True, [key]

        return await self._apply(op_id, fn)

    async def increment(self, op_id: str | None, key: str, n: int | float = 1) -> int | float:
        def fn(values: dict) -> tuple[Any, list[str]]:
            self._check_key(key)
            cur = values.get(key, 0)
            if not isinstance(cur, (int, float)) or isinstance(cur, bool) or not isinstance(n, (int, float)):
                raise InvalidInput(f"increment needs numbers; {key!r} holds {type(cur).__name__}")
            values[key] = cur + n
            return values[key], [key]

        return await self._apply(op_id, fn)

    async def append(self, op_id: str | None, key: str, item: Any) -> int:
        def fn(values: dict) -> tuple[Any, list[str]]:
            self._check_key(key)
            self._check_value(item)
            cur = values.get(key, [])
            if not isinstance(cur, list):
                raise InvalidInput(f"append needs a list; {key!r} holds {type(cur).__name__}")
            values[key] = [*cur, item]
            return len(values[key]), [key]

        return await self._apply(op_id, fn)

    async def restore(self, op_id: str | None, values: dict[str, Any]) -> int:
        """Replace all values with ``values`` (a checkpoint's copy); returns how many keys
        changed. The revision still grows: watchers see the keys that changed (None: deleted)."""
        def fn(current: dict) -> tuple[Any, list[str]]:
            if not isinstance(values, dict):
                raise InvalidInput("restore takes the dict of values a checkpoint recorded")
            for k in values:
                self._check_key(k)
            self._check_value(values)
            changed = [k for k in {*current, *values} if current.get(k, _MISSING) != values.get(k, _MISSING)]
            current.clear()
            current.update(values)
            return len(changed), changed

        return await self._apply(op_id, fn)

    @staticmethod
    def _check_key(key: Any) -> None:
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"shared-state keys are non-empty strings, got {key!r}")

    # -- reads ------------------------------------------------------------------------
    async def get(self, key: str, default: Any = None) -> Any:
        await self._load()
        return self.values.get(key, default)

    async def snapshot(self) -> dict[str, Any]:
        await self._load()
        return {"values": dict(self.values), "revision": self.revision}

    async def watch(self, keys: list[str] | None, after: int | None) -> AsyncIterator[dict[str, Any]]:
        """Yield ``{"revision": v, "changes": {key: value}}`` for each change after ``after``."""
        await self._load()
        seen = self.revision if after is None else after
        wanted = set(keys) if keys else None
        while True:
            pending = [(v, ch) for v, ch in self._changes if v > seen]
            if not pending:
                async with self._changed:
                    await self._changed.wait_for(lambda after=seen: bool(self._changes) and self._changes[-1][0] > after)
                continue
            for v, ch in pending:
                seen = v
                picked = {k: val for k, val in ch.items() if wanted is None or k in wanted}
                if picked:
                    yield {"revision": v, "changes": picked}
