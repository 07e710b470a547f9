"""The seeded fault schedule and the injectors that carry it out on a Ray runtime.

Same seed, same schedule: which kinds, in which order, at which offsets, on which targets.
Every kind is injected at least once when the run is long enough (the kinds are dealt in
shuffled rounds, not drawn independently).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from repertory.errors import InvalidInput

if TYPE_CHECKING:
    from repertory.agents.agent import Agent
    from repertory.chaos.nodes import RayNodes
    from repertory.chaos.redis_cluster import PrivateRedisCluster
    from repertory.chaos.redis_server import PrivateRedis
    from repertory.runtimes.base import Runtime

__all__ = ["FAULT_KINDS", "REDIS_KINDS", "Fault", "FaultInjector", "parse_kinds", "schedule"]

log = structlog.get_logger(__name__)

FAULT_KINDS = ("host", "replica", "store-actor", "redis-restart", "redis-failover", "node")
# the kinds that run the store on a private Redis (one of them per run)
REDIS_KINDS = ("redis-restart", "redis-failover")


@dataclass(frozen=True, slots=True)
class Fault:
    at: float  # seconds from the start of the run
    kind: str
    target: int  # which host / replica (an index, taken modulo what exists)


def parse_kinds(text: str) -> tuple[str, ...]:
    """``"host,replica"`` -> the kinds, checked."""
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    for k in kinds:
        if k not in FAULT_KINDS:
            raise InvalidInput(f"unknown fault {k!r}; choose from {', '.join(FAULT_KINDS)}")
    if all(k in kinds for k in REDIS_KINDS):
        raise InvalidInput("redis-restart (a private single Redis) and redis-failover (a private Redis Cluster) "
                           "each run the store on their own Redis: choose one of them per run")
    return kinds


def schedule(seed: int, duration: float, kinds: tuple[str, ...], *, every: float = 5.0,
             warmup: float = 3.0, quiet_tail: float = 5.0) -> list[Fault]:
    """Faults from ``warmup`` to ``duration - quiet_tail``, about one per ``every`` seconds
    (±30%), the kinds dealt in seeded shuffled rounds; the quiet tail lets the last one recover."""
    rng = random.Random(seed)
    out: list[Fault] = []
    t = warmup
    deck: list[str] = []
    while kinds and t <= duration - quiet_tail:
        if not deck:
            deck = rng.sample(kinds, len(kinds))
        out.append(Fault(round(t, 3), deck.pop(), rng.randrange(1 << 16)))
        t += every * rng.uniform(0.7, 1.3)
    return out


async def _actor_pid(handle: Any, timeout: float = 60.0) -> int:
    """The actor's process id, once it answers: a target still restarting from the last fault
    is waited for (poll with a deadline), so the schedule's fault still lands."""
    import ray

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await asyncio.wait_for(handle.__ray_call__.remote(lambda self: os.getpid()), timeout)
        except ray.exceptions.ActorUnavailableError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


