"""SessionHost: a thin Ray shell over :class:`repertory.host.core.HostCore`.

A pool of these named, restartable actors hosts the virtual session actors; a restarted host
starts empty and reactivates sessions from the store on their next message. It has one
method per :class:`~repertory.host.api.HostAPI` operation, each decoding its arguments,
awaiting the same-named HostCore method and encoding the result (as Ray Serve's replica
actor delegates to its implementation).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

from repertory.config import Settings
from repertory.errors import InvalidInput
from repertory.host import wire
from repertory.host.activation import Activation, Holder
from repertory.host.api import HostAPI
from repertory.host.chains import serve_chains
from repertory.host.core import HostCore
from repertory.host.envelope import serve_envelope
from repertory.host.metrics import RayMetrics
from repertory.logs import configure_logging

from .agent_pool import RayAgentPool
from .host_agents import InHostAgentPool
from .names import ActorNames
from .store import open_actor_store

__all__ = ["SessionHost"]

METRICS_SYNC_S = 5.0  # publish the host's counts this often, turns or not
METRICS_AFTER_TURNS_S = 1.0  # and after a turn at most this often (each publication costs ~10 µs)
# What an envelope may ask for: the HostAPI's calls (streams stay one Ray call each).
_OPS = frozenset(n for n in vars(HostAPI) if not n.startswith("_")) - {"stream_turn"}


def _activation(store: Any, settings: Settings, names: ActorNames, name: str) -> Activation | None:
    """Pooled hosts take activation leases (host.activation), named by their Ray actor name so
    that another host can send a call here; a dedicated host is its session's only host."""
    if not name.startswith("host-"):
        return None
    import ray

    holder = Holder(ray.get_runtime_context().gcs_address, names.host(int(name[len("host-"):])),
                    uuid.uuid4().hex[:12])
    return Activation(store, holder, settings.lease_ttl)


class SessionHost:
    """Hosts many sessions (or one, when dedicated)."""

    def __init__(self, settings: Settings, names: ActorNames, name: str, sweeps: bool = False) -> None:
        configure_logging()
        # One host sweeps expired sessions out of the store (a no-op for Redis, which expires keys).
        # Pooled hosts are labelled by name; dedicated ones share one label (one per session
        # would grow without bound).
        metrics = RayMetrics(name if name.startswith("host-") else "dedicated")
        store = open_actor_store(settings, names)
        agents = InHostAgentPool(names, settings.prompt_cache_bytes) if settings.agent_placement == "host" \
            else RayAgentPool(names, lineages=settings.prompt_cache_bytes > 0)
        self._core = HostCore(store, agents, settings, name=name, sweep_store=sweeps, metrics=metrics,
                              activation=_activation(store, settings, names, name),
                              metrics_every=METRICS_AFTER_TURNS_S)
        self._metrics_sync: asyncio.Task | None = None

    def _sync_metrics_soon(self) -> None:
        # Counts also move while no turn runs (passivation): publish them every few seconds.
        if self._metrics_sync is None:
            async def loop() -> None:
                while True:
                    await asyncio.sleep(METRICS_SYNC_S)
                    self._core.sync_metrics()

            self._metrics_sync = asyncio.get_running_loop().create_task(loop())

    async def turn(self, data: bytes) -> bytes:
        self._sync_metrics_soon()
        return await wire.serve(HostCore.turn, self._core, data)

    async def calls(self, data: bytes) -> bytes:
        """An envelope of ``[operation name, wire arguments]`` calls, run concurrently; one
        outcome each (repertory.host.envelope)."""
        self._sync_metrics_soon()
        return await serve_envelope(self._call, data)

    async def _call(self, call: list) -> bytes:
        name, data = call
        if name not in _OPS:
            raise InvalidInput(f"a host has no operation {name!r}; send one of {sorted(_OPS)}")
        return await wire.serve(getattr(HostCore, name), self._core, data)

    async def turn_chains(self, data: bytes) -> bytes:
        """A slice of turn chains, each session's turns in order (repertory.host.chains)."""
        self._sync_metrics_soon()
        return await serve_chains(self._core, data)

    async def stream_turn(self, data: bytes) -> AsyncIterator[str | bytes]:
        (req,) = wire.decode(data)
        async for item in self._core.stream_turn(req):
            yield item if isinstance(item, str) else wire.encode(item)

    async def get_history(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.get_history, self._core, data)

    async def get_state(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.get_state, self._core, data)

    async def read_fields(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.read_fields, self._core, data)

    async def set_history(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.set_history, self._core, data)

    async def set_state(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.set_state, self._core, data)

    async def update_fields(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.update_fields, self._core, data)

    async def update_item(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.update_item, self._core, data)

    async def update_workflow(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.update_workflow, self._core, data)

    async def add_rating(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.add_rating, self._core, data)

    async def set_ttl(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.set_ttl, self._core, data)

    async def create_checkpoint(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.create_checkpoint, self._core, data)

    async def restore_checkpoint(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.restore_checkpoint, self._core, data)

    async def list_checkpoints(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.list_checkpoints, self._core, data)

    async def checkpoint_snapshot(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.checkpoint_snapshot, self._core, data)

    async def pop_turn(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.pop_turn, self._core, data)

    async def truncate(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.truncate, self._core, data)

    async def edit_message(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.edit_message, self._core, data)

    async def export_session(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.export_session, self._core, data)

    async def import_session(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.import_session, self._core, data)

    async def exists(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.exists, self._core, data)

    async def delete(self, data: bytes) -> bytes:
        return await wire.serve(HostCore.delete, self._core, data)

    # -- operations on the host itself -------------------------------------------------
    async def stats(self) -> dict[str, Any]:
        import ray

        return {**self._core.stats(), "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    async def passivate_all(self) -> int:
        return self._core.passivate_idle(0.0)

    async def passivate_moved(self, index: int, hosts: int) -> int:
        return self._core.passivate_moved(index, hosts)

    async def ping(self) -> bool:
        self._sync_metrics_soon()
        await asyncio.sleep(0)
        return True
