"""What only the Redis store does: key layout, TTL, script cache, batching, outages.

The shared Redis on 127.0.0.1:6379 is used only under a per-test key prefix in database 15;
tests that stop or flush a server start a private ``redis-server`` of their own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from repertory.errors import ConcurrentUpdate, InvalidInput, StoreError, StoreUnavailable
from repertory.stores.base import CheckpointInfo, CheckpointRecord, StateWrite
from repertory.stores.factory import open_store
from repertory.stores.redis import RedisStore
from redis_server import PrivateRedis, drop_redis_keys  # noqa: F401  (fixture private_redis comes from conftest)

pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/15"
KEY = "user@example.com/s:1.a-b"


@pytest.fixture
def prefix() -> str:
    return f"rptest-{uuid.uuid4().hex}"


@pytest.fixture
async def raw():
    """A plain client on the test database, for looking at what the store wrote."""
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def store(prefix):
    s = RedisStore(REDIS_URL, prefix=prefix)
    try:
        yield s
    finally:
        await s.close()
        await drop_redis_keys(prefix, REDIS_URL)


async def _keys(raw: aioredis.Redis, prefix: str) -> set[str]:
    return {n.decode() async for n in raw.scan_iter(match=f"{prefix}:*", count=1000)}


def _cp(key: str, cp_id: str, seq: int = 1, created_at: float = 100.0) -> CheckpointRecord:
    return CheckpointRecord(CheckpointInfo(key, cp_id, "checkpoint", seq, created_at, seq, f"label {cp_id}"), b"DATA")


# -- a private redis-server ---------------------------------------------------------------
# -- layout --------------------------------------------------------------------------------
async def test_keys_put_the_session_in_one_hash_slot(store, raw, prefix):
    await store.commit(StateWrite(KEY, 0, b"meta", [b"m0", b"m1"], updated_at=1.0, expires_at=time.time() + 60))
    await store.put_checkpoint(_cp(KEY, "c1"))
    base = f"{prefix}:{{{KEY}}}"
    assert await _keys(raw, prefix) == {f"{base}:meta", f"{base}:msgs", f"{base}:cps", f"{base}:cp:c1"}
    assert len({key_slot(name.encode()) for name in await _keys(raw, prefix)}) == 1
    assert await raw.type(f"{base}:meta") == b"hash"
    assert await raw.lrange(f"{base}:msgs", 0, -1) == [b"m0", b"m1"]
    meta = await raw.hgetall(f"{base}:meta")
    assert (meta[b"version"], meta[b"meta"], meta[b"n_messages"]) == (b"1", b"meta", b"2")
    assert await raw.zrange(f"{base}:cps", 0, -1) == [b"c1"]


async def test_session_keys_with_braces_are_refused(store):
    with pytest.raises(InvalidInput, match="braces"):
        await store.commit(StateWrite("a{b}", 0, b"m"))
    with pytest.raises(InvalidInput):
        RedisStore(REDIS_URL, prefix="bad{prefix}")


def test_url_prefix_and_redaction():
    s = open_store("redis://:s3cret@127.0.0.1:6379/15?prefix=fromurl")
    assert isinstance(s, RedisStore) and s.prefix == "fromurl"
    assert "s3cret" not in s.url
    assert RedisStore("rediss://127.0.0.1:6380/0").prefix == "rp"
    assert RedisStore(REDIS_URL + "?prefix=a", prefix="b").prefix == "b"


async def test_list_sessions_treats_glob_characters_literally(store):
    for i, key in enumerate(["a*b", "a?c", "a[x]", "ab", "b"]):
        await store.commit(StateWrite(key, 0, b"m", [b"x"], updated_at=float(i)))
    assert [i.key for i in await store.list_sessions(prefix="a*")] == ["a*b"]
    assert [i.key for i in await store.list_sessions(prefix="a[")] == ["a[x]"]
    assert [i.key for i in await store.list_sessions(prefix="a")] == ["a*b", "a?c", "a[x]", "ab"]


async def test_long_histories_survive_the_lua_stack_limit(store):
    messages = [b"m%d" % i for i in range(2500)]
    await store.commit(StateWrite("long", 0, b"m", messages))
    await store.commit(StateWrite("long", 1, b"m", [b"tail"], base_count=2500))
    rec = await store.load("long")
    assert rec.messages == [*messages, b"tail"]


# -- TTL -----------------------------------------------------------------------------------
async def _until(predicate, what: str, timeout: float = 10.0) -> None:
    """Poll the async ``predicate`` until it is true (Redis expires keys on its own time)."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.02)


