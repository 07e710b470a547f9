"""The Ray runtime: a pool of SessionHost actors and AgentActor groups.

All actor options live here, in one place, and every actor name in
:class:`repertory.actors.names.ActorNames`: scoped to the store, so two applications on one
cluster share actors only when they name the same store in the same namespace. Hosts and
agents are async actors with ``max_restarts=-1``: a dead one is restarted by Ray, and a host
reactivates its sessions from the store. The handle resends a call whose host died, with the
same encoded arguments: turns (turn ids), session writes and shared-state writes (operation
ids, made once per call in ``Runtime``; deletes leave a tombstone with theirs) are then
answered, not applied twice.

With no address the runtime starts a private local Ray instance (Ray's ``address="local"``):
it never joins a cluster it was not asked to join. ``address="auto"``, an address, or
``RAY_ADDRESS`` in the environment join a running cluster; one that does not answer within
``connect_timeout`` seconds raises :class:`~repertory.errors.RuntimeNotReady`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, TypeVar

import ray
from ray.exceptions import ActorDiedError, ActorUnschedulableError, GetTimeoutError, RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from repertory._sync import run_sync
from repertory.actors import AgentActor, SessionHost, StoreActor
from repertory.actors.agent_pool import RayAgentPool
from repertory.actors.calls import RESTART_WAIT, call_restartable, iterate_streaming, unwrap_ray_error
from repertory.actors.memory import MemoryActor, RayMemoryStore
from repertory.actors.names import ActorNames
from repertory.actors.shared_state import RaySharedStateBackend, SharedStateActor
from repertory.actors.store import RemoteStore
from repertory.agents.agent import Agent, TurnOutput
from repertory.config import Settings
from repertory.errors import AgentError, RepertoryError, RuntimeNotReady, SessionElsewhere
from repertory.host import wire
from repertory.host.activation import Redirects
from repertory.host.api import TurnReply, TurnRequest
from repertory.host.chains import ChainResult, decode_results
from repertory.host.envelope import Coalescer, decode_outcomes
from repertory.host.hostset import HostSet
from repertory.host.routing import host_index, spread
from repertory.host.stats import HostStats
from repertory.ids import SessionRef
from repertory.logs import get_logger
from repertory.memory.stores import store_key
from repertory.runtimes.base import Runtime

__all__ = ["RayRuntime"]

log = get_logger("repertory.ray")

T = TypeVar("T")
_START_TIMEOUT = 120.0  # seconds for actors to start (their constructors open the store)


def _reach_cluster(address: str, timeout: float) -> None:
    """Fail fast when nothing answers at a cluster address.

    ``ray.init`` retries a dead GCS for ever (seen: more than five minutes, no error), so the
    address is resolved as Ray would ("auto" reads the last cluster's file) and its port is
    tried until ``timeout``; a cluster that is still starting gets that long to open it.
    """
    hint = ("; start the cluster (`ray start --head`), fix the address or RAY_ADDRESS, or call "
            "repertory.init() without an address for a private local instance")
    if address.startswith("ray://"):
        target: str | None = address[len("ray://"):].split("/", 1)[0]
    else:
        from ray._private.services import canonicalize_bootstrap_address

        try:
            target = canonicalize_bootstrap_address(address)
        except (ConnectionError, ValueError) as exc:
            raise RuntimeNotReady(f"cannot find the Ray cluster at {address!r}: {exc}{hint}") from exc
    if target is None:
        return
    host, _, port = target.rpartition(":")
    if not port.isdigit():
        raise RuntimeNotReady(f"the Ray address {address!r} has no port{hint}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=min(2.0, timeout)).close()
            return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise RuntimeNotReady(f"cannot reach the Ray cluster at {address!r} ({target}) within "
                                      f"{timeout:g} s: {exc}{hint}") from exc
            time.sleep(0.2)


def _start_ray(settings: Settings, address: str | None) -> bool:
    """Connect to Ray unless this process already is; True if this call started an instance."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict[str, Any] = {"namespace": settings.namespace, "logging_level": logging.WARNING,
                              "log_to_driver": os.environ.get("REPERTORY_RAY_LOGS") == "1"}
    if address == "local":
        kwargs.update(include_dashboard=False, configure_logging=True)
        # A private local instance: Ray's notice about its token set-up is noise here.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    else:
        _reach_cluster(address, settings.connect_timeout)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        raise RuntimeNotReady(f"cannot connect to the Ray cluster at {address!r}: {exc}; start it, or call "
                              "repertory.init() without an address for a private local instance") from exc
    return True


