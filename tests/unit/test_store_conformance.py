"""One suite every Store backend passes."""

import asyncio
import time

import pytest

from repertory.errors import ConcurrentUpdate
from repertory.stores import CheckpointInfo, CheckpointRecord, StateWrite


@pytest.fixture
def store(backend):
    return backend


async def test_create_append_load(store):
    assert await store.load("k") is None
    v1 = await store.commit(StateWrite("k", 0, b"meta1", [b"m0", b"m1"], updated_at=1.0))
    assert v1 == 1
    v2 = await store.commit(StateWrite("k", 1, b"meta2", [b"m2"], base_count=2, updated_at=2.0))
    rec = await store.load("k")
    assert (rec.revision, rec.meta, rec.messages) == (v2, b"meta2", [b"m0", b"m1", b"m2"])


async def test_replace_and_truncating_append(store):
    await store.commit(StateWrite("k", 0, b"m", [b"a", b"b", b"c"]))
    await store.commit(StateWrite("k", 1, b"m", [b"x"], replace=True))
    assert (await store.load("k")).messages == [b"x"]
    await store.commit(StateWrite("k", 2, b"m", [b"y", b"z"], base_count=1))
    await store.commit(StateWrite("k", 3, b"m", [b"w"], base_count=1))  # drops y, z
    assert (await store.load("k")).messages == [b"x", b"w"]


async def test_compare_and_set(store):
    await store.commit(StateWrite("k", 0, b"m", [b"a"]))
    with pytest.raises(ConcurrentUpdate):
        await store.commit(StateWrite("k", 0, b"m", [b"b"]))
    with pytest.raises(ConcurrentUpdate):
        await store.commit(StateWrite("k", 5, b"m", [b"b"], base_count=1))
    assert (await store.load("k")).messages == [b"a"]


async def test_concurrent_writers_exactly_one_wins(store):
    await store.commit(StateWrite("k", 0, b"m", []))
    results = await asyncio.gather(
        *[store.commit(StateWrite("k", 1, f"w{i}".encode(), [b"x"])) for i in range(20)],
        return_exceptions=True)
    assert sum(1 for r in results if r == 2) == 1
    assert sum(1 for r in results if isinstance(r, ConcurrentUpdate)) == 19


async def test_many_sessions_batched(store):
    await asyncio.gather(*[store.commit(StateWrite(f"s{i}", 0, b"m", [b"x"] * 3, updated_at=i)) for i in range(200)])
    infos = await store.list_sessions()
    assert len(infos) == 200 and infos[0].key == "s0" and infos[0].n_messages == 3
    assert len(await store.list_sessions(prefix="s1", limit=5)) == 5
    assert [i.key for i in await store.list_sessions(updated_before=2)] == ["s0", "s1"]


async def test_expiry_and_delete(store):
    await store.commit(StateWrite("gone", 0, b"m", [b"a"], expires_at=time.time() - 1))
    assert await store.load("gone") is None
    # an expired session may be created anew
    assert await store.commit(StateWrite("gone", 0, b"m", [b"b"])) == 1
    assert await store.delete("gone") is True
    assert await store.delete("gone") is False
    assert await store.load("gone") is None


async def test_checkpoints(store):
    from repertory.stores import CheckpointInfo, CheckpointRecord

    await store.commit(StateWrite("k", 0, b"m", [b"a"]))
    for i, kind in enumerate(["checkpoint", "version", "checkpoint"], start=1):
        await store.put_checkpoint(CheckpointRecord(CheckpointInfo("k", f"c{i}", kind, i, 100.0 + i, i, f"l{i}"), b"D%d" % i))
    assert [c.cp_id for c in await store.list_checkpoints("k")] == ["c1", "c2", "c3"]
    assert [c.cp_id for c in await store.list_checkpoints("k", "checkpoint")] == ["c1", "c3"]
    rec = await store.get_checkpoint("k", "c2")
    assert rec.data == b"D2" and rec.info.label == "l2" and rec.info.kind == "version"
    assert await store.get_checkpoint("k", "nope") is None
    assert await store.delete_checkpoints("k", ["c1", "nope"]) == 1
    assert [c.cp_id for c in await store.list_checkpoints("k")] == ["c2", "c3"]
    await store.delete("k")
    assert await store.list_checkpoints("k") == []


