"""AgentActor: a thin Ray shell over :class:`repertory.agent.AgentCore`."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

from repertory.agents.agent import Agent, AgentCore, TurnOutput
from repertory.agents.model_client import LiteLLMClient, load_litellm
from repertory.host.wire import pack

__all__ = ["AgentActor"]


class AgentActor:
    """Serves one agent definition; many calls at once (async actor)."""

    def __init__(self, agent: Agent, namespace: str) -> None:
        from repertory.logs import configure_logging
        from repertory.runtimes.ray import RaySharedStateBackend
        from repertory.shared.handle import SharedState

        configure_logging()

        def open_shared(state_id: str) -> SharedState:
            return SharedState(state_id, backend=RaySharedStateBackend.lookup(state_id, namespace))

        self._core = AgentCore(agent, shared_state=open_shared)
        if isinstance(self._core.client, LiteLLMClient):
            # litellm takes seconds to import: start now so the first turn does not pay it all.
            threading.Thread(target=load_litellm, daemon=True).start()

    async def run(self, history: bytes | list[dict], context: dict | None,
                  shared_state_id: str | None = None) -> bytes | TurnOutput:
        return pack(await self._core.run(history, context, shared_state_id))

    async def stream(self, history: bytes | list[dict], context: dict | None,
                     shared_state_id: str | None = None) -> AsyncIterator[str | bytes | TurnOutput]:
        async for item in self._core.stream(history, context, shared_state_id):
            yield item if isinstance(item, str) else pack(item)

    async def ping(self) -> str:
        return self._core.agent.name