def _alive_nodes() -> list[tuple[str, float]]:
    """The cluster's live nodes with their CPUs, by node id."""
    return sorted((n["NodeID"], float(n.get("Resources", {}).get("CPU", 0))) for n in ray.nodes() if n.get("Alive"))


async def _send_one(host: Any, call: tuple[str, bytes]) -> bytes:
    return await getattr(host, call[0]).remote(call[1])


async def _send_many(host: Any, calls: list[tuple[str, bytes]]) -> list[bytes | BaseException]:
    return decode_outcomes(await host.calls.remote(wire.encode(calls)))


class _Route:
    """Where one call for a session goes next: its own host, or the holder a redirect named
    (host.activation), with what the call's earlier attempts learned."""

    __slots__ = ("_rt", "_ref", "_target", "_target_name", "_redirects", "_unreachable", "_moved")

    def __init__(self, rt: RayRuntime, ref: SessionRef) -> None:
        self._rt, self._ref = rt, ref
        self._target: Any = None  # the holder's handle after a redirect
        self._target_name = ""
        self._redirects: Redirects | None = None  # made on the first redirect: nothing on the hot path
        self._unreachable: set[str] = set()
        self._moved = 0  # how often the session's own host was started again elsewhere

    def host(self) -> Any:
        return self._target or self._rt._host(self._ref)

    async def elsewhere(self, exc: SessionElsewhere) -> None:
        """The session is active on another host: send the next attempt to it (or, after a
        pause while its lease lapses, to the session's own host)."""
        self._redirects = self._redirects or Redirects(self._rt.settings.turn_timeout)
        handle = None
        if exc.holder not in self._unreachable:
            try:
                handle = await asyncio.to_thread(ray.get_actor, exc.holder, namespace=self._rt.settings.namespace)
            except ValueError:  # gone for good: its lease lapses within its TTL
                pass
        name, pause = self._redirects.next(exc, reachable=handle is not None)
        if pause:
            await asyncio.sleep(pause)
        self._target, self._target_name = (handle if name is not None else None), exc.holder

    async def unschedulable(self, exc: ActorUnschedulableError) -> None:
        """The host asked can never run again (its node left)."""
        if self._target is not None:  # the holder's: its lease lapses, the session's own host takes it
            self._unreachable.add(self._target_name)
            self._target = None
            return
        await self._rt._unschedulable(self._ref, exc, self._moved)
        self._moved += 1