async def test_checkpoint_in_a_state_write_lands_with_it_or_not_at_all(store):
    from repertory.stores import CheckpointInfo, CheckpointRecord

    def cp(n: int) -> CheckpointRecord:
        return CheckpointRecord(CheckpointInfo("k", f"c{n}", "checkpoint", n, 100.0 + n, n, f"before {n}"), b"D%d" % n)

    v1 = await store.commit(StateWrite("k", 0, b"m1", [b"a"], checkpoint=cp(1), expires_at=time.time() + 60))
    v2 = await store.commit(StateWrite("k", v1, b"m2", [b"b"], replace=True, checkpoint=cp(2),
                                       expires_at=time.time() + 60))
    with pytest.raises(ConcurrentUpdate):  # a lost compare-and-set stores neither
        await store.commit(StateWrite("k", v1, b"m3", [], base_count=1, checkpoint=cp(3)))
    assert [c.cp_id for c in await store.list_checkpoints("k")] == ["c1", "c2"]
    rec = await store.get_checkpoint("k", "c2")
    assert (rec.data, rec.info.label, rec.info.seq) == (b"D2", "before 2", 2)
    assert (await store.load("k")).revision == v2
    await store.delete("k")
    assert await store.list_checkpoints("k") == []


async def test_touch(store):
    assert await store.touch("none", None) is False
    expires = time.time() + 0.5
    await store.commit(StateWrite("k", 0, b"m", [b"a"], expires_at=expires))
    assert await store.touch("k", None) is True
    while time.time() <= expires:  # past the first expiry
        await asyncio.sleep(0.02)
    assert (await store.load("k")).expires_at is None


async def test_touch_sets_the_new_expiry(store):
    await store.commit(StateWrite("k", 0, b"m", [b"a"], expires_at=time.time() + 60))
    later = round(time.time() + 3600, 3)  # milliseconds: what Redis keeps
    assert await store.touch("k", later) is True
    rec = await store.load("k")
    assert rec.expires_at == pytest.approx(later, abs=0.002)
    assert [i.expires_at for i in await store.list_sessions()] == [pytest.approx(later, abs=0.002)]
    # an expired session is not brought back
    await store.commit(StateWrite("gone", 0, b"m", [b"a"], expires_at=time.time() - 1))
    assert await store.touch("gone", later) is False
    assert await store.load("gone") is None


async def test_listing_leaves_out_expired_sessions(store):
    await store.commit(StateWrite("live", 0, b"m", [b"a"], expires_at=time.time() + 60, updated_at=1.0))
    await store.commit(StateWrite("pinned", 0, b"m", [b"a"], updated_at=2.0))
    await store.commit(StateWrite("gone", 0, b"m", [b"a"], expires_at=time.time() - 1, updated_at=0.5))
    assert [i.key for i in await store.list_sessions()] == ["live", "pinned"]
    assert [i.key for i in await store.list_sessions(updated_before=3.0, limit=5)] == ["live", "pinned"]


@pytest.mark.parametrize("n", [255, 256, 257, 300])
async def test_long_histories_load_whole(store, n):
    # SQLite reads up to 256 messages on the event loop and longer histories on its thread.
    messages = [b"m%d" % i for i in range(n)]
    await store.commit(StateWrite("long", 0, b"meta", messages[:-1]))
    await store.commit(StateWrite("long", 1, b"meta", messages[-1:], base_count=n - 1))
    rec = await store.load("long")
    assert (rec.key, rec.revision, rec.meta, rec.messages) == ("long", 2, b"meta", messages)


