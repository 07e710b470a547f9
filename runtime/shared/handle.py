"""``SharedState``: state that many sessions and agents share, in a SharedStateActor.

Every method has a sync form and an async one (``aget``, ``aset``, ...). Values are plain
data (what msgpack stores); anything else is refused with :class:`InvalidInput` before it is
sent. Each write is durable when it returns, and survives the actor's death and restarts.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from repertory._sync import iterate_sync, run_sync
from repertory.errors import InvalidInput
from repertory.ids import validate_session_id
from repertory.shared.core import SharedStateCore

__all__ = ["SharedState"]

T = TypeVar("T")


class SharedState:
    """A named, revisioned key-value map; ``SharedState()`` makes a new one, ``SharedState("id")`` opens one."""

    def __init__(self, state_id: str | None = None, *, runtime: Any = None, backend: Any = None) -> None:
        self.state_id = validate_session_id(state_id) if state_id is not None else f"shared-{uuid.uuid4().hex}"
        self._runtime = runtime
        self._backend_obj = backend

    def __reduce__(self):  # travels to actors by id only
        return (SharedState, (self.state_id,))

    def __repr__(self) -> str:
        return f"SharedState({self.state_id!r})"

    def _backend(self):
        if self._backend_obj is None:
            if self._runtime is None:
                from repertory.runtimes.current import get_runtime

                self._runtime = get_runtime()
            self._backend_obj = self._runtime.shared_state(self.state_id)
        return self._backend_obj

    async def _mutate(self, op: Callable[..., Awaitable[T]], *args: Any) -> T:
        # The id makes a resent call (after the actor died) apply once.
        return await self._backend().invoke(op, uuid.uuid4().hex, *args)

    # -- async ------------------------------------------------------------------------
    async def aget(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return await self._backend().invoke(SharedStateCore.get, key, default)

    async def aset(self, key: str, value: Any) -> None:
        await self._mutate(SharedStateCore.set, key, value)

    async def aupdate(self, mapping: dict[str, Any]) -> None:
        """Set several keys in one durable write."""
        await self._mutate(SharedStateCore.update, mapping)

    async def adelete(self, key: str) -> bool:
        return await self._mutate(SharedStateCore.delete, key)

    async def akeys(self) -> list[str]:
        return list((await self.asnapshot()).keys())

    async def asnapshot(self) -> dict[str, Any]:
        """A copy of all values."""
        return (await self._backend().invoke(SharedStateCore.snapshot))["values"]

    async def arevision(self) -> int:
        """The revision number; it grows by one with every change."""
        return (await self._backend().invoke(SharedStateCore.snapshot))["revision"]

    async def acompare_and_set(self, key: str, expected: Any, new: Any) -> bool:
        """Set ``key`` to ``new`` only if it holds ``expected`` (None: absent); True if it did."""
        return await self._mutate(SharedStateCore.compare_and_set, key, expected, new)

    async def aincrement(self, key: str, n: int | float = 1) -> int | float:
        """Add ``n`` to a number (0 if absent); returns the new value."""
        return await self._mutate(SharedStateCore.increment, key, n)

    async def aappend(self, key: str, item: Any) -> int:
        """Append to a list (created if absent); returns its new length."""
        return await self._mutate(SharedStateCore.append, key, item)

    async def awatch(self, keys: list[str] | None = None, *, after: int | None = None) -> AsyncIterator[dict]:
        """Changes as they happen: ``{"revision": v, "changes": {key: value}}`` (None: deleted)."""
        if keys is not None and not isinstance(keys, (list, tuple)):
            raise InvalidInput("watch takes a list of keys, or None for all")
        async for change in self._backend().watch(list(keys) if keys else None, after):
            yield change

    # -- sync -------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return run_sync(self.aget, key, default)

    def set(self, key: str, value: Any) -> None:
        run_sync(self.aset, key, value)

    def update(self, mapping: dict[str, Any]) -> None:
        run_sync(self.aupdate, mapping)

    def delete(self, key: str) -> bool:
        return run_sync(self.adelete, key)

    def keys(self) -> list[str]:
        return run_sync(self.akeys)

    def snapshot(self) -> dict[str, Any]:
        return run_sync(self.asnapshot)

    def revision(self) -> int:
        return run_sync(self.arevision)

    def compare_and_set(self, key: str, expected: Any, new: Any) -> bool:
        return run_sync(self.acompare_and_set, key, expected, new)

    def increment(self, key: str, n: int | float = 1) -> int | float:
        return run_sync(self.aincrement, key, n)

    def append(self, key: str, item: Any) -> int:
        return run_sync(self.aappend, key, item)

    def watch(self, keys: list[str] | None = None, *, after: int | None = None) -> Iterator[dict]:
        return iterate_sync(lambda: self.awatch(keys, after=after))