async def test_session_expires_with_its_ttl(store, raw, prefix):
    await store.commit(StateWrite(KEY, 0, b"m", [b"a"], expires_at=time.time() + 0.5))
    await store.put_checkpoint(_cp(KEY, "c1"))
    assert await store.load(KEY) is not None

    async def gone():
        return await store.load(KEY) is None

    await _until(gone, "the session to expire")
    assert await store.list_sessions() == []
    assert await _keys(raw, prefix) == set()


async def test_touch_refreshes_every_key(store, raw, prefix):
    first = time.time() + 0.5
    await store.commit(StateWrite(KEY, 0, b"m", [b"a"], expires_at=first))
    await store.put_checkpoint(_cp(KEY, "c1"))
    assert await store.touch(KEY, time.time() + 3) is True
    while time.time() <= first + 0.05:  # past the first expiry
        await asyncio.sleep(0.02)
    rec = await store.load(KEY)
    assert rec is not None and rec.expires_at > time.time() + 1
    names = await _keys(raw, prefix)
    assert len(names) == 4
    for name in names:
        assert 1000 < await raw.pttl(name) <= 3000, name
    assert await store.touch("never-was", time.time() + 3) is False


async def test_no_expiry_persists_every_key(store, raw, prefix):
    await store.commit(StateWrite(KEY, 0, b"m", [b"a"], expires_at=None))
    await store.put_checkpoint(_cp(KEY, "c1"))
    assert {await raw.ttl(n) for n in await _keys(raw, prefix)} == {-1}
    # a session with a TTL that is pinned later keeps all its keys
    await store.commit(StateWrite(KEY, 1, b"m", [b"b"], base_count=1, expires_at=time.time() + 60))
    assert {await raw.ttl(n) > 0 for n in await _keys(raw, prefix)} == {True}
    await store.commit(StateWrite(KEY, 2, b"m", [b"c"], base_count=2, expires_at=None))
    assert {await raw.ttl(n) for n in await _keys(raw, prefix)} == {-1}
    await store.touch(KEY, time.time() + 60)
    assert await store.touch(KEY, None) is True
    assert {await raw.ttl(n) for n in await _keys(raw, prefix)} == {-1}
    assert (await store.load(KEY)).expires_at is None


async def test_a_checkpoint_committed_with_the_state_expires_with_it(store, raw, prefix):
    at = time.time() + 100
    await store.commit(StateWrite(KEY, 0, b"m", [b"a"], expires_at=at, checkpoint=_cp(KEY, "c1")))
    base = f"{prefix}:{{{KEY}}}"
    assert await raw.pexpiretime(f"{base}:cp:c1") == await raw.pexpiretime(f"{base}:meta") == int(at * 1000)
    assert await raw.pexpiretime(f"{base}:cps") == int(at * 1000)
    await store.commit(StateWrite(KEY, 1, b"m", [], base_count=1, checkpoint=_cp(KEY, "c2", seq=2)))  # no expiry
    assert {await raw.ttl(n) for n in await _keys(raw, prefix)} == {-1}
    assert [c.cp_id for c in await store.list_checkpoints(KEY)] == ["c1", "c2"]
    assert (await store.get_checkpoint(KEY, "c2")).data == b"DATA"


async def test_checkpoints_expire_with_their_session(store, raw, prefix):
    at = time.time() + 100
    await store.commit(StateWrite(KEY, 0, b"m", [b"a"], expires_at=at))
    await store.put_checkpoint(_cp(KEY, "c1"))
    base = f"{prefix}:{{{KEY}}}"
    assert await raw.pexpiretime(f"{base}:cp:c1") == await raw.pexpiretime(f"{base}:meta") == int(at * 1000)
    # a later commit moves the checkpoints' expiry along with the session's
    await store.commit(StateWrite(KEY, 1, b"m", [], base_count=1, expires_at=time.time() + 1))
    await store.put_checkpoint(_cp(KEY, "c2", seq=2))
    assert 0 < await raw.pttl(f"{base}:cp:c1") <= 1000
    assert 0 < await raw.pttl(f"{base}:cp:c2") <= 1000

    async def all_gone():
        return await _keys(raw, prefix) == set()

    await _until(all_gone, "every key of the session to expire")
    assert await store.get_checkpoint(KEY, "c1") is None
    assert await store.list_checkpoints(KEY) == []
    assert await _keys(raw, prefix) == set()


