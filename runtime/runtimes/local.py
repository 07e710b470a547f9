"""The local runtime: hosts and agents in this process, without Ray.

For unit tests, notebooks and small scripts. It runs the same
:class:`~repertory.host.core.HostCore` and :class:`~repertory.agents.agent.AgentCore` as the
Ray runtime, and every call crosses :mod:`repertory.host.wire` as it would cross Ray (as Ray
Serve's local testing mode does), so a handle never holds a host's live objects and a value
that cannot reach a Ray host cannot reach a local one either. All work runs on one loop, the
sync portal's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from repertory._sync import aiter_on_portal, on_portal
from repertory.agents.agent import Agent, AgentCore, Step, TurnOutput
from repertory.agents.model_client import preload_litellm
from repertory.agents.prompt_cache import LINEAGE_BYTES
from repertory.config import Settings
from repertory.errors import AgentError
from repertory.host import wire
from repertory.host.api import TurnReply, TurnRequest
from repertory.host.chains import ChainResult, decode_results, serve_chains
from repertory.host.metrics import PrometheusMetrics, registry
from repertory.host.core import HostCore
from repertory.ids import SessionRef
from repertory.state.prompt import Prompt, in_process
from repertory.runtimes.base import Runtime
from repertory.shared.core import SharedStateCore

if TYPE_CHECKING:
    from repertory.stores.base import Store

__all__ = ["LocalAgentPool", "LocalRuntime", "LocalSharedStateBackend"]

T = TypeVar("T")


class LocalAgentPool:
    """Agent cores in this process, by agent key."""

    def __init__(self, shared_state: Callable[[str], Any] | None = None,
                 memory_stores: Callable[[dict[str, Any]], Any] | None = None,
                 prompt_cache_bytes: int = LINEAGE_BYTES) -> None:
        self.cores: dict[str, AgentCore] = {}
        self._shared_state = shared_state
        self._memory_stores = memory_stores
        self._prompt_cache_bytes = prompt_cache_bytes  # Settings.prompt_cache_bytes

    def add(self, agent: Agent) -> None:
        if agent.key not in self.cores:
            self.cores[agent.key] = AgentCore(agent, shared_state=self._shared_state,
                                              memory_stores=self._memory_stores,
                                              prompt_cache_bytes=self._prompt_cache_bytes)
            preload_litellm(agent.model)

    def _core(self, key: str) -> AgentCore:
        try:
            return self.cores[key]
        except KeyError:
            raise AgentError(f"agent {key!r} is not deployed on this runtime") from None

    async def run(self, agent_key: str, replicas: int, history: Prompt | bytes | list[dict], context: dict | None,
                  shared_state_id: str | None = None, memory: dict | None = None,
                  window: dict | None = None) -> TurnOutput:
        core = self._core(agent_key)
        return await core.run(in_process(history, core.prompts, agent_key), context, shared_state_id,
                              memory, window)

    def stream(self, agent_key: str, replicas: int, history: Prompt | bytes | list[dict], context: dict | None,
               shared_state_id: str | None = None, memory: dict | None = None,
               window: dict | None = None, *, deltas: bool = True, steps: bool = False,
               resume: list[dict] | None = None) -> AsyncIterator[str | Step | TurnOutput]:
        core = self._core(agent_key)
        return core.stream(in_process(history, core.prompts, agent_key), context, shared_state_id,
                           memory=memory, window=window,
                                            deltas=deltas, steps=steps, resume=resume)


class LocalSharedStateBackend:
    """A shared state's core in this process, driven on the portal loop through the wire codec."""

    def __init__(self, core: SharedStateCore) -> None:
        self.core = core

    async def invoke(self, op: Callable[..., Awaitable[T]], *args: Any) -> T:
        return wire.decode(await on_portal(wire.serve, op, self.core, wire.encode(args)))

    async def watch(self, keys: list[str] | None, after: int | None) -> AsyncIterator[dict[str, Any]]:
        async for change in aiter_on_portal(self.core.watch(keys, after)):
            yield wire.decode(wire.encode(change))


class LocalRuntime(Runtime):
    """Hosts and agents in this process; see the module docstring."""

    agents_in_process = True

    def __init__(self, settings: Settings) -> None:
        from repertory._sync import call_in_portal

        self.settings = settings
        self.agents = LocalAgentPool(self.shared_state, self.memory_store, settings.prompt_cache_bytes)
        # Stores are loop-bound: open it on the portal's thread, where every call runs.
        self.store: Store = call_in_portal(settings.open_store)
        # Prometheus metrics of this runtime's hosts, in its own registry (the server's /metrics).
        self.metrics_registry = registry()
        self.host = HostCore(self.store, self.agents, settings, name="local", sweep_store=True,
                             metrics=PrometheusMetrics("local", self.metrics_registry))
        self._dedicated: dict[str, HostCore] = {}
        self._shared: dict[str, LocalSharedStateBackend] = {}

    def _core(self, ref: SessionRef) -> HostCore:
        if ref.placement != "dedicated":
            return self.host
        core = self._dedicated.get(ref.key)
        if core is None:
            # One label for every dedicated host: a label per session would grow without bound.
            core = self._dedicated[ref.key] = HostCore(self.store, self.agents, self.settings,
                                                       name=f"dedicated:{ref.key}",
                                                       metrics=PrometheusMetrics("dedicated", self.metrics_registry))
        return core

    async def invoke(self, ref: SessionRef, op: Callable[..., Awaitable[T]], *args: Any) -> T:
        data = wire.encode(args)  # what cannot cross to a Ray host fails here, in the caller
        return wire.decode(await on_portal(wire.serve, op, self._core(ref), data))

    def slice_of(self, ref: SessionRef) -> Hashable | None:
        return "local" if ref.placement != "dedicated" else None

    async def run_chains(self, where: Hashable, chains: list[list[TurnRequest]],
                         timeout: float | None) -> list[ChainResult]:
        data = wire.encode([chains, timeout])
        return decode_results(await on_portal(serve_chains, self.host, data))

    async def stream_turn(self, req: TurnRequest) -> AsyncIterator[str | TurnReply]:
        req = wire.decode(wire.encode(req))
        async for item in aiter_on_portal(self._core(req.ref).stream_turn(req)):
            yield wire.decode(wire.encode(item))

    def ensure_agent(self, agent: Agent) -> None:
        self.agents.add(agent)

    async def run_agent(self, agent: Agent, messages: list[dict], context: dict | None = None,
                        shared_state_id: str | None = None) -> TurnOutput:
        self.ensure_agent(agent)
        return await on_portal(self.agents.run, agent.key, 1, messages, context, shared_state_id)

    def shared_state(self, state_id: str) -> LocalSharedStateBackend:
        backend = self._shared.get(state_id)
        if backend is None:
            backend = self._shared[state_id] = LocalSharedStateBackend(SharedStateCore(self.store, state_id))
        return backend

    def admin_store(self) -> Store:
        return self.store

    def cores(self) -> list[HostCore]:
        """This runtime's hosts: the shared one and the dedicated ones."""
        return [self.host, *self._dedicated.values()]

    def stats(self) -> list[dict[str, Any]]:
        return [c.stats() for c in self.cores()]

    def shutdown(self) -> None:
        from repertory._sync import run_sync

        async def close() -> None:
            await self.host.close()
            for c in self._dedicated.values():
                await c.close()
            await self.store.close()

        run_sync(close)
        for core in self.agents.cores.values():
            core.close()
        self.close_memory_stores()
