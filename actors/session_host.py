"""SessionHost: a thin Ray shell over :class:`repertory.host.HostCore`.

A pool of these named, restartable actors hosts the virtual session actors; a restarted host
starts empty and reactivates sessions from the store on their next message.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from repertory.config import Settings
from repertory.host.core import HostCore
from repertory.state.session_state import TurnReply, TurnRequest
from repertory.host.wire import pack, unpack

from .agent_pool import RayAgentPool

__all__ = ["SessionHost"]

_ALLOWED = {"history", "get_state", "replace", "delete", "exists", "op"}


class SessionHost:
    """Hosts many sessions (or one, when ``dedicated``)."""

    def __init__(self, settings: Settings, name: str) -> None:
        from repertory.logs import configure_logging

        configure_logging()
        from .store import open_actor_store

        store = open_actor_store(settings)
        # One host sweeps expired sessions out of the store (a no-op for Redis, which expires keys).
        self._core = HostCore(store, RayAgentPool(settings.namespace), settings, name=name,
                              sweep_store=name == "host-0")

    async def turn(self, req: bytes | TurnRequest) -> bytes | TurnReply:
        return pack(await self._core.turn(unpack(TurnRequest, req)))

    async def stream_turn(self, req: bytes | TurnRequest) -> AsyncIterator[str | bytes | TurnReply]:
        async for item in self._core.stream_turn(unpack(TurnRequest, req)):
            yield item if isinstance(item, str) else pack(item)

    async def call(self, method: str, *args: Any) -> Any:
        if method not in _ALLOWED:
            raise ValueError(f"unknown host operation {method!r}")
        return await getattr(self._core, method)(*args)

    async def stats(self) -> dict[str, Any]:
        return {**self._core.stats(), "pid": os.getpid()}

    async def passivate_all(self) -> int:
        return self._core.passivate_idle(0.0)

    async def ping(self) -> bool:
        await asyncio.sleep(0)
        return True