async def test_delete_removes_checkpoints(store, raw, prefix):
    await store.commit(StateWrite(KEY, 0, b"m", [b"a"]))
    await store.put_checkpoint(_cp(KEY, "c1"))
    await store.put_checkpoint(_cp(KEY, "c2", seq=2))
    assert await store.delete(KEY) is True
    assert await _keys(raw, prefix) == set()


async def test_checkpoints_sort_by_created_at_then_seq(store):
    await store.commit(StateWrite(KEY, 0, b"m"))
    await store.put_checkpoint(_cp(KEY, "zz", seq=1, created_at=5.0))
    await store.put_checkpoint(_cp(KEY, "aa", seq=2, created_at=5.0))
    await store.put_checkpoint(_cp(KEY, "mm", seq=3, created_at=1.0))
    assert [c.cp_id for c in await store.list_checkpoints(KEY)] == ["mm", "zz", "aa"]
    await store.put_checkpoint(_cp(KEY, "mm", seq=3, created_at=9.0))  # same id replaces
    assert [c.cp_id for c in await store.list_checkpoints(KEY)] == ["zz", "aa", "mm"]


# -- writes ----------------------------------------------------------------------------------
async def test_concurrent_commits_share_round_trips(store, monkeypatch):
    sizes: list[int] = []
    send, send_lone = store._send, store._send_lone

    async def counting_send(batch, what):
        sizes.append(len(batch))
        await send(batch, what)

    async def counting_send_lone(*call):
        sizes.append(1)  # the first caller, sent at once on the batcher's own connection
        return await send_lone(*call)

    monkeypatch.setattr(store, "_send", counting_send)
    monkeypatch.setattr(store, "_send_lone", counting_send_lone)
    versions = await asyncio.gather(*[store.commit(StateWrite(f"s{i}", 0, b"m", [b"x"] * 3)) for i in range(200)])
    assert versions == [1] * 200
    assert sum(sizes) == 200 and len(sizes) < 200 and max(sizes) > 1
    loaded = await asyncio.gather(*[store.load(f"s{i}") for i in range(200)])
    assert all(r.messages == [b"x"] * 3 for r in loaded)


async def test_one_of_twenty_concurrent_writers_wins(store):
    await store.commit(StateWrite(KEY, 0, b"m", [b"a"]))
    results = await asyncio.gather(
        *[store.commit(StateWrite(KEY, 1, f"w{i}".encode(), [f"x{i}".encode()], base_count=1)) for i in range(20)],
        return_exceptions=True)
    winners = [i for i, r in enumerate(results) if r == 2]
    losers = [r for r in results if isinstance(r, ConcurrentUpdate)]
    assert len(winners) == 1 and len(losers) == 19
    assert KEY in str(losers[0]) and "revision 2" in str(losers[0]) and "expected 1" in str(losers[0])
    assert "reload" in str(losers[0])
    rec = await store.load(KEY)
    assert (rec.revision, rec.meta, rec.messages) == (2, f"w{winners[0]}".encode(), [b"a", f"x{winners[0]}".encode()])


async def test_a_resent_commit_is_recognised(store, monkeypatch):
    # What the client library does after a dropped connection: the same write arrives twice.
    monkeypatch.setattr(store, "_write_ids", iter(["w-1", "w-1", "w-2"]))
    write = StateWrite(KEY, 0, b"m", [b"a"])
    assert await store.commit(write) == 1
    assert await store.commit(write) == 1
    assert (await store.load(KEY)).messages == [b"a"]
    with pytest.raises(ConcurrentUpdate):  # a different write with a stale revision still loses
        await store.commit(write)


async def test_closed_store_refuses_work(prefix):
    s = RedisStore(REDIS_URL, prefix=prefix)
    await s.commit(StateWrite(KEY, 0, b"m"))
    await s.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await s.load(KEY)
    await drop_redis_keys(prefix, REDIS_URL)


