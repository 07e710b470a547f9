"""SharedStateActor: a thin Ray shell over :class:`repertory.shared_state_core.SharedStateCore`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from repertory.config import Settings
from repertory.shared.core import SharedStateCore

__all__ = ["SharedStateActor", "shared_state_actor_name"]


def shared_state_actor_name(state_id: str) -> str:
    return f"shared:{state_id}"


class SharedStateActor:
    """One shared state; restarted by Ray and reloaded from the store."""

    def __init__(self, settings: Settings, state_id: str) -> None:
        from repertory.logs import configure_logging

        configure_logging()
        from .store import open_actor_store

        store = open_actor_store(settings)
        self._core = SharedStateCore(store, state_id)

    async def mutate(self, op_id: str, op: str, *args: Any) -> Any:
        return await self._core.mutate(op_id, op, *args)

    async def get(self, key: str, default: Any = None) -> Any:
        return await self._core.get(key, default)

    async def snapshot(self) -> dict[str, Any]:
        return await self._core.snapshot()

    async def watch(self, keys: list[str] | None, after: int | None) -> AsyncIterator[dict[str, Any]]:
        async for change in self._core.watch(keys, after):
            yield change