class RayRuntime(Runtime):
    """Sessions on host actors; see the module docstring."""

    def __init__(self, settings: Settings, address: str | None = None, *, detached: bool = False) -> None:
        self.settings = settings
        self.detached = detached
        self.started_ray = _start_ray(settings, address)
        self.names = ActorNames.for_store(settings.namespace, settings.store)
        self._opts = {"namespace": settings.namespace, "max_restarts": -1, "num_cpus": 0,
                      "get_if_exists": True, "lifetime": "detached" if detached else None}
        self._owned: list[Any] = []  # actors this driver created; shutdown stops only these
        self._store_actor = None
        if settings.store_access == "actor":
            # Keep the handle: a non-detached actor dies with its driver-side references.
            self._store_actor = self._actor(StoreActor, self.names.store(), 10_000, settings.store)
            self._wait([self._store_actor], "the store actor")  # registered before hosts look it up
        nodes = _alive_nodes()
        self._hostset = HostSet(settings.num_hosts)  # grows and shrinks with the nodes (host.hostset)
        n = self._hostset.size(nodes)
        self.num_hosts = n
        # Zero-CPU actors would all land on the driver's node: place the hosts over every node,
        # in proportion to its CPUs. Pinned (Ray's soft affinity let fresh nodes go unused);
        # a host whose node left is started again on a live one (_revive_host).
        self._placed = spread(nodes, n)  # each host's node
        self._resizing = False
        self._hosts_lock = threading.Lock()  # one change of self.hosts at a time (callers on any loop or thread)
        self.hosts = [self._start_host(i, node) for i, node in enumerate(self._placed)]
        self._agents: dict[str, list] = {}
        self._dedicated: dict[str, Any] = {}
        self._admin_store = None
        self._shared: dict[str, RaySharedStateBackend] = {}
        self._memory: dict[str, Any] = {}
        self._driver_pool = RayAgentPool(self.names)
        # Concurrent calls to one host travel as one envelope (repertory.host.envelope).
        self._envelopes: Coalescer[Any, tuple[str, bytes], bytes] = Coalescer(_send_one, _send_many)
        self._wait(self.hosts, "session hosts")  # hosts open the store in their constructor

    def _start_host(self, index: int, node: str) -> Any:
        return self._actor(SessionHost, self.names.host(index), 100_000, self.settings, self.names,
                           f"host-{index}", index == 0,
                           scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))

    def _revive_host(self, index: int, failed: Any) -> None:
        """Host ``index`` can never restart (its node left): start it on a live node, the same
        one every driver picks; its sessions reactivate there from the store. ``failed`` is the
        handle the caller's call failed on: every call in flight to a lost host fails at once,
        and only the first starts it again; the others find it started and resend to it."""
        with self._hosts_lock:
            if index >= len(self.hosts) or self.hosts[index] is not failed:
                return
            node = spread(_alive_nodes(), self.num_hosts)[index]
            log.warning("host_moved", host=index, node=node)
            self._placed[index] = node
            self.hosts[index] = self._start_host(index, node)

    async def _refresh_hosts(self) -> None:
        """Every few seconds, on the call path: follow the cluster's nodes (host.hostset). One
        look at a time; calls meanwhile go on with the current set."""
        if self._resizing or not self._hostset.due():
            return
        self._resizing = True
        try:
            await asyncio.to_thread(self._resize)
        except RepertoryError as exc:  # new hosts did not start: keep the set, look again later
            log.warning("host_set_not_changed", error=str(exc))
        finally:
            self._resizing = False

    def _resize(self) -> None:
        with self._hosts_lock:
            self._resize_locked()

    def _resize_locked(self) -> None:
        nodes = _alive_nodes()
        n = self._hostset.size(nodes)
        old = self.num_hosts
        if n == old:
            return
        if n > len(self.hosts):
            new = self._hostset.placement(nodes, self._placed, n)
            started = [self._start_host(len(self.hosts) + i, node) for i, node in enumerate(new)]
            self._wait(started, "new session hosts")
            self._placed += new
            self.hosts += started
        self.num_hosts = n
        log.info("host_set_changed", hosts=n, before=old, nodes=len(nodes))
        # Hand over what moved: each host drops the idle sessions it no longer owns, with their
        # activation leases, so that their new host takes them without waiting.
        for i, h in enumerate(self.hosts):
            h.passivate_moved.remote(i, n)

    async def _unschedulable(self, ref: SessionRef, exc: ActorUnschedulableError, attempt: int) -> None:
        if ref.placement == "dedicated" or attempt >= 2:
            raise RuntimeNotReady(f"the host of session {ref.key!r} cannot be scheduled: {exc}") from exc
        index = host_index(ref.key, self.num_hosts)
        await asyncio.to_thread(self._revive_host, index, self.hosts[index])

    def _actor(self, cls: type, name: str, concurrency: int, *args: Any, **options: Any) -> Any:
        """Create (or join) the named actor; remember it if this driver created it."""
        try:
            ray.get_actor(name, namespace=self.settings.namespace)
            existed = True
        except ValueError:
            existed = False
        handle = ray.remote(cls).options(name=name, max_concurrency=concurrency, **self._opts, **options).remote(*args)
        if not existed:
            self._owned.append(handle)
        return handle

    @staticmethod
    def _wait(handles: list[Any], what: str) -> None:
        try:
            ray.get([h.ping.remote() for h in handles], timeout=_START_TIMEOUT)
        except RayTaskError as exc:
            raise unwrap_ray_error(exc) from None
        except GetTimeoutError as exc:
            raise RuntimeNotReady(f"{what} did not start within {_START_TIMEOUT:.0f} s: {exc}") from exc

    # -- agents -----------------------------------------------------------------------
    def ensure_agent(self, agent: Agent) -> None:
        if agent.key in self._agents:
            # Another object of the same definition (each handle may build its own) calls over
            # every replica too, not only the first.
            agent.replicas = agent.replicas or len(self._agents[agent.key])
            return
        nodes = _alive_nodes()
        replicas = agent.replicas or len(nodes)
        agent.replicas = replicas
        # One replica per node by default, each pinned to its node as the hosts are. One whose
        # node leaves never restarts: the pools send its calls to the other replicas.
        runs_turns = self.settings.agent_placement == "actor"
        handles = [self._actor(AgentActor, self.names.agent(agent.key, i), 10_000, agent, self.names, runs_turns,
                               self.settings.prompt_cache_bytes, max_task_retries=3,
                               scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                   for i, node in enumerate(spread([(node, 1.0) for node, _ in nodes], replicas))]
        try:
            ray.get([h.ping.remote() for h in handles], timeout=_START_TIMEOUT)
        except (RayTaskError, ActorDiedError, GetTimeoutError) as exc:
            cause = unwrap_ray_error(exc) if isinstance(exc, RayTaskError) else exc
            raise AgentError(f"the actors of agent {agent.name!r} did not start: {cause}; check that its "
                             "tools and options can be pickled and imported on the cluster") from exc
        self._agents[agent.key] = handles

    async def run_agent(self, agent: Agent, messages: list[dict], context: dict | None = None,
                        shared_state_id: str | None = None) -> TurnOutput:
        if agent.key not in self._agents:
            await asyncio.to_thread(self.ensure_agent, agent)  # actor creation blocks: not on the loop
        return await self._driver_pool.run(agent.key, agent.replicas or 1, messages, context, shared_state_id)

    # -- hosts ------------------------------------------------------------------------
    def _host(self, ref: SessionRef) -> Any:
        if ref.placement != "dedicated":
            return self.hosts[host_index(ref.key, self.num_hosts)]
        h = self._dedicated.get(ref.key)
        if h is None:
            name = self.names.dedicated(ref.key)
            h = self._dedicated[ref.key] = self._actor(SessionHost, name, 10_000, self.settings, self.names, name)
        return h

    async def invoke(self, ref: SessionRef, op: Callable[..., Awaitable[T]], *args: Any) -> T:
        # SessionHost has a method of the same name for each HostCore operation; an envelope
        # names it. A resent envelope resends each of its calls, as a resent lone call.
        await self._refresh_hosts()
        call = (op.__name__, wire.encode(args))
        route = _Route(self, ref)
        while True:
            try:
                return wire.decode(await call_restartable(
                    lambda: self._envelopes.call(route.host(), call),
                    lambda exc: RuntimeNotReady(f"the host of session {ref.key!r} did not come back: {exc}")))
            except ActorUnschedulableError as exc:  # resent as after a restart (module docstring)
                await route.unschedulable(exc)
            except SessionElsewhere as exc:  # active on another host: resend there
                await route.elsewhere(exc)

    def slice_of(self, ref: SessionRef) -> Hashable | None:
        return host_index(ref.key, self.num_hosts) if ref.placement != "dedicated" else None

    async def run_chains(self, where: Hashable, chains: list[list[TurnRequest]],
                         timeout: float | None) -> list[ChainResult]:
        # One try: a host that dies mid-slice fails the whole call, and the caller resends
        # each chain as lone turns, which wait for the restart (call_restartable).
        await self._refresh_hosts()  # a long batch follows the nodes too (its next slices)
        data = wire.encode([chains, timeout])
        try:
            return decode_results(await self.hosts[where].turn_chains.remote(data))
        except RayTaskError as exc:
            raise unwrap_ray_error(exc) from None

    async def stream_turn(self, req: TurnRequest) -> AsyncIterator[str | TurnReply]:
        # A host that dies mid-stream is asked again once Ray restarts it: for the turn itself
        # while no chunk arrived (its turn id answers it if it was written), else for the rest
        # of its reply after the characters already yielded (repertory.streams), which the
        # restarted host has if the turn was acknowledged (else StreamNotResumable).
        await self._refresh_hosts()
        sent = 0
        deadline = time.monotonic() + RESTART_WAIT
        delay = 0.05
        route = _Route(self, req.ref)
        while True:
            ask = req if sent == 0 else dataclasses.replace(req, resume_from=(req.resume_from or 0) + sent)
            gen = route.host().stream_turn.options(num_returns="streaming").remote(wire.encode([ask]))
            try:
                async for item in iterate_streaming(gen, lambda i: i if isinstance(i, str) else wire.decode(i)):
                    if isinstance(item, str):
                        sent += len(item)
                    yield item
                return
            except SessionElsewhere as exc:  # active on another host: ask there
                await route.elsewhere(exc)
            except ActorUnschedulableError as exc:  # its node left: it starts on another
                await route.unschedulable(exc)
            except RayActorError as exc:  # died, or unavailable while Ray restarts it
                if time.monotonic() > deadline:
                    raise RuntimeNotReady(f"the host of session {req.ref.key!r} did not come back: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    # -- shared state and administration ----------------------------------------------
    def shared_state(self, state_id: str) -> RaySharedStateBackend:
        backend = self._shared.get(state_id)
        if backend is None:
            handle = self._actor(SharedStateActor, self.names.shared_state(state_id), 10_000, self.settings,
                                 self.names, state_id)
            backend = self._shared[state_id] = RaySharedStateBackend(handle)
        return backend

    def memory_store(self, spec: dict[str, Any]) -> Any:
        if (spec.get("provider") or "sqlite") == "sqlite":  # WAL: every process may open the file
            return super().memory_store(spec)
        key = store_key(spec)
        store = self._memory.get(key)
        if store is None:  # this driver's node: where the folder it names is
            node = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
            store = self._memory[key] = RayMemoryStore(self._actor(MemoryActor, self.names.memory(key), 1000, spec,
                                                                   scheduling_strategy=node))
        return store

    def admin_store(self):
        if self._admin_store is None:
            if self.settings.store_access == "actor":
                self._admin_store = self.settings.wrap_store(RemoteStore(self.names))
            else:
                self._admin_store = self.settings.open_store()
        return self._admin_store

    def stats(self) -> list[dict[str, Any]]:
        async def one(h: Any) -> dict[str, Any]:
            return await call_restartable(h.stats.remote, lambda exc: RuntimeNotReady(f"a host did not come back: {exc}"))

        return [run_sync(one, h) for h in [*self.hosts, *self._dedicated.values()]]

    def host_of(self, key: str) -> str:
        return f"host-{host_index(key, self.num_hosts)}"

    async def astats(self) -> list[HostStats]:
        async def one(h: Any) -> dict[str, Any]:
            return await call_restartable(h.stats.remote, lambda exc: RuntimeNotReady(f"a host did not come back: {exc}"))

        found = await asyncio.gather(*(one(h) for h in [*self.hosts, *self._dedicated.values()]))
        return [HostStats.from_dict(d) for d in found]

    def shutdown(self) -> None:
        if self._admin_store is not None:
            try:
                run_sync(self._admin_store.close)
            except Exception:  # closing on the way out: nothing left to protect
                pass
        self.close_memory_stores()
        if not self.detached:
            for h in self._owned:
                try:
                    ray.kill(h, no_restart=True)
                except Exception:  # already gone
                    pass
        if self.started_ray:
            ray.shutdown()