# -- the script cache and outages (private servers) -----------------------------------------
async def test_script_cache_flush_is_survived(private_redis):
    s = RedisStore(private_redis.url, prefix="rp")
    try:
        await s.commit(StateWrite(KEY, 0, b"m", [b"a"]))
        await s.put_checkpoint(_cp(KEY, "c1"))
        client = aioredis.Redis.from_url(private_redis.url)
        try:
            await client.script_flush()
        finally:
            await client.aclose()
        # batched path, with several callers missing the script at once
        results = await asyncio.gather(
            s.commit(StateWrite(KEY, 1, b"m", [b"b"], base_count=1)),
            *[s.commit(StateWrite(f"other{i}", 0, b"m")) for i in range(5)],
            s.load(KEY),
        )
        assert results[:6] == [2, 1, 1, 1, 1, 1]
        assert results[6].revision in (1, 2)
        assert (await s.load(KEY)).messages == [b"a", b"b"]
        assert [c.cp_id for c in await s.list_checkpoints(KEY)] == ["c1"]  # direct path
    finally:
        await s.close()


async def test_lone_calls_survive_a_script_flush(private_redis):
    # One caller at a time: every call takes the lone path (a connection of its own per batcher).
    s = RedisStore(private_redis.url, prefix="rp")
    try:
        assert await s.commit(StateWrite(KEY, 0, b"m", [b"a"])) == 1
        assert (await s.load(KEY)).messages == [b"a"]
        client = aioredis.Redis.from_url(private_redis.url)
        try:
            await client.script_flush()
        finally:
            await client.aclose()
        assert (await s.load(KEY)).messages == [b"a"]
        assert await s.commit(StateWrite(KEY, 1, b"m", [b"b"], base_count=1)) == 2
        assert (await s.load(KEY)).messages == [b"a", b"b"]
        assert set(s._lanes) == {"load", "commit"}
    finally:
        await s.close()


async def test_lone_calls_reconnect_after_their_connection_is_killed(store, raw):
    assert await store.commit(StateWrite(KEY, 0, b"m", [b"a"])) == 1
    assert (await store.load(KEY)).messages == [b"a"]
    for lane in store._lanes.values():
        await lane.send_command("CLIENT", "ID")
        assert await raw.client_kill_filter(_id=await lane.read_response()) == 1
    assert (await store.load(KEY)).messages == [b"a"]
    assert await store.commit(StateWrite(KEY, 1, b"m", [b"b"], base_count=1)) == 2
    # a lone conflict is still typed
    with pytest.raises(ConcurrentUpdate, match="revision 2"):
        await store.commit(StateWrite(KEY, 1, b"m", [b"c"], base_count=1))


async def test_a_lone_load_of_a_damaged_session_is_typed_and_the_next_one_reads(store, raw, prefix):
    await store.commit(StateWrite(KEY, 0, b"m", [b"a"]))
    await raw.set(f"{prefix}:{{other}}:meta", b"not a hash")
    with pytest.raises(StoreError, match="WRONGTYPE"):
        await store.load("other")
    rec = await store.load(KEY)
    assert (rec.revision, rec.meta, rec.messages) == (1, b"m", [b"a"])


async def test_a_load_sees_a_commit_landing_between_its_reads(store, raw):
    # A lone load is three plain reads in one round trip (no script, no MULTI): a commit may run
    # between them, and then the hash and the list must not be taken together.
    from repertory.stores.redis import TORN, load_commands, read_record

    meta, msgs, _ = store._session_keys(KEY)
    commands = load_commands(meta, msgs)

    async def read(between=None):
        head = await raw.execute_command(*commands[0])
        if between is not None:
            await between()
        messages = await raw.execute_command(*commands[1])
        return head, messages, await raw.execute_command(*commands[2])

    await store.commit(StateWrite(KEY, 0, b"m1", [b"a"]))
    appended = read(lambda: store.commit(StateWrite(KEY, 1, b"m2", [b"b"], base_count=1)))
    assert read_record(KEY, *await appended) is TORN  # meta of revision 1, messages of revision 2
    rec = read_record(KEY, *await read())
    assert (rec.revision, rec.meta, rec.messages) == (2, b"m2", [b"a", b"b"])

    async def recreate():  # same revision number, another incarnation: only the write id differs
        await store.delete(KEY)
        await store.commit(StateWrite(KEY, 0, b"new", [b"x", b"y", b"z"], first_revision=2))

    assert read_record(KEY, *await read(recreate)) is TORN
    assert read_record(KEY, *await read(lambda: store.delete(KEY))) is TORN
    assert read_record(KEY, *await read()) is None


