"""AgentActor: a thin Ray shell over :class:`repertory.agents.agent.AgentCore`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog

from repertory.agents.agent import Agent, AgentCore
from repertory.agents.model_client import preload_litellm
from repertory.agents.prompt_cache import LINEAGE_BYTES
from repertory.errors import TurnInterrupted
from repertory.host import wire
from repertory.host.envelope import serve_envelope
from repertory.logs import configure_logging
from repertory.memory.stores import MemoryStores

from .memory import ray_memory_store
from .names import ActorNames
from .shared_state import RaySharedStateBackend

__all__ = ["AgentActor", "agent_core"]


def agent_core(agent: Agent, names: ActorNames, memory_stores: MemoryStores, *, preload: bool = True,
               prompt_cache_bytes: int = LINEAGE_BYTES) -> AgentCore:
    """An agent's core in a process of this runtime (an AgentActor, or a host running its agents
    itself): shared states reached by actor name, memory through ``memory_stores``. ``preload``
    starts litellm's import on a thread, since it takes seconds; without it, the first model
    call imports it. ``prompt_cache_bytes``: Settings.prompt_cache_bytes."""
    if preload:
        preload_litellm(agent.model)
    return AgentCore(agent, shared_state=lambda state_id: RaySharedStateBackend.lookup(state_id, names),
                     memory_stores=memory_stores, prompt_cache_bytes=prompt_cache_bytes)


class AgentActor:
    """Serves one agent definition; many calls at once (async actor).

    ``runs_turns``: False when the hosts run the agent's turns themselves (``agent_placement=
    "host"``); the replica then mostly hands out the definition, and does not import litellm
    (~3 s of CPU and ~200 MB) unless a call comes (``Runtime.run_agent``)."""

    def __init__(self, agent: Agent, names: ActorNames, runs_turns: bool = True,
                 prompt_cache_bytes: int = LINEAGE_BYTES) -> None:
        configure_logging()
        self._core = agent_core(agent, names, MemoryStores(lambda spec: ray_memory_store(spec, names)),
                                preload=runs_turns, prompt_cache_bytes=prompt_cache_bytes)
        self._running: dict[str, asyncio.Task] = {}  # enveloped calls by call id, to cancel one
        self._cancelled: set[str] = set()

    # One bytes argument per call, not four: Ray serializes each argument on its own (~15 µs of
    # caller CPU each, measured), and msgpack keeps it plain data, never pickle.
    async def run(self, call: bytes) -> bytes:
        """``call``: wire bytes of ``[history, context, shared_state_id, memory, window, logged]``,
        where ``logged`` is what this call's log lines carry (the caller's session and turn ids)."""
        history, context, shared_state_id, memory, window, logged = wire.decode(call)
        with structlog.contextvars.bound_contextvars(**logged):
            return wire.encode(await self._core.run(history, context, shared_state_id, memory, window))

    async def run_many(self, calls: bytes) -> bytes:
        """An envelope of ``[call id, call]`` for :meth:`run`, run concurrently; one outcome
        each (repertory.host.envelope)."""
        return await serve_envelope(self._run_enveloped, calls)

    async def _run_enveloped(self, item: list) -> bytes:
        call_id, call = item
        self._running[call_id] = asyncio.current_task()
        try:
            return await self.run(call)
        except asyncio.CancelledError:
            if call_id not in self._cancelled:  # the whole envelope is cancelled
                raise
            raise TurnInterrupted(f"agent call {call_id} was cancelled by its caller") from None
        finally:
            self._running.pop(call_id, None)
            self._cancelled.discard(call_id)

    async def cancel(self, call_ids: bytes) -> None:
        """Stop enveloped calls whose callers were cancelled (a busy policy interrupted the turn)."""
        for call_id in wire.decode(call_ids):
            task = self._running.get(call_id)
            if task is not None:
                self._cancelled.add(call_id)
                task.cancel()

    async def stream(self, call: bytes) -> AsyncIterator[str | bytes]:
        """As :meth:`run` (plus ``deltas, steps, resume``), yielding text chunks, the encoded
        steps and then the encoded :class:`TurnOutput`."""
        history, context, shared_state_id, memory, window, deltas, steps, resume, logged = wire.decode(call)
        structlog.contextvars.bind_contextvars(**logged)  # each streamed call runs in a task of its own
        async for item in self._core.stream(history, context, shared_state_id, memory=memory, window=window,
                                            deltas=deltas, steps=steps, resume=resume):
            yield item if isinstance(item, str) else wire.encode(item)

    async def definition(self) -> Agent:
        """This replica's agent definition, for hosts that run the agent in their own process
        (``agent_placement="host"``): it crosses as it came, through Ray's serializer."""
        return self._core.agent

    async def ping(self) -> str:
        return self._core.agent.name

    async def node(self) -> str:
        """The Ray node this replica runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()
