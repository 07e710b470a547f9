"""The cluster store: sessions in Redis, with TTL.

Key layout (``<p>`` is the store prefix, ``rp`` by default; ``<key>`` the session key)::

    <p>:{<key>}:meta        hash: version, meta (blob), n_messages, updated_at, expires_at, write_id
    <p>:{<key>}:msgs        list: the message blobs, in order
    <p>:{<key>}:cps         sorted set: checkpoint ids, scored by created_at
    <p>:{<key>}:cp:<cp_id>  hash: kind, seq, created_at, turn, label, data
    <p>:{<key>}:steps:<turn> hash: seq -> step blob, the journal of a running turn (Store.put_step)
    <p>:{<key>}:stepturns   set: the turns that have a journal (so a delete finds them)

Why this shape:

* The session key sits in a hash tag (``{...}``), so all of one session's keys hash to one
  Redis Cluster slot. Every verb is then a single-slot Lua script or a single command (a lone
  load: three commands on one slot, see ``_load_lone``), which Redis Cluster accepts, and a
  session never straddles two nodes. Session keys therefore must
  not contain braces (they never do: ids are validated upstream; we refuse them here too).
* Writes are a Lua compare-and-set on the ``version`` field. A script runs atomically on the
  server in one round trip; WATCH/MULTI needs at least three and retries under contention
  (measured for this design: 104 µs vs 261 µs p50).
* Commits that arrive while a round trip is in flight are sent together in one pipeline of
  EVALSHA calls (group commit, as in the SQLite store), so a busy host pays one round trip for
  many turns; each caller still gets its own result or ConcurrentUpdate. Loads batch the same
  way, on their own pipeline so reads never queue behind writes.
* Expiry is Redis TTL: every commit and ``touch`` sets the same PEXPIREAT on all of the
  session's keys (checkpoints included), so they vanish together and nothing needs sweeping
  (``sweep_expired`` is the base class's, which returns 0).
  ``expires_at`` comes from the caller's clock and Redis applies it with its own: keep clocks
  in sync (NTP) or expect skew of that size.
* ``list_sessions`` SCANs ``<p>:{*}:meta`` instead of keeping a global index key, which would
  be a cross-slot hot spot in a cluster.

The checkpoint keys are derived inside the scripts from the ``cps`` index rather than passed as
KEYS (their ids are only known server-side); they share the session's hash tag, hence its slot.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog
from hiredis import pack_command
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (AskError, ClusterDownError, MasterDownError, MovedError, NoScriptError, OutOfMemoryError,
                              DataError, RedisClusterException, RedisError, ResponseError, TryAgainError)
from redis.exceptions import TimeoutError as RedisTimeoutError

from repertory.errors import ConcurrentUpdate, CorruptState, InvalidInput, StoreError, StoreUnavailable, WriteNotReplicated

from . import redis_scripts as scripts
from .base import (DELETE_MEMORY, CheckpointInfo, CheckpointRecord, SessionInfo, SessionRecord, StateWrite, StorageUsage,
                   Store)
from .deadlines import Deadlines
from .redis_batch import Batcher, Call, settle, settle_error
from .redis_cluster import CLUSTER_SCHEMES, Durability, cluster_client, parse_cluster_url
from .urls import MASK, redact_url, url_secrets

__all__ = ["RedisStore", "glob_escape"]

log = structlog.get_logger("repertory.store.redis")
T = TypeVar("T")

# ClusterDown, TryAgain, a MOVED or ASK still bouncing once the resends ran out, and the cluster
# client's own errors: a failover in progress, and the call did not run
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError, ClusterDownError,
                TryAgainError, MasterDownError, RedisClusterException, MovedError, AskError)
_DRIVER_ERRORS = (*_UNREACHABLE, RedisError)

_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


def glob_escape(text: str) -> str:
    """``text`` matched literally in a SCAN/KEYS glob."""
    return text.translate(_GLOB_SPECIAL)


# the store's own URL arguments, taken off before the rest goes to redis-py
_STORE_ARGS = frozenset({"prefix", "wait", "wait_timeout"})


def _int_arg(args: dict[str, str], name: str, default: int, url: str) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise InvalidInput(f"?{name}={raw!r} in the Redis URL {url!r} must be a whole number >= 0 "
                           "(wait: replicas that must confirm each commit; wait_timeout: milliseconds)")
    return int(raw)


def _expiry_args(expires_at: float | None) -> tuple[str, str]:
    """(PEXPIREAT milliseconds or '' for none, the stored expires_at or '')."""
    if expires_at is None:
        return "", ""
    # floor: Redis may drop the keys up to 1 ms early, never keep them past expires_at
    return str(math.floor(expires_at * 1000)), repr(float(expires_at))


def _opt_float(raw: bytes | None) -> float | None:
    return float(raw) if raw else None


class RedisStore(Store):
    """Sessions in Redis at ``url`` (``redis://host:port/db`` or ``rediss://``), or on a Redis
    Cluster (``redis+cluster://host:port,host:port/``; see the ``redis_cluster`` module).

    ``?wait=N`` acknowledges a commit only once N replicas have it (else
    :class:`~repertory.errors.WriteNotReplicated`); without it a commit is acknowledged when the
    master has it, and a master that dies before replicating may lose the last ones.

    ``prefix`` (or ``?prefix=`` in the URL; default ``rp``) starts every key, so several
    deployments or test runs can share one database without seeing each other's sessions.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str | None = None,
        socket_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        health_check_interval: float = 10.0,
        max_connections: int = 64,
        retries: int = 2,
    ) -> None:
        self.url = redact_url(url)
        self._secrets = url_secrets(url)
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise InvalidInput(f"cannot read the Redis URL {self.url!r} ({self._scrub(exc)}); "
                               "use 'redis://[:password@]host:6379/0' or 'rediss://...'") from None
        self.cluster = parts.scheme in CLUSTER_SCHEMES
        if parts.scheme not in ("redis", "rediss") and not self.cluster:
            raise InvalidInput(f"not a Redis URL: {self.url!r}; use 'redis://host:6379/0', 'rediss://...' "
                               "or 'redis+cluster://host:port,host:port/'")
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in _STORE_ARGS}
        url_prefix = ours.get("prefix")
        self.wait_replicas = _int_arg(ours, "wait", 0, self.url)
        wait_timeout_ms = _int_arg(ours, "wait_timeout", 1000, self.url)
        # redis-py would pass an unknown query argument on to its connections and fail there
        client_url = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k not in _STORE_ARGS])))
        self.prefix = prefix if prefix is not None else (url_prefix or "rp")
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            raise InvalidInput(
                f"Redis key prefix {self.prefix!r} must be non-empty and free of braces "
                "(braces would move the cluster hash tag off the session key)"
            )
        # waiting `timeout` for a free connection means Redis is not answering
        self._pool_options = dict(max_connections=max_connections, timeout=socket_timeout,
                                  socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout,
                                  socket_keepalive=True, health_check_interval=health_check_interval)
        self._client_url, self._retries = client_url, retries  # for a blocking twin (redis_sync)
        self._cluster_seeds: dict[str, Any] | None = None
        self._socket_timeout = socket_timeout
        self._deadlines = Deadlines(socket_timeout)  # the lone calls' (see _on_lane)
        self._lane_pool: ConnectionPool | None = None
        if self.cluster:
            self._cluster_seeds = parse_cluster_url(parts.scheme, parts.netloc, parts.path, self.url)
            self._client: Redis | RedisCluster = cluster_client(self._cluster_seeds, self._pool_options, retries)
        else:
            try:
                pool = BlockingConnectionPool.from_url(
                    client_url, **self._pool_options,
                    # A couple of quick retries ride out a restart or failover; more would only delay
                    # the StoreUnavailable a dead Redis deserves. Commits are safe to re-send: the
                    # script recognises its own write_id.
                    retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries),
                )
                # The lone calls' connections (see _lane): no socket_timeout of redis-py's, whose
                # send runs in a task of its own (asyncio.wait_for); _send_lone bounds the whole
                # round trip with one deadline instead (stores.deadlines).
                self._lane_pool = ConnectionPool.from_url(
                    client_url, max_connections=2, socket_timeout=None, socket_connect_timeout=connect_timeout,
                    socket_keepalive=True, health_check_interval=health_check_interval,
                    retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries),
                )
            except (ValueError, TypeError) as exc:
                # from None: the driver's error may quote the URL, password and all
                raise InvalidInput(f"cannot use the Redis URL {self.url!r}: {self._scrub(exc)}; "
                                   "use 'redis://[:password@]host:6379/0' or 'rediss://...'") from None
            self._client = Redis.from_pool(pool)
        self._durability: Durability | None = None
        if self.wait_replicas:
            node_kwargs = {k: v for k, v in (self._cluster_seeds or {}).items() if k != "startup_nodes"}
            self._durability = Durability(self._client, self.wait_replicas, wait_timeout_ms, self._pool_options,
                                          node_kwargs)
        self._commit_script = self._client.register_script(scripts.COMMIT)
        self._acquire_lease_script = self._client.register_script(scripts.ACQUIRE_LEASE)
        self._release_lease_script = self._client.register_script(scripts.RELEASE_LEASE)
        self._load_script = self._client.register_script(scripts.LOAD)
        self._touch_script = self._client.register_script(scripts.TOUCH)
        self._delete_script = self._client.register_script(scripts.DELETE)
        self._put_cp_script = self._client.register_script(scripts.PUT_CHECKPOINT)
        self._list_cps_script = self._client.register_script(scripts.LIST_CHECKPOINTS)
        self._delete_cps_script = self._client.register_script(scripts.DELETE_CHECKPOINTS)
        self._usage_script = self._client.register_script(scripts.USAGE)
        self._put_step_script = self._client.register_script(scripts.PUT_STEP)
        self._drop_steps_script = self._client.register_script(scripts.DROP_STEPS)
        self._writes = Batcher(self, "commit")
        self._reads = Batcher(self, "load")
        # write ids only need to differ between writes of one session: a random
        # per-store part plus a counter is unique without a syscall per write
        self._write_ids = (f"{os.urandom(6).hex()}-{n:x}" for n in itertools.count())
        self._loaded: set[AsyncScript] = set()
        self._lanes: dict[str, AbstractConnection] = {}  # see _lane
        self._available = True
        self._out_of_memory = False  # for logging the first refusal only
        self._closed = False

    # -- keys -------------------------------------------------------------------------
    def _base(self, key: str) -> str:
        if not isinstance(key, str) or "{" in key or "}" in key:
            raise InvalidInput(
                f"session key {key!r} cannot be stored in Redis: it must be a string without "
                "braces (they delimit the cluster hash tag)"
            )
        return f"{self.prefix}:{{{key}}}"

    def tagged_key(self, tag: str, suffix: str) -> str:
        """``<prefix>:{<tag>}:<suffix>``: keys of one tag share a cluster slot (interop's own keys)."""
        return f"{self._base(tag)}:{suffix}"

    def _lease_key(self, key: str) -> str:
        return f"{self._base(key)}:lease"

    def _session_keys(self, key: str) -> tuple[str, str, str]:
        base = self._base(key)
        return f"{base}:meta", f"{base}:msgs", f"{base}:cps"

    # -- errors -----------------------------------------------------------------------
    def _scrub(self, exc: BaseException | str) -> str:
        """The driver's message with the URL's secrets masked: our messages only show the
        redacted URL, but nothing promises the driver's never quote what it was given."""
        text = str(exc)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def _unavailable(self, exc: BaseException, what: str) -> StoreUnavailable:
        if self._available:
            self._available = False
            log.warning("redis store unreachable", url=self.url, op=what,
                        error=f"{type(exc).__name__}: {self._scrub(exc)}")
        return StoreUnavailable(
            f"Redis store at {self.url} did not answer ({what}: {self._scrub(exc)}). Check that "
            "Redis is running and reachable at that URL; the operation was not acknowledged (if "
            "the connection dropped mid-request a write may still have landed: reload before retrying)"
        )

    def _failed(self, exc: RedisError, what: str) -> StoreError:
        if isinstance(exc, OutOfMemoryError):
            if not self._out_of_memory:
                self._out_of_memory = True
                log.warning("redis store out of memory: writes are refused", url=self.url, op=what,
                            error=self._scrub(exc))
            return StoreUnavailable(
                f"Redis at {self.url} is out of memory (its used memory is over maxmemory and it "
                f"may evict nothing), so it refused the {what}: nothing was stored. Free memory by "
                "deleting sessions you no longer need or giving sessions a shorter TTL, or raise "
                "Redis's maxmemory; keep maxmemory-policy noeviction, since evicting single keys "
                f"would tear sessions apart. (Redis said: {self._scrub(exc)})"
            )
        return StoreError(f"Redis store at {self.url} refused {what}: {self._scrub(exc)}")

    def _not_replicated(self, acks: object) -> WriteNotReplicated:
        got = "an error" if isinstance(acks, Exception) else f"{acks} replica(s)"
        return WriteNotReplicated(
            f"Redis at {self.url} could not confirm the commit on {self.wait_replicas} replica(s) within "
            f"{self._durability.timeout_ms if self._durability else 0} ms (got {got}), so it was not "
            "acknowledged; it may survive on the master alone. Reload the session before retrying, and "
            "check the replicas (a master whose replica died or was just promoted has none until one rejoins)"
        )

    def _wrote(self) -> None:
        if self._out_of_memory:
            self._out_of_memory = False
            log.info("redis store accepts writes again", url=self.url)

    def _mark_available(self) -> None:
        if not self._available:
            self._available = True
            log.info("redis store reachable again", url=self.url)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable(f"the Redis store at {self.url} was closed; open a new one")

    # -- round trips ------------------------------------------------------------------
    async def _execute(self, calls: list[Call], what: str) -> list[Any]:
        """One round trip; errors of single calls come back as results, like a pipeline's."""
        if what == "commit" and self._durability is not None:
            return await self._durability.execute(calls, self._not_replicated)
        if len(calls) == 1:
            # A lone call skips the pipeline machinery (measured: ~60 µs less per call).
            c = calls[0]
            try:
                return [await self._client.evalsha(c.script.sha, len(c.keys), *c.keys, *c.args)]
            except _UNREACHABLE:
                raise
            except RedisError as exc:
                return [exc]
        pipe = self._client.pipeline(transaction=False)
        for call in calls:
            # by name: redis-py refuses pipe.evalsha on a cluster, but routes the command by its keys
            pipe.execute_command("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
        return await pipe.execute(raise_on_error=False)

    async def _lane(self, what: str) -> AbstractConnection | None:
        """The connection a batcher's lone calls use (None: send through the client instead).

        Held for good, out of the client's pool: taking and returning a pooled connection, and
        the client's per-command layers around it, cost about as much as the round trip itself
        (measured: a GET ~110 µs through the client, ~67 µs on a held connection, ~30 µs
        without redis-py's per-call timeouts). Only one lone call per batcher is in flight at a
        time, so one connection each suffices. Not on a cluster (its client routes by slot) nor
        for replicated commits (WAIT follows on the master's link).
        """
        lane = self._lanes.get(what)
        if lane is None and self._lane_pool is not None and not (what == "commit" and self._durability is not None):
            lane = self._lanes[what] = await self._lane_pool.get_connection()
        return lane

    def _typed(self, exc: Exception, what: str) -> StoreError:
        """One of the driver's errors (``_DRIVER_ERRORS``) as the store's own."""
        if isinstance(exc, RedisError) and not isinstance(exc, _UNREACHABLE):
            return self._failed(exc, what)
        return self._unavailable(exc, what)

    async def _on_lane(self, lane: AbstractConnection, exchange: Callable[[], Awaitable[T]]) -> T:
        """``exchange()`` (a send and its replies on ``lane``) bounded by the socket timeout,
        and sent again on a fresh connection if the connection dropped (the client's retry
        policy). Raises the driver's errors."""
        async def round_trip() -> T:
            try:
                return await self._deadlines.run(exchange)
            except TimeoutError:
                # the send and the read drop the connection when cancelled: no late reply is read
                raise RedisTimeoutError(f"no answer within {self._socket_timeout} s") from None

        async def dropped(_: Exception) -> None:
            await lane.disconnect()

        return await lane.retry.call_with_retry(round_trip, dropped)

    async def _send_lone(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any],
                         finish: Callable[[Any], T], what: str) -> T:
        """One script call when nothing else is queued: its result, or its failure typed."""
        try:
            lane = await self._lane(what)
        except _DRIVER_ERRORS as exc:
            raise self._typed(exc, what) from exc
        if lane is None:
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            await self._send([Call(script, keys, args, finish, fut)], what)
            return await fut

        async def exchange() -> Any:
            await lane.send_packed_command(packed(("EVALSHA", script.sha, len(keys), *keys, *args)))
            return await lane.read_response()

        for attempt in range(2):
            try:
                res = await self._on_lane(lane, exchange)
            except NoScriptError as exc:
                if attempt:
                    raise self._failed(exc, what) from exc
                # the script cache was flushed; NOSCRIPT means it did not run, so resend once
                try:
                    await self._reload({script})
                except _DRIVER_ERRORS as failed:
                    raise self._typed(failed, what) from failed
                continue
            except _DRIVER_ERRORS as exc:
                raise self._typed(exc, what) from exc
            self._mark_available()
            return finish(res)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _load_lone(self, key: str, meta: str, msgs: str) -> SessionRecord | None:
        """A load when no other is queued: three plain reads in one round trip.

        The LOAD script costs Redis ~25-35 µs a call against ~5 µs for its three commands
        (measured, a load of 20 messages: 136 µs p50 by the script, 91 µs so, and 138 µs for
        a redis-py GET of the same history, unpacked). A pipeline is not atomic, so the
        session's version and write id are read before and after the messages: every commit
        is one script that changes both, so equal pairs mean the hash and the list are of one
        commit. A commit that lands in between costs another try; a session rewritten faster
        than that is read by the script, which reads at one instant. MULTI would do it in one
        try, but Redis refuses MULTI when over maxmemory, and a load must work then. Like the
        script, a load leaves the session's expiry as it is (touch refreshes it).
        """
        try:
            lane = await self._lane("load")
        except _DRIVER_ERRORS as exc:
            raise self._typed(exc, "load") from exc
        if lane is not None:
            request = pack_load(meta, msgs)

            async def exchange() -> list[Any]:
                await lane.send_packed_command(request)
                replies: list[Any] = []
                failed: ResponseError | None = None
                for _ in range(3):
                    try:
                        replies.append(await lane.read_response())
                    except ResponseError as exc:  # read every reply, or the next call reads this one's
                        failed = failed or exc
                if failed is not None:
                    raise failed
                return replies

            for _ in range(_LOAD_TRIES):
                try:
                    head, messages, tail = await self._on_lane(lane, exchange)
                except _DRIVER_ERRORS as exc:
                    raise self._typed(exc, "load") from exc
                self._mark_available()
                rec = read_record(key, head, messages, tail)
                if rec is not TORN:
                    return rec  # type: ignore[return-value]
        return await self._send_lone(self._load_script, (meta, msgs), (), lambda res: _record(key, res), "load")

    async def _send(self, batch: list[Call], what: str) -> None:
        """Run ``batch`` as one pipeline; settle every future. Never raises (but for cancellation)."""
        todo = batch
        for attempt in range(2):
            try:
                results = await self._execute(todo, what)
            except _UNREACHABLE as exc:
                err: Exception = self._unavailable(exc, what)
            except RedisError as exc:
                err = self._failed(exc, what)
            else:
                self._mark_available()
                missing: list[Call] = []
                for call, res in zip(todo, results):
                    if isinstance(res, NoScriptError) and attempt == 0:
                        missing.append(call)
                    elif isinstance(res, StoreError):
                        settle_error(call.fut, res)
                    elif isinstance(res, _UNREACHABLE):
                        settle_error(call.fut, self._unavailable(res, what))
                    elif isinstance(res, RedisError):
                        settle_error(call.fut, self._failed(res, what))
                    else:
                        settle(call.fut, call.finish, res)
                if not missing:
                    return
                # The script cache was flushed (Redis restarted, SCRIPT FLUSH, failover to a
                # replica that never saw the script): load once, re-send only those calls.
                # NOSCRIPT means they did not run, so re-sending cannot apply anything twice.
                try:
                    await self._reload({call.script for call in missing})
                except _UNREACHABLE as exc:
                    err = self._unavailable(exc, what)
                except RedisError as exc:
                    err = self._failed(exc, what)
                else:
                    todo = missing
                    continue
            for call in todo:
                settle_error(call.fut, err)
            return

    async def _reload(self, scripts: set[AsyncScript]) -> None:
        for script in scripts:
            # the first miss per script is the normal cold start; a later one means Redis lost
            # its script cache (restart, failover), which is worth a line in the log
            if script in self._loaded:
                log.info("redis script cache was flushed; reloading", url=self.url, sha=script.sha)
            else:
                log.debug("loading redis script", url=self.url, sha=script.sha)
            script.sha = await self._client.script_load(script.script)
            self._loaded.add(script)

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One round trip outside the batches, its failures typed as the store's own."""
        self._check_open()
        try:
            res = await call()
        except _UNREACHABLE as exc:
            raise self._unavailable(exc, what) from exc
        except RedisError as exc:
            raise self._failed(exc, what) from exc
        self._mark_available()
        return res

    async def _eval(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any], what: str) -> Any:
        """One script call outside the batches (the verbs that are not on the hot path)."""
        async def call() -> Any:
            try:
                return await self._client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                await self._reload({script})
                return await self._client.evalsha(script.sha, len(keys), *keys, *args)

        return await self._call(what, call)

    # -- hooks for keys beside the sessions' (repertory.interop) -------------------------
    def register_script(self, source: str) -> AsyncScript:
        """A Lua script for :meth:`run_script` (loaded on first use, reloaded after a flush)."""
        return self._client.register_script(source)

    async def run_script(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any], what: str) -> Any:
        """One script call, one round trip; failures typed as the store's own."""
        return await self._eval(script, keys, args, what)

    async def run_command(self, what: str, *args: Any) -> Any:
        """One plain command (``"LRANGE", key, 0, -1``), failures typed as the store's own."""
        return await self._call(what, lambda: self._client.execute_command(*args))

    async def scan_keys(self, pattern: str) -> list[bytes]:
        """Names of the keys matching the glob ``pattern`` (SCAN: no blocking, no global index)."""
        async def scan() -> list[bytes]:
            return list({name async for name in self._client.scan_iter(match=pattern, count=1000)})

        return await self._call("scan", scan)

    # -- the verbs --------------------------------------------------------------------
    async def load(self, key: str) -> SessionRecord | None:
        self._check_open()
        meta, msgs, _ = self._session_keys(key)
        return await self._reads.submit(self._load_script, (meta, msgs), (), lambda res: _record(key, res),
                                        lambda: self._load_lone(key, meta, msgs))

    async def commit(self, write: StateWrite) -> int:
        self._check_open()
        keys = (*self._session_keys(write.key), self._lease_key(write.key))
        expire_ms, expires_at = _expiry_args(write.expires_at)
        args = (
            write.expected_revision, write.meta, write.base_count, "1" if write.replace else "0",
            repr(float(write.updated_at)), expire_ms, expires_at, next(self._write_ids),
            f"{self._base(write.key)}:cp:", write.first_revision, write.owner or "",
            *_checkpoint_args(write.checkpoint), *write.messages,
        )

        def finish(res: list[int]) -> int:
            ok, version = res
            if ok == 2:
                raise ConcurrentUpdate(f"session {write.key!r} is leased to another runtime; wait for its "
                                       "turn and retry")
            if not ok:
                raise ConcurrentUpdate(
                    f"session {write.key!r} is at revision {version}, the write expected "
                    f"{write.expected_revision}; reload the session and retry"
                )
            self._wrote()
            return int(version)

        return await self._writes.submit(self._commit_script, keys, args, finish)

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> float:
        self._check_open()
        res = await self._eval(self._acquire_lease_script, (self._lease_key(key),),
                               (owner, max(int(ttl * 1000), 1)), "acquire_lease")
        return int(res) / 1000

    async def release_lease(self, key: str, owner: str) -> None:
        self._check_open()
        await self._eval(self._release_lease_script, (self._lease_key(key),), (owner,), "release_lease")

    async def lease_holder(self, key: str) -> str | None:
        holder = await self._call("lease_holder", lambda: self._client.get(self._lease_key(key)))
        return holder.decode() if isinstance(holder, bytes) else holder

    def _steps_key(self, key: str, turn_id: str) -> str:
        return f"{self._base(key)}:steps:{turn_id}"

    async def put_step(self, key: str, turn_id: str, seq: int, data: bytes, expires_at: float | None) -> None:
        self._check_open()
        name, index = self._steps_key(key, turn_id), f"{self._base(key)}:stepturns"
        expire_ms, _ = _expiry_args(expires_at)

        if self.cluster:
            await self._eval(self._put_step_script, (name, index), (str(seq), data, turn_id, expire_ms), "put_step")
            self._wrote()
            return

        async def put() -> None:
            # One MULTI on one slot: the step and its index entry land together, with the
            # session's expiry (or none, as the session's).
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(name, str(seq), data)
            pipe.sadd(index, turn_id)
            for k in (name, index):
                if expire_ms:
                    pipe.pexpireat(k, int(expire_ms))
                else:
                    pipe.persist(k)
            await pipe.execute()

        await self._call("put_step", put)
        self._wrote()

    async def load_steps(self, key: str, turn_id: str) -> list[tuple[int, bytes]]:
        self._check_open()
        name = self._steps_key(key, turn_id)
        found = await self._call("load_steps", lambda: self._client.hgetall(name))
        return sorted((int(k), v) for k, v in found.items())

    async def drop_steps(self, key: str, turn_id: str) -> None:
        self._check_open()
        name, index = self._steps_key(key, turn_id), f"{self._base(key)}:stepturns"

        if self.cluster:
            await self._eval(self._drop_steps_script, (name, index), (turn_id,), "drop_steps")
            return

        async def drop() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(name)
            pipe.srem(index, turn_id)
            await pipe.execute()

        await self._call("drop_steps", drop)

    async def _drop_all_steps(self, key: str) -> None:
        index = f"{self._base(key)}:stepturns"
        turns = await self._call("delete", lambda: self._client.smembers(index))
        if turns:
            names = [self._steps_key(key, t.decode()) for t in turns]
            await self._call("delete", lambda: self._client.delete(*names, index))

    async def delete(self, key: str, op_id: str | None = None) -> bool:
        await self._drop_all_steps(key)
        res = await self._eval(self._delete_script, (*self._session_keys(key), f"{self._base(key)}:deleted"),
                               (f"{self._base(key)}:cp:", op_id or "", int(DELETE_MEMORY)),
                               "delete")
        return bool(res)

    async def touch(self, key: str, expires_at: float | None) -> bool:
        """Refresh the session's expiry. When Redis is out of memory the refresh is skipped with
        a warning (the session keeps its previous expiry) rather than raised: reads refresh the
        TTL, and a read must not fail because memory is short."""
        expire_ms, stored = _expiry_args(expires_at)
        keys = self._session_keys(key)
        try:
            res = await self._eval(self._touch_script, keys, (expire_ms, stored, f"{self._base(key)}:cp:"),
                                   "touch")
        except StoreUnavailable as exc:
            if not isinstance(exc.__cause__, OutOfMemoryError):
                raise
            log.warning("redis out of memory: session expiry not refreshed", url=self.url, session=key)
            try:
                return bool(await self._client.exists(keys[0]))
            except _UNREACHABLE as lost:
                raise self._unavailable(lost, "touch") from lost
            except RedisError as failed:
                raise self._failed(failed, "touch") from failed
        return bool(res)

    async def list_sessions(
        self, *, prefix: str = "", updated_before: float | None = None, limit: int | None = None
    ) -> list[SessionInfo]:
        self._check_open()
        head, tail = f"{self.prefix}:{{", "}:meta"
        pattern = f"{glob_escape(head)}{glob_escape(prefix)}*{tail}"
        try:
            names: set[bytes] = set()  # SCAN may return a key twice
            async for name in self._client.scan_iter(match=pattern, count=1000, _type="HASH"):
                names.add(name)
            found: list[tuple[str, list[Any]]] = []
            ordered = sorted(names)
            for start in range(0, len(ordered), 1000):
                pipe = self._client.pipeline(transaction=False)
                chunk = []
                for name in ordered[start:start + 1000]:
                    text = name.decode("utf-8", "surrogateescape")
                    key = text[len(head):-len(tail)]
                    if "{" in key or "}" in key:  # a checkpoint id that happens to end in "}:meta"
                        continue
                    chunk.append(key)
                    pipe.hmget(name, "version", "n_messages", "updated_at", "expires_at")
                found.extend(zip(chunk, await pipe.execute()))
        except _UNREACHABLE as exc:
            raise self._unavailable(exc, "list_sessions") from exc
        except RedisError as exc:
            raise self._failed(exc, "list_sessions") from exc
        self._mark_available()
        now = time.time()
        out: list[SessionInfo] = []
        for key, (version, n, updated, expires) in found:
            if version is None:  # expired or deleted between SCAN and HMGET
                continue
            info = SessionInfo(key, int(version), int(n), float(updated), _opt_float(expires))
            if info.expires_at is not None and info.expires_at <= now:
                continue
            if updated_before is not None and info.updated_at >= updated_before:
                continue
            out.append(info)
        out.sort(key=lambda i: i.updated_at)
        return out[:limit] if limit is not None else out

    async def put_checkpoint(self, record: CheckpointRecord) -> None:
        i = record.info
        base = self._base(i.key)
        await self._eval(
            self._put_cp_script, (f"{base}:meta", f"{base}:cps", f"{base}:cp:{i.cp_id}"),
            (i.cp_id, i.kind, i.seq, repr(float(i.created_at)), i.turn, i.label, record.data),
            "put_checkpoint",
        )
        self._wrote()

    async def get_checkpoint(self, key: str, cp_id: str) -> CheckpointRecord | None:
        name = f"{self._base(key)}:cp:{cp_id}"
        h = await self._call("get_checkpoint", lambda: self._client.hgetall(name))
        if not h or b"data" not in h:
            return None
        info = CheckpointInfo(
            key, cp_id, h[b"kind"].decode(), int(h[b"seq"]), float(h[b"created_at"]), int(h[b"turn"]),
            h.get(b"label", b"").decode(),
        )
        return CheckpointRecord(info, h[b"data"])

    async def list_checkpoints(self, key: str, kind: str | None = None) -> list[CheckpointInfo]:
        base = self._base(key)
        rows = await self._eval(self._list_cps_script, (f"{base}:cps",), (f"{base}:cp:", kind or ""),
                                "list_checkpoints")
        infos = [
            CheckpointInfo(key, cp_id.decode(), k.decode(), int(seq), float(created), int(turn), label.decode())
            for cp_id, k, seq, created, turn, label in rows
        ]
        # the index is scored by created_at only; seq breaks ties as the interface promises
        infos.sort(key=lambda i: (i.created_at, i.seq))
        return infos

    async def delete_checkpoints(self, key: str, cp_ids: list[str]) -> int:
        if not cp_ids:
            return 0
        base = self._base(key)
        return int(await self._eval(self._delete_cps_script, (f"{base}:cps",), (f"{base}:cp:", *cp_ids),
                                    "delete_checkpoints"))

    async def usage(self, keys: Sequence[str]) -> dict[str, StorageUsage]:
        """One script per session (sums sizes server-side), pipelined 500 at a time."""
        out: dict[str, StorageUsage] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]

            async def send(chunk: list[str]) -> list[Any]:
                pipe = self._client.pipeline(transaction=False)
                for key in chunk:
                    base = self._base(key)
                    pipe.execute_command("EVALSHA", self._usage_script.sha, 3, f"{base}:meta", f"{base}:msgs", f"{base}:cps",
                                 f"{base}:cp:")
                return await pipe.execute()

            async def call(chunk: list[str] = chunk) -> list[Any]:
                try:
                    return await send(chunk)
                except NoScriptError:
                    await self._reload({self._usage_script})
                    return await send(chunk)

            for key, res in zip(chunk, await self._call("usage", call)):
                if res is not None:
                    out[key] = StorageUsage(int(res[1]), int(res[0]), int(res[2]))
        return out

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # let writes already queued reach Redis (or fail) before the pool goes away; their
        # callers hear the outcome, so close() itself has nothing to report
        for batcher in (self._writes, self._reads):
            try:
                await batcher.drain()
            except Exception:
                pass
        self._lanes.clear()
        if self._lane_pool is not None:
            await self._lane_pool.disconnect()
        if self._durability is not None:
            await self._durability.close()
        await self._client.aclose()


