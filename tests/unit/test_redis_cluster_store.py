"""The Redis store on a real Redis Cluster (3 masters, 3 replicas of Debian's redis-server):
the store conformance suite, replicated commits (``?wait=N``) and failovers mid-run.

One cluster serves the whole module (it takes seconds to form); every test has its own prefix.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from redis_cluster import redis_cluster  # noqa: F401  (the module's cluster fixture)
from repertory.errors import ConcurrentUpdate, InvalidInput, StoreUnavailable, WriteNotReplicated
from repertory.stores.base import StateWrite
from repertory.stores.factory import open_store
from repertory.stores.redis import RedisStore
from test_store_conformance import *  # noqa: F401,F403  (the conformance suite, run on the cluster)

pytestmark = [pytest.mark.redis, pytest.mark.redis_cluster]

# The long form repeats each failover; CI runs one of each (see .ci/run).
FAILOVER_ROUNDS = int(os.environ.get("REPERTORY_CLUSTER_FAILOVER_ROUNDS", "1"))


@pytest.fixture
async def store(redis_cluster):  # noqa: F811  (replaces the conformance suite's fixture)
    s = RedisStore(redis_cluster.url(f"rptest-{uuid.uuid4().hex}"))
    # the cluster client's first command learns the slots and the command table (~0.3 s on a
    # loaded machine): not inside the suite's sub-second expiry windows
    await s._client.initialize()
    yield s
    await s.close()


def test_the_cluster_url_is_read_and_checked():
    s = RedisStore("redis+cluster://u:sec%40ret@10.0.0.1:7000,10.0.0.2:7001/?prefix=p&wait=1&wait_timeout=250")
    assert s.cluster and s.prefix == "p" and s.wait_replicas == 1
    assert "sec" not in s.url and [(n.host, n.port) for n in s._cluster_seeds["startup_nodes"]] == [
        ("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert s._cluster_seeds["password"] == "sec@ret"
    with pytest.raises(InvalidInput, match="database 0"):
        RedisStore("redis+cluster://127.0.0.1:7000/3")
    with pytest.raises(InvalidInput, match="cluster node"):
        RedisStore("redis+cluster://127.0.0.1:x/")
    with pytest.raises(InvalidInput, match="whole number"):
        RedisStore("redis://127.0.0.1:6379/0?wait=one")
    plain = RedisStore("redis://127.0.0.1:6379/15?prefix=q")
    assert not plain.cluster and plain.wait_replicas == 0 and plain._client_url == "redis://127.0.0.1:6379/15"
    assert isinstance(open_store("redis+cluster://127.0.0.1:7000/"), RedisStore)


async def test_every_key_of_a_session_lands_on_one_node(redis_cluster, store):
    from repertory.stores.base import CheckpointInfo, CheckpointRecord

    await store.commit(StateWrite("k", 0, b"m", [b"a"]))
    await store.put_checkpoint(CheckpointRecord(CheckpointInfo("k", "c1", "checkpoint", 1, 1.0, 1), b"D"))
    await store.put_step("k", "t", 0, b"step", None)
    await store.acquire_lease("k", "A", 5.0)
    names = await store.scan_keys(f"{store.prefix}:*")
    assert len(names) == 7  # meta, msgs, cps, cp:c1, steps:t, stepturns, lease
    assert len({redis_cluster.master_of(n.decode()) for n in names}) == 1


async def test_a_replicated_commit_is_acknowledged_once_a_replica_has_it(redis_cluster):
    s = RedisStore(redis_cluster.url(f"rptest-{uuid.uuid4().hex}", wait=1))
    try:
        rev = 0
        for i in range(5):
            rev = await s.commit(StateWrite("k", rev, b"m", [b"%d" % i], base_count=i))
        writes = [s.commit(StateWrite(f"s{i}", 0, b"m", [b"x"])) for i in range(50)]  # batched, all nodes
        assert await asyncio.gather(*writes) == [1] * 50
        assert (await s.load("k")).messages == [b"0", b"1", b"2", b"3", b"4"]
    finally:
        await s.close()


async def test_a_commit_more_replicas_than_exist_must_confirm_is_not_acknowledged(redis_cluster):
    s = RedisStore(redis_cluster.url(f"rptest-{uuid.uuid4().hex}", wait=2, wait_timeout=50))
    try:
        with pytest.raises(WriteNotReplicated, match="2 replica"):
            await s.commit(StateWrite("k", 0, b"m", [b"x"]))
    finally:
        await s.close()


async def test_wait_on_a_single_redis_without_replicas_refuses_to_acknowledge():
    prefix = f"rptest-{uuid.uuid4().hex}"
    s = RedisStore(f"redis://127.0.0.1:6379/15?prefix={prefix}&wait=1&wait_timeout=20")
    try:
        with pytest.raises(WriteNotReplicated):
            await s.commit(StateWrite("k", 0, b"m", [b"x"]))
        assert isinstance(WriteNotReplicated("x"), StoreUnavailable)
    finally:
        await s.close()
        from redis_server import drop_redis_keys

        await drop_redis_keys(prefix)


async def _write_turns(store: RedisStore, key: str, acked: list[bytes], stop: asyncio.Event,
                       refused: list[Exception]) -> None:
    """Append one message per turn until ``stop``; ``acked`` gets the ones the store acknowledged,
    ``refused`` the errors of the others."""
    rev = n = i = 0
    while not stop.is_set():
        msg = f"{key}-{i}".encode()
        i += 1
        try:
            rev = await store.commit(StateWrite(key, rev, b"m", [msg], base_count=n))
            n += 1
            acked.append(msg)
        except (StoreUnavailable, ConcurrentUpdate) as exc:
            refused.append(exc)
            # not acknowledged (it may or may not have landed): learn what the store has
            try:
                rec = await store.load(key)
            except StoreUnavailable:
                await asyncio.sleep(0.05)
                continue
            rev, n = (rec.revision, len(rec.messages)) if rec else (0, 0)


async def _until(check, what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(180)
async def test_no_acknowledged_turn_is_lost_when_masters_fail_over_mid_run(redis_cluster):
    url = redis_cluster.url(f"rptest-{uuid.uuid4().hex}", wait=1, wait_timeout=500)
    store = RedisStore(url)
    keys = [f"s{i}" for i in range(6)]
    acked: dict[str, list[bytes]] = {k: [] for k in keys}
    stop = asyncio.Event()
    refused: list[Exception] = []
    writers = [asyncio.create_task(_write_turns(store, k, acked[k], stop, refused)) for k in keys]
    target = f"{store.prefix}:{{{keys[0]}}}:meta"

    async def progress(key: str = keys[0]):
        """Until the writer of ``key`` gets a few more turns acknowledged."""
        start = len(acked[key])

        async def moved() -> bool:
            return len(acked[key]) >= start + 3
        await _until(moved, f"three more acknowledged turns of {key}")

    try:
        await progress()
        for _ in range(FAILOVER_ROUNDS):
            # graceful: the replica takes over after catching up
            await asyncio.to_thread(redis_cluster.failover, redis_cluster.master_of(target))
            await progress()
            # a crash: SIGKILL the master, its replica is promoted after the node timeout
            dead = redis_cluster.master_of(target)
            await asyncio.to_thread(redis_cluster.kill, dead)
            await asyncio.to_thread(redis_cluster.restart, dead)  # a replica again, so WAIT 1 can succeed
            await progress()
    finally:
        stop.set()
        await asyncio.gather(*writers)
        await store.close()
    # a new store (a restarted runtime) reads every acknowledged turn, each exactly once, in order
    fresh = RedisStore(url)
    try:
        for key in keys:
            rec = await fresh.load(key)
            assert rec is not None and acked[key], key
            got = rec.messages
            assert len(got) == len(set(got)), f"{key}: a turn is stored twice"
            missing = [m for m in acked[key] if m not in got]
            assert not missing, f"{key}: acknowledged turns lost: {missing}"
            assert [m for m in got if m in set(acked[key])] == acked[key]
    finally:
        await fresh.close()


async def test_usage_and_the_blocking_twin_reach_every_master(store):
    from repertory.stores.redis_sync import SyncRedis

    keys = [f"u{i}" for i in range(12)]  # spread over the three masters
    await asyncio.gather(*(store.commit(StateWrite(k, 0, b"meta", [b"abc", b"de"])) for k in keys))
    usage = await store.usage([*keys, "absent"])
    assert sorted(usage) == sorted(keys) and {(u.messages, u.meta) for u in usage.values()} == {(5, 4)}
    twin = SyncRedis(store)
    try:
        names = await asyncio.to_thread(twin.scan_keys, f"{store.prefix}:*:meta")
        assert len(names) == len(keys)
        script = twin.register_script("return redis.call('HGET', KEYS[1], 'n_messages')")
        assert await asyncio.to_thread(twin.run_script, script, [f"{store.prefix}:{{u3}}:meta"], [], "test") == b"2"
    finally:
        twin.close()
