"""SharedStateActor, a thin Ray shell over :class:`repertory.shared.core.SharedStateCore`, and
the backend that calls it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import ray

from repertory.config import Settings
from repertory.errors import RuntimeNotReady
from repertory.host import wire
from repertory.logs import configure_logging
from repertory.shared.core import SharedStateCore

from .calls import call_restartable, iterate_streaming
from .names import ActorNames
from .store import open_actor_store

__all__ = ["RaySharedStateBackend", "SharedStateActor"]

T = TypeVar("T")


class SharedStateActor:
    """One shared state; restarted by Ray and reloaded from the store."""

    def __init__(self, settings: Settings, names: ActorNames, state_id: str) -> None:
        configure_logging()
        self._core = SharedStateCore(open_actor_store(settings, names), state_id)

    # One method per SharedStateCore operation, each delegating (no dispatch by name).
    async def set(self, data: bytes) -> bytes:
        return await wire.serve(SharedStateCore.set, self._core, data)

    async def update(self, data: bytes) -> bytes:
        return await wire.serve(SharedStateCore.update, self._core, data)

    async def delete(self, data: bytes) -> bytes:
        return await wire.serve(SharedStateCore.delete, self._core, data)

    async def compare_and_set(self, data: bytes) -> bytes:
        return await wire.serve(SharedStateCore.compare_and_set, self._core, data)

    async def increment(self, data: bytes) -> bytes:
        return await wire.serve(SharedStateCore.increment, self._core, data)

    async def append(self, data: bytes) -> bytes:
        return await wire.serve(SharedStateCore.append, self._core, data)

    async def restore(self, data: bytes) -> bytes:
        return await wire.serve(SharedStateCore.restore, self._core, data)

    async def get(self, data: bytes) -> bytes:
        return await wire.serve(SharedStateCore.get, self._core, data)

    async def snapshot(self, data: bytes) -> bytes:
        return await wire.serve(SharedStateCore.snapshot, self._core, data)

    async def watch(self, keys: list[str] | None, after: int | None) -> AsyncIterator[dict[str, Any]]:
        async for change in self._core.watch(keys, after):
            yield change


class RaySharedStateBackend:
    """Calls a SharedStateActor, resending while Ray restarts it."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    @classmethod
    def lookup(cls, state_id: str, names: ActorNames) -> RaySharedStateBackend:
        try:
            return cls(ray.get_actor(names.shared_state(state_id), namespace=names.namespace))
        except ValueError:
            raise RuntimeNotReady(
                f"shared state {state_id!r} has no actor; create SharedState({state_id!r}) in a driver first"
            ) from None

    async def invoke(self, op: Callable[..., Awaitable[T]], *args: Any) -> T:
        # The actor has a method of the same name for each SharedStateCore operation.
        # Mutations carry operation ids, so a resent one is answered, not applied twice.
        method, data = getattr(self.handle, op.__name__), wire.encode(args)
        return wire.decode(await call_restartable(
            lambda: method.remote(data),
            lambda exc: RuntimeNotReady(f"the shared state actor did not come back: {exc}")))

    async def watch(self, keys: list[str] | None, after: int | None) -> AsyncIterator[dict[str, Any]]:
        async for change in iterate_streaming(self.handle.watch.options(num_returns="streaming").remote(keys, after)):
            yield change
