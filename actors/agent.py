"""AgentActor: a thin Ray shell over :class:`repertory.agents.agent.AgentCore`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from repertory.agents.agent import Agent, AgentCore
from repertory.agents.model_client import preload_litellm
from repertory.host import wire
from repertory.logs import configure_logging

from .names import ActorNames
from .shared_state import RaySharedStateBackend

__all__ = ["AgentActor"]


class AgentActor:
    """Serves one agent definition; many calls at once (async actor)."""

    def __init__(self, agent: Agent, names: ActorNames) -> None:
        configure_logging()
        self._core = AgentCore(agent, shared_state=lambda state_id: RaySharedStateBackend.lookup(state_id, names))
        preload_litellm(agent.model)

    async def run(self, history: bytes | list[dict], context: dict | None,
                  shared_state_id: str | None = None, memory: bytes | None = None) -> bytes:
        spec = None if memory is None else wire.decode(memory)  # plain data: msgpack, never pickle
        return wire.encode(await self._core.run(history, context, shared_state_id, spec))

    async def stream(self, history: bytes | list[dict], context: dict | None,
                     shared_state_id: str | None = None, memory: bytes | None = None) -> AsyncIterator[str | bytes]:
        spec = None if memory is None else wire.decode(memory)
        async for item in self._core.stream(history, context, shared_state_id, memory=spec):
            yield item if isinstance(item, str) else wire.encode(item)

    async def ping(self) -> str:
        return self._core.agent.name
