"""Agents in the host's own process (``agent_placement="host"``): no Ray hop per turn.

The agent's AgentActors still exist (``Runtime.ensure_agent`` starts them, as for the default
placement): they hold the definition, which a host fetches once per agent the first time one
of its sessions needs it, and they serve calls from the driver (``Runtime.run_agent``); they
import litellm only if such a call comes (AgentActor's ``runs_turns``). The
host then runs the agent's turns itself, as the local runtime does: a turn costs the hop from
the caller to the host and nothing more. What that trades away is isolation: the model client
and the tools share the host's process and event loop (sync tools run in threads, as in an
AgentActor), so a tool that crashes the process or starves the loop takes down the host and
the sessions resident on it, which the host's restart then reactivates from the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from repertory.agents.agent import AgentCore, Step, TurnOutput
from repertory.agents.prompt_cache import LINEAGE_BYTES
from repertory.memory.stores import MemoryStores
from repertory.state.prompt import Prompt, in_process

from .agent import agent_core
from .agent_pool import RayAgentPool
from .memory import ray_memory_store
from .names import ActorNames

__all__ = ["InHostAgentPool"]


class InHostAgentPool:
    """Agent cores by agent key, in this process; definitions fetched from the agents' actors."""

    def __init__(self, names: ActorNames, prompt_cache_bytes: int = LINEAGE_BYTES) -> None:
        self.names = names
        self._prompt_cache_bytes = prompt_cache_bytes  # Settings.prompt_cache_bytes
        self._remote = RayAgentPool(names)
        self._memory_stores = MemoryStores(lambda spec: ray_memory_store(spec, names))
        self._cores: dict[str, AgentCore] = {}
        self._loading: dict[str, asyncio.Future[AgentCore]] = {}

    async def _core(self, agent_key: str, replicas: int) -> AgentCore:
        core = self._cores.get(agent_key)
        if core is not None:
            return core
        fut = self._loading.get(agent_key)
        if fut is None:  # the first of many concurrent turns fetches it; the others wait for it
            fut = self._loading[agent_key] = asyncio.ensure_future(self._load(agent_key, replicas))
            fut.add_done_callback(lambda _: self._loading.pop(agent_key, None))
        return await asyncio.shield(fut)  # a cancelled turn does not cancel the others' fetch

    async def _load(self, agent_key: str, replicas: int) -> AgentCore:
        agent = await self._remote.definition(agent_key, replicas)
        core = self._cores[agent_key] = agent_core(agent, self.names, self._memory_stores,
                                                   prompt_cache_bytes=self._prompt_cache_bytes)
        return core

    async def run(self, agent_key: str, replicas: int, history: Prompt | bytes | list[dict], context: dict | None,
                  shared_state_id: str | None = None, memory: dict | None = None,
                  window: dict | None = None) -> TurnOutput:
        core = await self._core(agent_key, replicas)
        return await core.run(in_process(history, core.prompts, agent_key), context, shared_state_id,
                              memory, window)

    async def stream(self, agent_key: str, replicas: int, history: Prompt | bytes | list[dict], context: dict | None,
                     shared_state_id: str | None = None, memory: dict | None = None,
                     window: dict | None = None, *, deltas: bool = True, steps: bool = False,
                     resume: list[dict] | None = None) -> AsyncIterator[str | Step | TurnOutput]:
        core = await self._core(agent_key, replicas)
        async for item in core.stream(in_process(history, core.prompts, agent_key), context, shared_state_id,
                                      memory=memory, window=window,
                                      deltas=deltas, steps=steps, resume=resume):
            yield item
