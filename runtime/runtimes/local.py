"""Runtimes: where session hosts and agents live.

:class:`Runtime` is what a :class:`~repertory.Session` handle talks to. Two implementations
share the same :class:`~repertory.host.HostCore` and :class:`~repertory.agent.AgentCore`:
:class:`LocalRuntime` (in this process, no Ray: unit tests, notebooks, small scripts) and
:class:`~repertory.ray_runtime.RayRuntime` (host actors and agent actors on Ray).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from repertory.agents.agent import Agent, AgentCore, TurnOutput
from repertory.config import Settings
from repertory.errors import AgentError
from repertory.host.core import HostCore
from repertory.state.session_state import TurnReply, TurnRequest

if TYPE_CHECKING:
    from repertory.stores.base import Store

__all__ = ["LocalAgentPool", "LocalRuntime", "Runtime"]


class Runtime(abc.ABC):
    """The operations a session handle needs, whatever carries them."""

    settings: Settings

    @abc.abstractmethod
    def ensure_agent(self, agent: Agent) -> None:
        """Make ``agent`` reachable by the hosts (idempotent)."""

    @abc.abstractmethod
    async def turn(self, req: TurnRequest, placement: str = "shared") -> TurnReply:
        """Run one turn on the session's host; raises RepertoryError subclasses."""

    @abc.abstractmethod
    def stream_turn(self, req: TurnRequest, placement: str = "shared") -> AsyncIterator[str | TurnReply]:
        """Run one turn, yielding deltas, then the TurnReply."""

    @abc.abstractmethod
    async def call(self, key: str, placement: str, method: str, *args: Any) -> Any:
        """Call a HostCore state operation (history, get_state, replace, delete, exists)."""

    @abc.abstractmethod
    async def run_agent(self, agent: Agent, messages: list[dict], context: dict | None = None,
                        shared_state_id: str | None = None) -> TurnOutput:
        """One agent call outside any session (workflow tasks, batch jobs)."""

    @abc.abstractmethod
    def shared_state(self, state_id: str) -> Any:
        """The backend of a shared state: ``mutate``, ``get``, ``snapshot``, ``watch``."""

    @abc.abstractmethod
    def admin_store(self) -> Store:
        """A store handle for listing and cleanup; use it on the sync portal's loop."""

    @abc.abstractmethod
    def stats(self) -> list[dict[str, Any]]:
        """Per-host counters (resident sessions, activations, passivations)."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop hosts and agents; state stays in the store."""


class LocalAgentPool:
    """Agent cores in this process, by agent key."""

    def __init__(self) -> None:
        self.cores: dict[str, AgentCore] = {}

    def add(self, agent: Agent) -> None:
        if agent.key not in self.cores:
            core = self.cores[agent.key] = AgentCore(agent)
            from repertory.agents.model_client import LiteLLMClient, load_litellm

            if isinstance(core.client, LiteLLMClient):
                # litellm takes seconds to import: not on the loop that serves every session.
                import threading

                threading.Thread(target=load_litellm, daemon=True).start()

    def _core(self, key: str) -> AgentCore:
        try:
            return self.cores[key]
        except KeyError:
            raise AgentError(f"agent {key!r} is not deployed on this runtime") from None

    async def run(self, agent_key: str, replicas: int, history: bytes | list[dict], context: dict | None,
                  shared_state_id: str | None = None) -> TurnOutput:
        return await self._core(agent_key).run(history, context, shared_state_id)

    def stream(self, agent_key: str, replicas: int, history: bytes | list[dict], context: dict | None,
               shared_state_id: str | None = None) -> AsyncIterator[str | TurnOutput]:
        return self._core(agent_key).stream(history, context, shared_state_id)


class LocalSharedStateBackend:
    """A shared state's core in this process, driven on the runtime's loop."""

    def __init__(self, core: Any, runtime: LocalRuntime) -> None:
        self.core = core
        self.runtime = runtime

    async def mutate(self, op_id: str, op: str, *args: Any) -> Any:
        return await self.runtime._on_loop(self.core.mutate, op_id, op, *args)

    async def get(self, key: str, default: Any = None) -> Any:
        return await self.runtime._on_loop(self.core.get, key, default)

    async def snapshot(self) -> dict[str, Any]:
        return await self.runtime._on_loop(self.core.snapshot)

    async def watch(self, keys: list[str] | None, after: int | None) -> AsyncIterator[dict[str, Any]]:
        agen = self.core.watch(keys, after)
        try:
            while True:
                try:
                    yield await self.runtime._on_loop(agen.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            await self.runtime._on_loop(agen.aclose)


class LocalRuntime(Runtime):
    """Hosts and agents in this process. All work runs on one loop (the sync portal's)."""

    def __init__(self, settings: Settings) -> None:
        from repertory.stores.factory import open_store

        from repertory._sync import call_in_portal

        self.settings = settings
        self.agents = LocalAgentPool()
        self._loop: asyncio.AbstractEventLoop = call_in_portal(asyncio.get_running_loop)
        self.store = open_store(settings.store)
        self.host = HostCore(self.store, self.agents, settings, name="local", sweep_store=True)
        self._dedicated: dict[str, HostCore] = {}
        self._shared: dict[str, LocalSharedStateBackend] = {}

    def _core(self, key: str, placement: str) -> HostCore:
        if placement != "dedicated":
            return self.host
        core = self._dedicated.get(key)
        if core is None:
            core = self._dedicated[key] = HostCore(self.store, self.agents, self.settings, name=f"dedicated:{key}")
        return core

    async def _on_loop(self, coro_fn, *args):
        # HostCore's locks and the store's futures belong to one loop: hop onto it.
        if asyncio.get_running_loop() is self._loop:
            return await coro_fn(*args)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro_fn(*args), self._loop))

    def ensure_agent(self, agent: Agent) -> None:
        self.agents.add(agent)

    async def turn(self, req: TurnRequest, placement: str = "shared") -> TurnReply:
        return await self._on_loop(self._core(req.key, placement).turn, req)

    async def stream_turn(self, req: TurnRequest, placement: str = "shared") -> AsyncIterator[str | TurnReply]:
        agen = self._core(req.key, placement).stream_turn(req)
        try:
            while True:
                try:
                    item = await self._on_loop(agen.__anext__)
                except StopAsyncIteration:
                    return
                yield item
        finally:
            await self._on_loop(agen.aclose)

    async def call(self, key: str, placement: str, method: str, *args: Any) -> Any:
        return await self._on_loop(getattr(self._core(key, placement), method), *args)

    def admin_store(self) -> Store:
        return self.store

    async def run_agent(self, agent: Agent, messages: list[dict], context: dict | None = None,
                        shared_state_id: str | None = None) -> TurnOutput:
        self.ensure_agent(agent)
        return await self._on_loop(self.agents.run, agent.key, 1, messages, context, shared_state_id)

    def shared_state(self, state_id: str) -> Any:
        backend = self._shared.get(state_id)
        if backend is None:
            from repertory.shared.core import SharedStateCore

            backend = self._shared[state_id] = LocalSharedStateBackend(SharedStateCore(self.store, state_id), self)
        return backend

    def stats(self) -> list[dict[str, Any]]:
        return [self.host.stats()] + [c.stats() for c in self._dedicated.values()]

    def shutdown(self) -> None:
        async def close() -> None:
            await self.host.close()
            for c in self._dedicated.values():
                await c.close()
            await self.store.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=30)
