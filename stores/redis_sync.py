"""A blocking twin of a RedisStore's client, for sync callers that must not hop onto an event loop.

A LangGraph graph run with ``invoke`` calls its checkpointer from plain threads. Sending each
call through repertory's event loop costs a thread hop (~90 µs) on top of the round trip; this
client sends it from the calling thread instead, with the store's URL, prefix, timeouts, retries
and error translation (``StoreUnavailable`` when Redis does not answer, out-of-memory refusals
explained).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis import BlockingConnectionPool, Redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

if TYPE_CHECKING:
    from .redis import RedisStore

__all__ = ["SyncRedis"]

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class SyncRedis:
    """Blocking script calls and scans on the Redis of ``store``."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), store._retries)
        if store._cluster_seeds is not None:
            from redis.cluster import ClusterNode, RedisCluster

            seeds = dict(store._cluster_seeds)
            seeds["startup_nodes"] = [ClusterNode(n.host, n.port) for n in seeds["startup_nodes"]]
            options = {k: v for k, v in store._pool_options.items() if k != "timeout"}
            self._client: Redis | RedisCluster = RedisCluster(**seeds, **options, retry=retry)
            return
        pool = BlockingConnectionPool.from_url(store._client_url, **store._pool_options, retry=retry)
        self._client = Redis(connection_pool=pool)

    def register_script(self, source: str) -> Script:
        return self._client.register_script(source)

    def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Any], what: str) -> Any:
        """One script call, one round trip; failures typed as the store's own."""
        self._store._check_open()
        try:
            try:
                res = self._client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:  # first use, or Redis lost its script cache
                script.sha = self._client.script_load(script.script)
                res = self._client.evalsha(script.sha, len(keys), *keys, *args)
        except _UNREACHABLE as exc:
            raise self._store._unavailable(exc, what) from exc
        except RedisError as exc:
            raise self._store._failed(exc, what) from exc
        self._store._mark_available()
        return res

    def scan_keys(self, pattern: str) -> list[bytes]:
        """Names of the keys matching the glob ``pattern``."""
        self._store._check_open()
        try:
            return list(set(self._client.scan_iter(match=pattern, count=1000)))
        except _UNREACHABLE as exc:
            raise self._store._unavailable(exc, "scan") from exc
        except RedisError as exc:
            raise self._store._failed(exc, "scan") from exc

    def close(self) -> None:
        self._client.close()