def _checkpoint_args(cp: CheckpointRecord | None) -> tuple[Any, ...]:
    """COMMIT's seven checkpoint arguments (an empty id: no checkpoint)."""
    if cp is None:
        return _NO_CHECKPOINT
    i = cp.info
    return (i.cp_id, i.kind, i.seq, repr(float(i.created_at)), i.turn, i.label, cp.data)


_NO_CHECKPOINT = ("", "", 0, "", 0, "", b"")


# pipelined reads of a load before it falls back to the script (see RedisStore._load_lone)
_LOAD_TRIES = 2
_HEAD_FIELDS = ("version", "write_id", "meta", "n_messages", "updated_at", "expires_at")
TORN = object()  # read_record's answer when a commit came between the reads


def load_commands(meta: str, msgs: str) -> list[tuple[Any, ...]]:
    """A load's three reads: the hash, the messages, and the hash's version and write id again."""
    return [("HMGET", meta, *_HEAD_FIELDS), ("LRANGE", msgs, 0, -1), ("HMGET", meta, "version", "write_id")]


def packed(*cmds: tuple[Any, ...]) -> bytes:
    """Commands as one write, as redis-py would send them, packed by hiredis in one C call each
    (redis-py's per-argument layers cost ~20 µs of a ~90 µs load). DataError, as redis-py's,
    for an argument that is not str, bytes, int or float."""
    try:
        return b"".join([pack_command(c) for c in cmds])
    except TypeError as exc:
        raise DataError(f"{exc} Convert it first.") from None