async def test_concurrent_commits_and_loads_of_one_session_read_whole_revisions(prefix):
    # Commit n holds messages 1..n and meta n, on its own store (connection); every load,
    # lone or batched, must be one revision's meta with that revision's messages.
    writer, reader = RedisStore(REDIS_URL, prefix=prefix), RedisStore(REDIS_URL, prefix=prefix)
    try:
        await writer.commit(StateWrite(KEY, 0, b"1", [b"1"]))
        done = False

        async def write() -> None:
            for n in range(2, 301):
                await writer.commit(StateWrite(KEY, n - 1, str(n).encode(), [str(n).encode()], base_count=n - 1))
            nonlocal done
            done = True

        seen: set[int] = set()

        async def read(concurrency: int) -> None:
            while not done:
                for rec in await asyncio.gather(*[reader.load(KEY) for _ in range(concurrency)]):
                    n = rec.revision
                    assert rec.meta == str(n).encode()
                    assert rec.messages == [str(i).encode() for i in range(1, n + 1)]
                    seen.add(n)

        await asyncio.gather(write(), read(1), read(3))
        assert len(seen) > 10
    finally:
        await writer.close()
        await reader.close()
        await drop_redis_keys(prefix, REDIS_URL)


async def test_a_load_torn_every_time_is_read_by_the_script(store, monkeypatch):
    import repertory.stores.redis as redis_module

    await store.commit(StateWrite(KEY, 0, b"m", [b"a", b"b"]))
    monkeypatch.setattr(redis_module, "read_record", lambda *_: redis_module.TORN)
    rec = await store.load(KEY)
    assert (rec.revision, rec.meta, rec.messages) == (1, b"m", [b"a", b"b"])
    assert await store.load("absent") is None


@pytest.mark.parametrize("fields", [{"version": b"2", "meta": b"m"},  # no n_messages
                                    {"version": b"two", "meta": b"m", "n_messages": b"0", "updated_at": b"1"}])
async def test_a_load_of_a_damaged_hash_is_corrupt_state_lone_or_batched(store, raw, prefix, fields):
    from repertory.errors import CorruptState

    await store.commit(StateWrite(KEY, 0, b"m", [b"a"]))
    await raw.hset(f"{prefix}:{{other}}:meta", mapping=fields)
    with pytest.raises(CorruptState, match="other"):
        await store.load("other")
    results = await asyncio.gather(store.load(KEY), store.load("other"), store.load("other"),
                                   return_exceptions=True)
    assert results[0].messages == [b"a"] and all(isinstance(r, StoreError) for r in results[1:])
    assert (await store.load(KEY)).messages == [b"a"]


async def test_a_cancelled_lone_load_leaves_no_reply_behind(store):
    await store.commit(StateWrite(KEY, 0, b"m", [b"a"]))
    await store.commit(StateWrite("other", 0, b"o", [b"x", b"y"]))
    for _ in range(20):  # cancelled at various points of its round trip
        task = asyncio.create_task(store.load("other"))
        for _ in range(_ % 4):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        rec = await store.load(KEY)
        assert (rec.meta, rec.messages) == (b"m", [b"a"])


async def test_outage_raises_store_unavailable_and_recovers(private_redis):
    s = RedisStore(private_redis.url, prefix="rp")
    try:
        assert await s.commit(StateWrite(KEY, 0, b"m", [b"a"])) == 1
        private_redis.stop()

        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as info:
            await s.commit(StateWrite(KEY, 1, b"m", [b"b"], base_count=1))
        assert time.monotonic() - started < 10
        assert private_redis.url in str(info.value) and "running" in str(info.value)
        with pytest.raises(StoreUnavailable):
            await s.load(KEY)
        with pytest.raises(StoreUnavailable):
            await s.list_sessions()
        # concurrent writers all hear it, and the batch machinery is left idle, not wedged
        results = await asyncio.gather(*[s.commit(StateWrite(f"k{i}", 0, b"m")) for i in range(10)],
                                       return_exceptions=True)
        assert all(isinstance(r, StoreUnavailable) for r in results)
        assert s._writes._task is None and s._writes._pending == []
        assert time.monotonic() - started < 30

        private_redis.start()  # same port, empty (no persistence)
        # nothing half-written came back: the session is simply absent
        assert await s.load(KEY) is None
        versions = await asyncio.gather(*[s.commit(StateWrite(f"k{i}", 0, b"m", [b"x"])) for i in range(10)])
        assert versions == [1] * 10
        assert await s.commit(StateWrite(KEY, 0, b"m", [b"again"])) == 1
        assert (await s.load(KEY)).messages == [b"again"]
    finally:
        await s.close()