class FaultInjector:
    """Injects one fault of a kind; answers (target, sessions hit or None for all)."""

    def __init__(self, runtime: Runtime, agent: Agent, sessions: list[str], redis: PrivateRedis | None = None,
                 cluster: PrivateRedisCluster | None = None, nodes: RayNodes | None = None) -> None:
        self.runtime = runtime
        self.agent = agent
        self.sessions = sessions
        self.redis = redis
        self.cluster = cluster
        self.nodes = nodes
        self.landed_at = 0.0  # wall-clock time the last fault struck (its recovery is timed from it)

    def _strike(self) -> None:
        self.landed_at = time.time()

    async def inject(self, fault: Fault) -> tuple[str, list[str] | None]:
        # A new kind (a Redis Cluster failover, a node removal) is one more branch here.
        if fault.kind == "host":
            return await self._kill_host(fault.target)
        if fault.kind == "replica":
            return await self._kill_replica(fault.target)
        if fault.kind == "store-actor":
            return await self._kill_store_actor()
        if fault.kind == "redis-restart":
            if self.redis is None:
                raise InvalidInput("the redis-restart fault needs the run's private Redis")
            self._strike()
            await asyncio.to_thread(self.redis.restart)
            return f"redis:{self.redis.port}", None
        if fault.kind == "redis-failover":
            if self.cluster is None:
                raise InvalidInput("the redis-failover fault needs the run's private Redis Cluster")
            return await asyncio.to_thread(self._fail_over, fault.target)
        if fault.kind == "node":
            if self.nodes is None:
                raise InvalidInput("the node fault needs the run's own multi-node Ray cluster")
            return await self._replace_node(fault.target)
        raise InvalidInput(f"unknown fault {fault.kind!r}")

    async def _replace_node(self, target: int) -> tuple[str, list[str] | None]:
        """A worker node leaves (its raylet and every actor on it die, never to restart there)
        and a fresh one joins. The target is a worker with a session host when there is one; the
        sessions hit are those of its hosts (all of them when it had only an agent replica,
        which every session calls)."""
        assert self.nodes is not None
        stats = await asyncio.wait_for(asyncio.to_thread(self.runtime.stats), 60)
        hosts_on = {w.node_id: {str(st["host"]) for st in stats if st.get("node") == w.node_id}
                    for w in self.nodes.workers}
        busy = [w for w in self.nodes.workers if hosts_on[w.node_id]] or self.nodes.workers
        node = busy[target % len(busy)]
        hosts = hosts_on[node.node_id]
        hit = [s for s in self.sessions if self.runtime.host_of(s) in hosts]
        self._strike()
        await asyncio.to_thread(self.nodes.replace, node)
        return f"node:{node.node_id[:12]} ({len(hosts)} host(s))", hit or None

    def _fail_over(self, target: int) -> tuple[str, list[str] | None]:
        """The master of one session's slot hands over to its replica: gracefully (CLUSTER
        FAILOVER) on even targets, by SIGKILL on odd ones (the replica is promoted after the node
        timeout; the dead node is started again and rejoins as a replica, so that commits that
        wait for one replica are acknowledged again)."""
        assert self.cluster is not None
        cluster = self.cluster
        # the store's keys of a session share the hash tag {storage key} (a session id here)
        ports = cluster.masters_of(f"{{{sid}}}" for sid in self.sessions)
        masters = {sid: ports[f"{{{sid}}}"] for sid in self.sessions}
        master = masters[self.sessions[target % len(self.sessions)]]
        hit = [sid for sid, port in masters.items() if port == master]
        if target % 2 == 0:
            self._strike()
            cluster.failover(master)
            return f"redis-master:{master} (failover)", hit
        self._strike()
        cluster.kill(master)
        cluster.restart(master)
        return f"redis-master:{master} (killed)", hit

    async def _kill_host(self, target: int) -> tuple[str, list[str] | None]:
        # stats() answers once every host is up again (a host killed just before restarts first).
        stats = await asyncio.wait_for(asyncio.to_thread(self.runtime.stats), 60)
        pooled = sorted((st for st in stats if str(st["host"]).startswith("host-")), key=lambda st: st["host"])
        victim = pooled[target % len(pooled)]
        self._strike()
        os.kill(victim["pid"], signal.SIGKILL)
        hit = [s for s in self.sessions if self.runtime.host_of(s) == victim["host"]]
        return str(victim["host"]), hit

    async def _kill_replica(self, target: int) -> tuple[str, list[str] | None]:
        import ray

        n = max(self.agent.replicas or 1, 1)
        # from the target's replica on, the first that exists: one whose node left (the node
        # fault) is gone for good
        for index in (i % n for i in range(target, target + n)):
            name = self.runtime.names.agent(self.agent.key, index)  # type: ignore[attr-defined]
            try:
                handle = ray.get_actor(name, namespace=self.runtime.settings.namespace)  # type: ignore[attr-defined]
            except ValueError:
                continue
            pid = await _actor_pid(handle)
            self._strike()
            os.kill(pid, signal.SIGKILL)
            return f"replica-{index}", None
        raise InvalidInput(f"no replica of agent {self.agent.name!r} is left to kill")

    async def _kill_store_actor(self) -> tuple[str, list[str] | None]:
        import ray

        name = self.runtime.names.store()  # type: ignore[attr-defined]
        handle = ray.get_actor(name, namespace=self.runtime.settings.namespace)  # type: ignore[attr-defined]
        pid = await _actor_pid(handle)
        self._strike()
        os.kill(pid, signal.SIGKILL)
        return "store-actor", None