def pack_load(meta: str, msgs: str) -> bytes:
    """:func:`load_commands` packed for the wire, as one write."""
    return packed(*load_commands(meta, msgs))


def read_record(key: str, head: list[Any], messages: list[bytes], tail: list[Any]) -> SessionRecord | None | object:
    """The session from the replies to :func:`load_commands`, or :data:`TORN` if the hash and
    the list may be of different commits (or the session expired or went in between)."""
    version, write_id, meta, n, updated_at, expires_at = head
    if version is None:
        return None
    if tail[0] != version or tail[1] != write_id:
        return TORN
    try:
        n = int(n)
    except (TypeError, ValueError):
        raise _damaged(key) from None
    return _record(key, [version, meta, n, updated_at, expires_at, messages if len(messages) <= n else messages[:n]])


def _record(key: str, res: list[Any] | None) -> SessionRecord | None:
    if res is None:
        return None
    version, meta, _n, updated_at, expires_at, messages = res
    try:
        revision, updated, expires = int(version), float(updated_at), _opt_float(expires_at)
    except (TypeError, ValueError):
        raise _damaged(key) from None
    if expires is not None and expires <= time.time():
        return None  # within the last millisecond before Redis drops it
    return SessionRecord(key, revision, meta, list(messages), updated, expires)


def _damaged(key: str) -> CorruptState:
    return CorruptState(f"session {key!r} has a damaged record in Redis (its version, n_messages or updated_at "
                        "is missing or not a number); restore it from a checkpoint or a backup, or delete it")