async def test_sweep_expired(store):
    from repertory.stores import CheckpointInfo, CheckpointRecord

    await store.commit(StateWrite("old", 0, b"m", [b"a"]))
    await store.put_checkpoint(CheckpointRecord(CheckpointInfo("old", "c1", "checkpoint", 1, 1.0, 1), b"D"))
    await store.commit(StateWrite("live", 0, b"m", [b"a"], expires_at=time.time() + 60))
    await store.commit(StateWrite("pinned", 0, b"m", [b"a"]))
    # The expiry is set last: on a loaded machine, writing the checkpoint after a short expiry
    # could find the session already gone (its checkpoint then has no expiry to inherit).
    expires = time.time() + 0.3
    assert await store.touch("old", expires)
    while time.time() <= expires:  # not load(): loading an expired session may drop it already
        await asyncio.sleep(0.02)
    swept = await store.sweep_expired()
    # Redis drops expired keys itself, so there is nothing left for a sweep to count.
    backend = getattr(store, "inner", store)  # the suite also runs behind EncryptedStore
    assert swept == (0 if "redis" in type(backend).__name__.lower() else 1)
    assert await store.sweep_expired() == 0
    assert await store.list_checkpoints("old") == []
    assert sorted(i.key for i in await store.list_sessions()) == ["live", "pinned"]


def test_sweep_expired_defaults_to_nothing_to_sweep():
    from repertory.stores import Store

    class OnlyTheRequiredVerbs(Store):
        async def load(self, key): return None
        async def commit(self, write): return 1
        async def delete(self, key): return False
        async def list_sessions(self, *, prefix="", updated_before=None, limit=None): return []
        async def touch(self, key, expires_at): return False
        async def put_checkpoint(self, record): return None
        async def get_checkpoint(self, key, cp_id): return None
        async def list_checkpoints(self, key, kind=None): return []
        async def delete_checkpoints(self, key, cp_ids): return 0
        async def acquire_lease(self, key, owner, ttl): return 0.0
        async def release_lease(self, key, owner): return None
        async def put_step(self, key, turn_id, seq, data, expires_at): return None
        async def load_steps(self, key, turn_id): return []
        async def drop_steps(self, key, turn_id): return None

    assert asyncio.run(OnlyTheRequiredVerbs().sweep_expired()) == 0


async def test_a_lease_keeps_other_owners_waiting_and_lapses_when_its_holder_dies(store):
    assert await store.acquire_lease("s", "A", 0.5) == 0.0  # a session need not exist to be leased
    assert await store.acquire_lease("s", "A", 0.5) == 0.0  # renewing is acquiring again
    assert 0.0 < await store.acquire_lease("s", "B", 0.5) <= 0.5
    await store.release_lease("s", "B")  # not B's to give back: nothing happens
    assert await store.acquire_lease("s", "B", 0.5) > 0.0
    await store.release_lease("s", "A")
    assert await store.acquire_lease("s", "B", 0.5) == 0.0
    assert await store.acquire_lease("other", "C", 0.5) == 0.0  # leases are per session
    # B dies holding the lease: it lapses by itself, within its TTL
    deadline = time.monotonic() + 10
    while (wait := await store.acquire_lease("s", "C", 0.5)) > 0.0:
        assert wait <= 0.5 and time.monotonic() < deadline, wait
        await asyncio.sleep(wait)


async def test_the_lease_holder_is_named_until_it_releases_or_its_lease_lapses(store):
    key = "u:s/activation"  # host.activation's lease keys: not a session id
    assert await store.lease_holder(key) is None
    assert await store.acquire_lease(key, "c|host-1|a1", 0.3) == 0.0
    assert await store.lease_holder(key) == "c|host-1|a1"
    await store.release_lease(key, "c|host-1|a1")
    assert await store.lease_holder(key) is None
    assert await store.acquire_lease(key, "c|host-2|b2", 0.3) == 0.0
    await asyncio.sleep(0.4)
    assert await store.lease_holder(key) is None


async def test_only_the_lease_holder_writes(store):
    rev = await store.commit(StateWrite("s", 0, b"m0", [b"x"], owner="A"))
    assert await store.acquire_lease("s", "A", 5.0) == 0.0
    for owner in ("B", None):
        with pytest.raises(ConcurrentUpdate, match="leased to another runtime"):
            await store.commit(StateWrite("s", rev, b"m1", [b"y"], base_count=1, owner=owner))
    with pytest.raises(ConcurrentUpdate, match="leased"):  # creating a leased session too
        await store.acquire_lease("new", "A", 5.0)
        await store.commit(StateWrite("new", 0, b"m0", [b"x"], owner="B"))
    rev = await store.commit(StateWrite("s", rev, b"m1", [b"y"], base_count=1, owner="A"))
    await store.release_lease("s", "A")
    rev = await store.commit(StateWrite("s", rev, b"m2", [b"z"], base_count=2, owner="B"))
    rec = await store.load("s")
    assert rec.revision == rev and rec.messages == [b"x", b"y", b"z"]
    assert await store.load("new") is None


