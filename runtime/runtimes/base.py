"""What a runtime is: where session hosts and agents live, behind the typed host boundary.

:class:`Runtime` implements :class:`~repertory.host.api.HostAPI` once for every runtime: each
operation routes to the host that owns the session through :meth:`Runtime.invoke`, which a
runtime implements (in this process, or on a Ray actor). The operation is always the typed
:class:`~repertory.host.core.HostCore` method itself, never a name chosen from a string.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from repertory.agents.agent import Agent, TurnOutput
from repertory.config import Settings
from repertory.host.api import CheckpointKind, TurnReply, TurnRequest
from repertory.host.chains import ChainResult
from repertory.host.core import HostCore
from repertory.host.stats import HostStats
from repertory.ids import SessionRef
from repertory.memory.stores import MemoryStores

if TYPE_CHECKING:
    from repertory.memory.stores import MemoryStore
    from repertory.stores.base import Store

__all__ = ["Runtime", "SharedStateBackend", "new_op_id"]

T = TypeVar("T")


def new_op_id() -> str:
    """A fresh operation id (random, like a turn id)."""
    return uuid.uuid4().hex


class SharedStateBackend(Protocol):
    """Where a shared state's core runs: ``invoke(SharedStateCore.method, *args)`` and ``watch``."""

    async def invoke(self, op: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    def watch(self, keys: list[str] | None, after: int | None) -> AsyncIterator[dict[str, Any]]: ...


class Runtime(abc.ABC):
    """The host boundary as a session handle sees it, whatever carries the calls."""

    settings: Settings
    agents_in_process: bool = False  # True where agent cores run in this process (local runtime)

    # -- what a runtime implements --------------------------------------------------------
    @abc.abstractmethod
    async def invoke(self, ref: SessionRef, op: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``op(host, *args)`` on the host of ``ref``; arguments and result cross the wire codec."""

    @abc.abstractmethod
    def stream_turn(self, req: TurnRequest) -> AsyncIterator[str | TurnReply]:
        """Run one turn, yielding deltas, then the TurnReply."""

    @abc.abstractmethod
    def ensure_agent(self, agent: Agent) -> None:
        """Make ``agent`` reachable by the hosts (idempotent)."""

    @abc.abstractmethod
    async def run_agent(self, agent: Agent, messages: list[dict], context: dict | None = None,
                        shared_state_id: str | None = None) -> TurnOutput:
        """One agent call outside any session (workflow tasks, batch jobs)."""

    @abc.abstractmethod
    def shared_state(self, state_id: str) -> SharedStateBackend:
        """The backend of a shared state, created if it has none yet."""

    def memory_store(self, spec: dict[str, Any]) -> MemoryStore:
        """The long-term memory store a memory spec names, opened once per runtime (in this
        process here; on Ray, a chromadb folder is reached through its memory actor)."""
        stores = self.__dict__.get("_memory_stores")
        if stores is None:
            stores = self.__dict__["_memory_stores"] = MemoryStores()
        return stores(spec)

    def close_memory_stores(self) -> None:
        """Close the memory stores :meth:`memory_store` opened."""
        stores = self.__dict__.pop("_memory_stores", None)
        if stores is not None:
            stores.close()

    @abc.abstractmethod
    def admin_store(self) -> Store:
        """A store handle for listing and cleanup; use it on the sync portal's loop."""

    @abc.abstractmethod
    def stats(self) -> list[dict[str, Any]]:
        """Per-host counters (resident sessions, activations, passivations)."""

    def slice_of(self, ref: SessionRef) -> Hashable | None:
        """Where the turn chains of session ``ref`` run (:mod:`repertory.host.chains`): chains
        with the same answer can share one :meth:`run_chains` call. None: send its turns one
        call each (a runtime without slices, a dedicated session)."""
        return None

    async def run_chains(self, where: Hashable, chains: list[list[TurnRequest]],
                         timeout: float | None) -> list[ChainResult]:
        """Run turn chains of sessions that :meth:`slice_of` places at ``where`` in one call:
        each chain's turns in order, all chains at once, ``timeout`` seconds per chain; one
        result per chain. Raises only if the call itself failed (its host died, say): then
        any of its turns may or may not have run, and resending them (same turn ids) is safe."""
        raise NotImplementedError(f"{type(self).__name__} runs no turn chains (slice_of answers None)")

    def host_of(self, key: str) -> str:
        """The name of the host that owns the (pooled) session stored under ``key``."""
        return "local"

    async def astats(self) -> list[HostStats]:
        """Per-host counters (:class:`~repertory.host.stats.HostStats`: resident sessions,
        activations, passivations, turns, turn and store latency percentiles, latency over time)."""
        return [HostStats.from_dict(d) for d in self.stats()]

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop hosts and agents; state stays in the store."""

    # -- the HostAPI, once for every runtime ------------------------------------------------
    async def turn(self, req: TurnRequest) -> TurnReply:
        return await self.invoke(req.ref, HostCore.turn, req)

    async def get_history(self, ref: SessionRef) -> list[dict[str, Any]]:
        return await self.invoke(ref, HostCore.get_history, ref)

    async def get_state(self, ref: SessionRef) -> dict[str, Any]:
        return await self.invoke(ref, HostCore.get_state, ref)

    async def read_fields(self, ref: SessionRef) -> dict[str, Any]:
        return await self.invoke(ref, HostCore.read_fields, ref)

    # Each writing operation gets its op_id here, once per call, before the first send: a
    # runtime that resends the call (its host died) resends the same id, and the host answers
    # an operation it already applied instead of applying it again.
    async def set_history(self, ref: SessionRef, messages: list[dict[str, Any]], op_id: str | None = None) -> int:
        return await self.invoke(ref, HostCore.set_history, ref, messages, op_id or new_op_id())

    async def set_state(self, ref: SessionRef, state: dict[str, Any], op_id: str | None = None) -> int:
        return await self.invoke(ref, HostCore.set_state, ref, state, op_id or new_op_id())

    async def update_fields(self, ref: SessionRef, field: str, updates: dict[str, Any],
                            replace: bool = False, op_id: str | None = None) -> dict[str, Any]:
        return await self.invoke(ref, HostCore.update_fields, ref, field, updates, replace, op_id or new_op_id())

    async def update_item(self, ref: SessionRef, field: str, key: str, value: Any, mode: str,
                          op_id: str | None = None) -> Any:
        return await self.invoke(ref, HostCore.update_item, ref, field, key, value, mode, op_id or new_op_id())

    async def update_workflow(self, ref: SessionRef, workflow_id: str, tasks: dict[str, Any],
                              status: str | None = None, op_id: str | None = None) -> dict[str, Any]:
        return await self.invoke(ref, HostCore.update_workflow, ref, workflow_id, tasks, status,
                                 op_id or new_op_id())

    async def add_rating(self, ref: SessionRef, score: float, comment: str | None = None,
                         op_id: str | None = None) -> int:
        return await self.invoke(ref, HostCore.add_rating, ref, score, comment, op_id or new_op_id())

    async def set_ttl(self, ref: SessionRef, ttl: float | None, op_id: str | None = None) -> None:
        return await self.invoke(ref, HostCore.set_ttl, ref, ttl, op_id or new_op_id())

    async def create_checkpoint(self, ref: SessionRef, label: str, kind: CheckpointKind,
                                keep: int | None, op_id: str | None = None,
                                shared_state_id: str | None = None) -> dict[str, Any]:
        return await self.invoke(ref, HostCore.create_checkpoint, ref, label, kind, keep, op_id or new_op_id(),
                                 shared_state_id)

    async def restore_checkpoint(self, ref: SessionRef, checkpoint: int | str, kind: CheckpointKind,
                                 op_id: str | None = None) -> int:
        return await self.invoke(ref, HostCore.restore_checkpoint, ref, checkpoint, kind, op_id or new_op_id())

    async def list_checkpoints(self, ref: SessionRef, kind: CheckpointKind) -> list[dict[str, Any]]:
        return await self.invoke(ref, HostCore.list_checkpoints, ref, kind)

    async def checkpoint_snapshot(self, ref: SessionRef, checkpoint: int | str,
                                  kind: CheckpointKind) -> dict[str, Any]:
        return await self.invoke(ref, HostCore.checkpoint_snapshot, ref, checkpoint, kind)

    async def pop_turn(self, ref: SessionRef, op_id: str | None = None) -> list[dict[str, Any]]:
        return await self.invoke(ref, HostCore.pop_turn, ref, op_id or new_op_id())

    async def truncate(self, ref: SessionRef, keep: int, op_id: str | None = None) -> list[dict[str, Any]]:
        return await self.invoke(ref, HostCore.truncate, ref, keep, op_id or new_op_id())

    async def edit_message(self, ref: SessionRef, index: int, content: str,
                           op_id: str | None = None) -> list[dict[str, Any]]:
        return await self.invoke(ref, HostCore.edit_message, ref, index, content, op_id or new_op_id())

    async def export_session(self, ref: SessionRef, with_checkpoints: bool) -> dict[str, Any]:
        return await self.invoke(ref, HostCore.export_session, ref, with_checkpoints)

    async def import_session(self, ref: SessionRef, doc: dict[str, Any], overwrite: bool,
                             op_id: str | None = None) -> int:
        return await self.invoke(ref, HostCore.import_session, ref, doc, overwrite, op_id or new_op_id())

    async def exists(self, ref: SessionRef) -> bool:
        return await self.invoke(ref, HostCore.exists, ref)

    async def delete(self, ref: SessionRef, updated_before: float | None = None, op_id: str | None = None) -> bool:
        return await self.invoke(ref, HostCore.delete, ref, updated_before, op_id or new_op_id())
