"""The Ray runtime: a pool of SessionHost actors and AgentActor groups.

All actor options live here, in one place. Hosts and agents are async actors with
``max_restarts=-1``: a dead one is restarted by Ray, and a host reactivates its sessions from
the store. A turn carries a turn id, so the handle can resend a turn whose host died without
the turn happening twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayTaskError

from repertory.agents.agent import Agent
from repertory.config import Settings
from repertory.errors import AgentError, RuntimeNotReady
from repertory.host.routing import host_index
from repertory.runtimes.local import Runtime
from repertory.state.session_state import TurnReply, TurnRequest
from repertory.host.wire import pack, unpack

__all__ = ["RayRuntime", "RaySharedStateBackend"]

_RETRYABLE = (ActorDiedError, ActorUnavailableError)
_RETRY_FOR = 60.0  # seconds a handle keeps resending to a restarting host


def _unwrap(exc: RayTaskError) -> BaseException:
    from repertory.actors.calls import unwrap_ray_error

    return unwrap_ray_error(exc)


class RayRuntime(Runtime):
    """Sessions on host actors; see the module docstring."""

    def __init__(self, settings: Settings, address: str | None = None, *, detached: bool = False) -> None:
        self.settings = settings
        self.detached = detached
        self.started_ray = False
        if not ray.is_initialized():
            os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
            kwargs: dict[str, Any] = {"namespace": settings.namespace, "logging_level": logging.WARNING,
                                      "log_to_driver": os.environ.get("REPERTORY_RAY_LOGS") == "1"}
            if address is None:
                kwargs.update(include_dashboard=False, configure_logging=True)
                # A private local instance: Ray's notice about its token set-up is noise here.
                logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
            ray.init(address=address, **kwargs)
            self.started_ray = address is None
        from repertory.actors import AgentActor, SessionHost, StoreActor

        self._opts = {"namespace": settings.namespace, "max_restarts": -1, "num_cpus": 0,
                      "get_if_exists": True, "lifetime": "detached" if detached else None}
        self._store_actor = None
        if settings.store_access == "actor":
            # Keep the handle: a non-detached actor dies with its driver-side references.
            self._store_actor = store_actor = ray.remote(StoreActor).options(name="store", max_concurrency=10_000,
                                                         **self._opts).remote(settings.store)
            ray.get(store_actor.ping.remote(), timeout=120)  # registered before hosts look it up
        n = settings.num_hosts or max(int(ray.cluster_resources().get("CPU", 1)), 1)
        self.num_hosts = n
        host_cls = ray.remote(SessionHost)
        self._host_cls = host_cls
        self.hosts = [host_cls.options(name=f"host-{i}", max_concurrency=100_000, **self._opts)
                      .remote(settings, f"host-{i}") for i in range(n)]
        self._agent_cls = ray.remote(AgentActor)
        self._agents: dict[str, list] = {}
        self._dedicated: dict[str, Any] = {}
        self._admin_store = None
        self._shared: dict[str, RaySharedStateBackend] = {}
        self._driver_pool = None
        # Hosts open the store in their constructor: wait so that errors surface here.
        try:
            ray.get([h.ping.remote() for h in self.hosts], timeout=120)
        except RayTaskError as exc:
            raise _unwrap(exc) from None
        except GetTimeoutError as exc:
            raise RuntimeNotReady(f"session hosts did not start within 120 s: {exc}") from exc

    # -- agents -----------------------------------------------------------------------
    def ensure_agent(self, agent: Agent) -> None:
        if agent.key in self._agents:
            return
        from repertory.actors.agent_pool import agent_actor_name

        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        replicas = agent.replicas or max(nodes, 1)
        agent.replicas = replicas
        handles = [
            self._agent_cls.options(name=agent_actor_name(agent.key, i), max_concurrency=10_000,
                                    max_task_retries=3, scheduling_strategy="SPREAD",
                                    **self._opts).remote(agent, self.settings.namespace)
            for i in range(replicas)
        ]
        try:
            ray.get([h.ping.remote() for h in handles], timeout=120)
        except (RayTaskError, ActorDiedError, GetTimeoutError) as exc:
            cause = _unwrap(exc) if isinstance(exc, RayTaskError) else exc
            raise AgentError(f"the actors of agent {agent.name!r} did not start: {cause}; check that its "
                             "tools and options can be pickled and imported on the cluster") from exc
        self._agents[agent.key] = handles

    # -- hosts ------------------------------------------------------------------------
    def _host(self, key: str, placement: str):
        if placement != "dedicated":
            return self.hosts[host_index(key, self.num_hosts)]
        h = self._dedicated.get(key)
        if h is None:
            digest = hashlib.blake2b(key.encode(), digest_size=10).hexdigest()
            h = self._host_cls.options(name=f"session-{digest}", max_concurrency=10_000, **self._opts).remote(
                self.settings, f"session-{digest}")
            self._dedicated[key] = h
        return h

    async def _retrying(self, key: str, placement: str, call):
        from repertory.actors.calls import call_restartable

        # Resending is safe: turns carry ids and state operations are compare-and-set writes.
        return await call_restartable(
            lambda: call(self._host(key, placement)),
            lambda exc: RuntimeNotReady(f"the host of session {key!r} did not come back: {exc}"))

    async def turn(self, req: TurnRequest, placement: str = "shared") -> TurnReply:
        data = pack(req)
        return unpack(TurnReply, await self._retrying(req.key, placement, lambda h: h.turn.remote(data)))

    async def stream_turn(self, req: TurnRequest, placement: str = "shared") -> AsyncIterator[str | TurnReply]:
        from repertory.actors.calls import iterate_streaming

        gen = self._host(req.key, placement).stream_turn.options(num_returns="streaming").remote(pack(req))
        async for item in iterate_streaming(gen, lambda i: i if isinstance(i, str) else unpack(TurnReply, i)):
            yield item

    async def call(self, key: str, placement: str, method: str, *args: Any) -> Any:
        return await self._retrying(key, placement, lambda h: h.call.remote(method, *args))

    async def run_agent(self, agent: Agent, messages: list[dict], context: dict | None = None,
                        shared_state_id: str | None = None) -> Any:
        if agent.key not in self._agents:
            await asyncio.to_thread(self.ensure_agent, agent)  # actor creation blocks: not on the loop
        if self._driver_pool is None:
            from repertory.actors.agent_pool import RayAgentPool

            self._driver_pool = RayAgentPool(self.settings.namespace)
        return await self._driver_pool.run(agent.key, agent.replicas or 1, messages, context, shared_state_id)

    def shared_state(self, state_id: str) -> RaySharedStateBackend:
        backend = self._shared.get(state_id)
        if backend is None:
            from repertory.actors.shared_state import SharedStateActor, shared_state_actor_name

            handle = ray.remote(SharedStateActor).options(
                name=shared_state_actor_name(state_id), max_concurrency=10_000, **self._opts
            ).remote(self.settings, state_id)
            backend = self._shared[state_id] = RaySharedStateBackend(handle)
        return backend

    def admin_store(self):
        if self._admin_store is None:
            if self.settings.store_access == "actor":
                from repertory.actors.store import RemoteStore

                self._admin_store = RemoteStore(self.settings.namespace)
            else:
                from repertory.stores.factory import open_store

                self._admin_store = open_store(self.settings.store)
        return self._admin_store

    def stats(self) -> list[dict[str, Any]]:
        out = []
        for h in [*self.hosts, *self._dedicated.values()]:
            deadline = time.monotonic() + _RETRY_FOR
            while True:
                try:
                    out.append(ray.get(h.stats.remote()))
                    break
                except _RETRYABLE:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)  # the host is restarting
        return out

    def shutdown(self) -> None:
        if self._admin_store is not None:
            from repertory._sync import run_sync

            try:
                run_sync(self._admin_store.close)
            except Exception:  # closing on the way out: nothing left to protect
                pass
        if not self.detached:
            owned = [*self.hosts, *self._dedicated.values(), *(a for hs in self._agents.values() for a in hs),
                     *(b.handle for b in self._shared.values())]
            if self._store_actor is not None:
                owned.append(self._store_actor)
            for h in owned:
                try:
                    ray.kill(h, no_restart=True)
                except Exception:  # already gone
                    pass
        if self.started_ray:
            ray.shutdown()


class RaySharedStateBackend:
    """Calls a SharedStateActor, resending while Ray restarts it."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    @classmethod
    def lookup(cls, state_id: str, namespace: str) -> RaySharedStateBackend:
        from repertory.actors.shared_state import shared_state_actor_name

        try:
            return cls(ray.get_actor(shared_state_actor_name(state_id), namespace=namespace))
        except ValueError:
            raise RuntimeNotReady(
                f"shared state {state_id!r} has no actor; create SharedState({state_id!r}) in a driver first"
            ) from None

    async def _call(self, method: str, *args: Any) -> Any:
        from repertory.actors.calls import call_restartable

        # Mutations carry operation ids, so a resent one is answered, not applied twice.
        return await call_restartable(
            lambda: getattr(self.handle, method).remote(*args),
            lambda exc: RuntimeNotReady(f"the shared state actor did not come back: {exc}"))

    async def mutate(self, op_id: str, op: str, *args: Any) -> Any:
        return await self._call("mutate", op_id, op, *args)

    async def get(self, key: str, default: Any = None) -> Any:
        return await self._call("get", key, default)

    async def snapshot(self) -> dict[str, Any]:
        return await self._call("snapshot")

    async def watch(self, keys: list[str] | None, after: int | None) -> AsyncIterator[dict[str, Any]]:
        from repertory.actors.calls import iterate_streaming

        async for change in iterate_streaming(self.handle.watch.options(num_returns="streaming").remote(keys, after)):
            yield change