async def test_a_resent_delete_deletes_nothing_not_even_a_session_created_since(store):
    await store.commit(StateWrite("s", 0, b"m", [b"a"]))
    assert await store.delete("s", "op-1") is True
    rev = await store.commit(StateWrite("s", 0, b"m2", [b"b"], first_revision=77))  # re-created
    assert await store.delete("s", "op-1") is True  # the resend: answered, applied once
    assert (await store.load("s")).messages == [b"b"]
    assert await store.delete("s", "op-2") is True  # a new delete deletes
    assert await store.load("s") is None and rev == 77
    assert await store.delete("s", "op-3") is False  # nothing there
    assert await store.delete("s") is False  # without an id: as before


async def test_an_append_past_the_stored_history_leaves_no_hole(store):
    # base_count beyond the stored messages: every backend appends right after what it has
    # (SQLite used to count the missing messages, and its next append dropped the message).
    await store.commit(StateWrite("k", 0, b"m", [b"a", b"b"]))
    await store.commit(StateWrite("k", 1, b"m", [b"x"], base_count=5))
    assert (await store.load("k")).messages == [b"a", b"b", b"x"]
    assert [i.n_messages for i in await store.list_sessions()] == [3]
    await store.commit(StateWrite("k", 2, b"m", [b"y"], base_count=3))
    assert (await store.load("k")).messages == [b"a", b"b", b"x", b"y"]


async def test_a_session_created_over_an_expired_one_inherits_none_of_its_checkpoints(store):
    expires = time.time() + 0.3
    await store.commit(StateWrite("k", 0, b"old", [b"a"], expires_at=expires))
    await store.put_checkpoint(CheckpointRecord(CheckpointInfo("k", "c1", "checkpoint", 1, 1.0, 1), b"old cp"))
    while time.time() <= expires + 0.05:
        await asyncio.sleep(0.02)
    await store.commit(StateWrite("k", 0, b"new", [b"b"]))
    assert (await store.load("k")).messages == [b"b"]
    assert await store.list_checkpoints("k") == [] and await store.get_checkpoint("k", "c1") is None


# -- the step journal of a running turn (Store.put_step / load_steps / drop_steps) ----------
async def test_a_turns_steps_read_back_in_order_until_dropped(store):
    await store.commit(StateWrite("k", 0, b"m", [b"a"]))
    assert await store.load_steps("k", "turn-1") == []
    await store.put_step("k", "turn-1", 1, b"tool result", None)
    await store.put_step("k", "turn-1", 0, b"model step", None)
    await store.put_step("k", "turn-2", 0, b"other turn", None)
    await store.put_step("other", "turn-1", 0, b"other session", None)
    assert await store.load_steps("k", "turn-1") == [(0, b"model step"), (1, b"tool result")]
    await store.put_step("k", "turn-1", 1, b"tool result again", None)  # a resent step replaces
    assert await store.load_steps("k", "turn-1") == [(0, b"model step"), (1, b"tool result again")]
    await store.drop_steps("k", "turn-1")
    assert await store.load_steps("k", "turn-1") == []
    assert await store.load_steps("k", "turn-2") == [(0, b"other turn")]
    assert await store.load_steps("other", "turn-1") == [(0, b"other session")]
    await store.drop_steps("k", "never-journaled")  # nothing to drop: no error


async def test_a_journal_expires_with_its_session(store):
    expires = time.time() + 0.3
    await store.put_step("k", "t", 0, b"step", expires)
    assert await store.load_steps("k", "t") == [(0, b"step")]
    while time.time() <= expires + 0.05:
        await asyncio.sleep(0.02)
    assert await store.load_steps("k", "t") == []


async def test_a_deleted_sessions_journal_is_gone(store):
    await store.commit(StateWrite("k", 0, b"m", [b"a"]))
    await store.put_step("k", "t", 0, b"step", time.time() + 60)
    await store.delete("k")
    assert await store.load_steps("k", "t") == []