async def test_hung_server_times_out_and_leaves_state_whole(private_redis):
    s = RedisStore(private_redis.url, prefix="rp", socket_timeout=0.5, retries=1)
    try:
        await s.commit(StateWrite(KEY, 0, b"m1", [b"a"]))
        os.kill(private_redis.proc.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await s.commit(StateWrite(KEY, 1, b"m2", [b"b", b"c"], base_count=1))
            assert time.monotonic() - started < 10
        finally:
            os.kill(private_redis.proc.pid, signal.SIGCONT)
        # The server may still run the write it had buffered: either way it is all or nothing.
        rec = await s.load(KEY)
        assert (rec.revision, rec.meta, rec.messages) in [(1, b"m1", [b"a"]), (2, b"m2", [b"a", b"b", b"c"])]
        assert await s.commit(StateWrite(KEY, rec.revision, b"m3", [b"d"], base_count=len(rec.messages))) \
            == rec.revision + 1
    finally:
        await s.close()


# -- out of memory (a private server with maxmemory 2 MB and noeviction) ---------------------
@pytest.fixture
def small_redis(tmp_path):
    server = PrivateRedis(tmp_path, args=("--maxmemory", "2mb", "--maxmemory-policy", "noeviction"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _used_memory(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        return int((await client.info("memory"))["used_memory"])
    finally:
        await client.aclose()


TURN = b"x" * 100_000


async def _fill(s: RedisStore, key: str) -> tuple[int, StoreUnavailable | None]:
    """Commit 100 turns of 100 KB; (how many were acknowledged, the error that stopped them)."""
    revision = await s.commit(StateWrite(key, 0, b"m", [], expires_at=time.time() + 600))
    for i in range(100):
        try:
            revision = await s.commit(StateWrite(key, revision, b"m", [TURN], base_count=i,
                                                 expires_at=time.time() + 600))
        except StoreUnavailable as exc:
            return i, exc
    return 100, None


async def test_commits_are_refused_when_redis_is_out_of_memory(small_redis):
    s = RedisStore(small_redis.url, prefix="rp")
    try:
        acked, err = await _fill(s, KEY)
        assert err is not None, f"all {acked} turns of 100 KB were acknowledged by a 2 MB Redis"
        message = str(err)
        assert "out of memory" in message and "maxmemory" in message and small_redis.url in message
        assert "nothing was stored" in message and "deleting sessions" in message  # what happened, what to do
        assert 0 < acked < 20
        assert await _used_memory(small_redis.url) < 3 * 1024 * 1024
        # every acknowledged turn is there, and nothing of the refused ones
        assert (await s.load(KEY)).messages == [TURN] * acked
        # batched commits hear it too, each with its own error
        results = await asyncio.gather(*[s.commit(StateWrite(f"new{i}", 0, b"m", [TURN])) for i in range(5)],
                                       return_exceptions=True)
        assert all(isinstance(r, StoreUnavailable) and "out of memory" in str(r) for r in results), results
        with pytest.raises(StoreUnavailable, match="out of memory"):
            await s.put_checkpoint(_cp(KEY, "c1"))
    finally:
        await s.close()


async def test_reads_work_and_deletes_free_memory_when_redis_is_out_of_memory(small_redis):
    from structlog.testing import capture_logs

    s = RedisStore(small_redis.url, prefix="rp")
    try:
        await s.commit(StateWrite("small", 0, b"m", [b"a"], expires_at=time.time() + 600))
        await s.put_checkpoint(_cp("small", "c1"))
        acked, err = await _fill(s, KEY)
        assert err is not None
        assert len((await s.load(KEY)).messages) == acked
        assert {i.key for i in await s.list_sessions()} == {KEY, "small"}
        assert [c.cp_id for c in await s.list_checkpoints("small")] == ["c1"]
        assert (await s.get_checkpoint("small", "c1")).data == b"DATA"
        # a TTL refresh Redis refuses never fails the read that asked for it: a warning instead
        with capture_logs() as logs:
            assert await s.touch(KEY, time.time() + 900) is True
            assert await s.touch("never-was", time.time() + 900) is False
        warnings = [e for e in logs if e["log_level"] == "warning"]
        assert warnings and "out of memory" in warnings[0]["event"] and warnings[0]["url"] == small_redis.url
        # deleting is how memory is freed, so it must work now; then writes resume
        assert await s.delete_checkpoints("small", ["c1"]) == 1
        assert await s.delete(KEY) is True
        assert await s.commit(StateWrite("small", 1, b"m", [b"b"], base_count=1)) == 2
    finally:
        await s.close()
