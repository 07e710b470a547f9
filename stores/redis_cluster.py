"""Redis Cluster and replicated writes for the Redis store.

``redis+cluster://[user:password@]host:port,host:port/?prefix=rp`` (``rediss+cluster://`` for
TLS) opens redis-py's cluster client on those seed nodes; it learns the rest of the cluster
from them. Every key of a session shares its ``{hash tag}``, so each verb lands on one slot.

``?wait=N`` (either URL form) makes every commit wait until N replicas have it (``WAIT N
timeout`` right after the write, on the same connection to the master that took it; the timeout
is ``?wait_timeout=`` milliseconds, 1000 by default). Fewer replicas in time:
:class:`~repertory.errors.WriteNotReplicated`, and the turn is not acknowledged. Without
``wait`` (the default) a commit is acknowledged once the master has it: a master that dies
before replicating can lose the last acknowledged turns when its replica takes over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (AskError, ClusterDownError, MovedError, RedisClusterException, TryAgainError)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from repertory.errors import InvalidInput

__all__ = ["CLUSTER_SCHEMES", "RESEND_BUDGET", "Durability", "cluster_client", "parse_cluster_url"]

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")

# a call that failed with one of these did not run where it was sent, or the node is going away:
# refresh the slot map and send it again (a resent commit is recognised by its write id)
_RESEND = (MovedError, AskError, ClusterDownError, TryAgainError, RedisConnectionError, RedisTimeoutError,
           OSError, asyncio.TimeoutError, RedisClusterException)

# how long a commit keeps being re-sent while the cluster moves a slot or promotes a replica
# (seconds); a failover after a crash takes the cluster's node timeout plus an election
RESEND_BUDGET = 5.0


def parse_cluster_url(scheme: str, netloc: str, path: str, shown: str) -> dict[str, Any]:
    """The cluster client's seed nodes and credentials from a ``redis+cluster://`` URL's parts."""
    userinfo, at, hosts = netloc.rpartition("@")
    user, _, password = userinfo.partition(":") if at else ("", "", "")
    if path not in ("", "/", "/0"):
        raise InvalidInput(f"a Redis Cluster has only database 0, but {shown!r} names {path!r}; "
                           "drop the path ('redis+cluster://host:port,host:port/?prefix=rp')")
    nodes: list[ClusterNode] = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            host, port = item.strip(), "6379"
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise InvalidInput(f"cannot read the cluster node {item!r} in {shown!r}; "
                               "list them as 'host:port,host:port'")
        nodes.append(ClusterNode(host, int(port)))
    return dict(startup_nodes=nodes, username=unquote(user) or None, password=unquote(password) or None,
                ssl=scheme == "rediss+cluster")


def cluster_client(seeds: dict[str, Any], options: dict[str, Any], retries: int) -> RedisCluster:
    """redis-py's cluster client on ``seeds`` with the store's timeouts (``options``)."""
    return RedisCluster(
        **seeds, max_connections=options["max_connections"], socket_timeout=options["socket_timeout"],
        socket_connect_timeout=options["socket_connect_timeout"], socket_keepalive=True,
        health_check_interval=options["health_check_interval"],
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries),
    )


class Durability:
    """Sends script calls so that each write is confirmed by ``replicas`` replicas (``WAIT``).

    WAIT counts the replicas that have every write sent so far *on its connection*, so the
    calls for one master and their WAIT go down one connection of a plain client to that
    master, never through the cluster client's pooled routing.
    """

    def __init__(self, client: Redis | RedisCluster, replicas: int, timeout_ms: int,
                 options: dict[str, Any], node_kwargs: dict[str, Any], retries: int = 3) -> None:
        self.replicas, self.timeout_ms, self._retries = replicas, timeout_ms, retries
        self._client = client
        # a plain client per master: the store's timeouts and the cluster URL's credentials
        self._node_options = {**{k: v for k, v in options.items() if k != "timeout"}, **node_kwargs,
                              # redis-py's default retries back off for seconds; ours are short
                              "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2)}
        self._masters: dict[str, Redis] = {}

    def _master(self, key: str) -> Redis:
        if not isinstance(self._client, RedisCluster):
            return self._client
        node = self._client.get_node_from_key(key)
        client = self._masters.get(node.name)
        if client is None:
            client = self._masters[node.name] = Redis(host=node.host, port=node.port, **self._node_options)
        return client

    async def execute(self, calls: Sequence[Any], not_replicated: Any) -> list[Any]:
        """One result per call: its script's reply, a RedisError, or ``not_replicated(acks)``
        when the write ran but fewer replicas than required confirmed it.

        Calls that did not run where they were sent (MOVED, ASK, a failover in progress, a dead
        master) are sent again until they run or :data:`RESEND_BUDGET` seconds have passed; what
        is still unsent then comes back as its error (the store reports it as unavailable)."""
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESEND_BUDGET
        attempt = 0
        while True:
            if isinstance(self._client, RedisCluster):
                await self._client.initialize()  # the first call learns the slots; later ones return at once
            groups: dict[int, tuple[Redis, list[int]]] = {}
            for i in todo:
                client = self._master(calls[i].keys[0])
                groups.setdefault(id(client), (client, []))[1].append(i)
            await asyncio.gather(*(self._send(client, idx, calls, results, not_replicated)
                                   for client, idx in groups.values()))
            todo = [i for i in todo if isinstance(results[i], _RESEND)]
            if not todo or loop.time() >= deadline:
                return results
            if isinstance(self._client, RedisCluster):
                await self._learn_slots([results[i] for i in todo])
            await asyncio.sleep(min(0.5, 0.05 * 2 ** attempt))
            attempt += 1

    async def _learn_slots(self, errors: list[Exception]) -> None:
        """Update the slot map after failed sends.

        A MOVED names the slot's master as the node asked sees it: follow it (a full refresh
        asks one random node, which may be a restarted old master that still claims the slot
        from its nodes.conf, and MOVED would then bounce between the two until the views
        converge). Any other failure (dead node, failover under way): refresh the whole map."""
        assert isinstance(self._client, RedisCluster)
        if any(not isinstance(e, (MovedError, AskError)) for e in errors):
            try:
                await self._client.nodes_manager.initialize()
            except _RESEND:
                pass  # no node answered yet: the next send fails the same way and we come back
            self._masters_close_later()
        for e in errors:
            if isinstance(e, MovedError):
                await self._client.nodes_manager.move_slot(e)

    def _masters_close_later(self) -> None:
        old, self._masters = self._masters, {}
        for client in old.values():
            asyncio.get_running_loop().create_task(client.aclose())

    async def _send(self, client: Redis, idx: list[int], calls: Sequence[Any], results: list[Any],
                    not_replicated: Any) -> None:
        pipe = client.pipeline(transaction=False)
        for i in idx:
            c = calls[i]
            pipe.execute_command("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args)
        pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
        try:
            out = await pipe.execute(raise_on_error=False)
        except _RESEND as exc:
            for i in idx:
                results[i] = exc
            return
        acks = out[-1]
        for i, res in zip(idx, out[:-1]):
            if isinstance(res, Exception):
                results[i] = res
            elif isinstance(acks, Exception) or int(acks) < self.replicas:
                results[i] = not_replicated(acks)
            else:
                results[i] = res

    async def close(self) -> None:
        for client in self._masters.values():
            await client.aclose()
        self._masters.clear()
