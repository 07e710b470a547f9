"""Linear checkpoint storage (state/snapshots.py): checkpoints reference a prefix of the live
history plus what changed, copy-on-write when an edit or restore replaces referenced messages.

A hypothesis state machine drives turns, edits, truncates, pops, checkpoints, restores,
checkpoint deletes, forks and reloads from the store on every backend (memory, SQLite, Redis
under a private prefix, and SQLite behind the EncryptedStore), and compares every
checkpoint's read-back with a plain model that keeps full copies.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from redis_server import TEST_DB_URL, drop_redis_keys
from repertory.errors import ConcurrentUpdate, CorruptState, UnsupportedFormat
from repertory.state import ops, snapshots
from repertory.state.session_state import SessionState
from repertory.stores import CheckpointInfo, CheckpointRecord, MemoryStore, SQLiteStore
from repertory.stores.codec import MsgpackCodec
from repertory.stores.crypto import KeyRing, generate_encryption_key
from repertory.stores.encrypted import EncryptedStore

_codec = MsgpackCodec()
words = st.text(alphabet="abcdefgh ", min_size=1, max_size=10).filter(lambda t: t.strip())


def _store(kind: str, folder: Path) -> tuple[object, str | None]:
    if kind == "memory":
        return MemoryStore(), None
    if kind == "sqlite":
        return SQLiteStore(folder / f"{uuid.uuid4().hex}.db"), None
    if kind == "encrypted":
        return EncryptedStore(SQLiteStore(folder / f"{uuid.uuid4().hex}.db"),
                              KeyRing(generate_encryption_key("k1"))), None
    from repertory.stores.redis import RedisStore

    prefix = f"rptest-{uuid.uuid4().hex}"
    return RedisStore(TEST_DB_URL, prefix=prefix), prefix


def _contents(messages: list[bytes]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in (_codec.decode(b) for b in messages)]


async def _turn(store, state: SessionState, text: str) -> None:
    write, meta, messages = state.append_write([{"role": "user", "content": text, "timestamp": 1.0},
                                                {"role": "assistant", "content": text.upper(), "timestamp": 2.0}])
    state.applied(await store.commit(write), meta, messages)


def make_machine(kind: str, folder: Path):
    class LinearStorage(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.store, self.prefix = self.loop.run_until_complete(self._open())
            self.state = SessionState.new("u/s", "s", "u")
            self.history: list[tuple[str, str]] = []
            self.model: dict[str, list[tuple[str, str]]] = {}  # cp_id -> full copy of the history
            self.forks = 0

        async def _open(self):
            return _store(kind, folder)

        def run(self, coro):
            return self.loop.run_until_complete(coro)

        def teardown(self) -> None:
            self.run(self.store.close())
            if self.prefix:
                self.run(drop_redis_keys(self.prefix))
            self.loop.close()

        @rule(text=words)
        def turn(self, text):
            self.run(_turn(self.store, self.state, text))
            self.history += [("user", text), ("assistant", text.upper())]

        @precondition(lambda self: self.state.revision)
        @rule()
        def checkpoint(self):
            info = self.run(ops.create_checkpoint(self.store, self.state, op_id=uuid.uuid4().hex))
            self.model[info["cp_id"]] = list(self.history)

        @precondition(lambda self: self.state.revision)
        @rule(data=st.data(), text=words)
        def edit(self, data, text):
            if not self.history:
                return
            i = data.draw(st.integers(0, len(self.history) - 1))
            self.run(ops.edit_message(self.store, self.state, i, text, op_id=uuid.uuid4().hex))
            self.model[f"c{self._last_seq()}"] = list(self.history)
            self.history[i] = (self.history[i][0], text)

        @precondition(lambda self: self.state.revision)
        @rule(n=st.integers(0, 8))
        def truncate(self, n):
            removed = self.run(ops.truncate(self.store, self.state, n, op_id=uuid.uuid4().hex))
            assert [(m["role"], m["content"]) for m in removed] == self.history[n:]
            if removed:
                self.model[f"c{self._last_seq()}"] = list(self.history)
                self.history = self.history[:n]

        @precondition(lambda self: self.state.revision)
        @rule()
        def pop(self):
            removed = self.run(ops.pop_turn(self.store, self.state, op_id=uuid.uuid4().hex))
            if removed:
                self.model[f"c{self._last_seq()}"] = list(self.history)
                self.history = self.history[: len(self.history) - len(removed)]

        @precondition(lambda self: self.model)
        @rule(data=st.data())
        def restore(self, data):
            cp_id = data.draw(st.sampled_from(sorted(self.model)))
            self.run(ops.restore_checkpoint(self.store, self.state, cp_id, op_id=uuid.uuid4().hex))
            self.history = list(self.model[cp_id])

        @precondition(lambda self: self.model)
        @rule(data=st.data())
        def delete_checkpoint(self, data):
            cp_id = data.draw(st.sampled_from(sorted(self.model)))
            assert self.run(ops.delete_checkpoints(self.store, self.state, [cp_id])) == 1
            del self.model[cp_id]

        @precondition(lambda self: self.state.revision)
        @rule()
        def fork(self):
            """Export with checkpoints and import as a new session: its checkpoints read back too."""
            self.forks += 1
            doc = self.run(ops.export_session(self.store, self.state, True))
            key = f"u/f{self.forks}"
            fork = SessionState.new(key, f"f{self.forks}", "u")
            doc = dict(doc, key=key, meta=dict(doc["meta"], session_id=f"f{self.forks}"))
            self.run(ops.import_session(self.store, fork, doc))
            fork = SessionState.from_record(self.run(self.store.load(key)))
            for cp_id, expected in self.model.items():
                snap = self.run(ops.checkpoint_snapshot(self.store, fork, cp_id))
                assert _contents(snap["messages"]) == expected, cp_id

        @rule()
        def reload(self):
            """Passivate and activate: the live history comes from the store."""
            rec = self.run(self.store.load(self.state.key))
            if rec is not None:
                self.state = SessionState.from_record(rec)

        def _last_seq(self) -> int:
            infos = self.run(self.store.list_checkpoints(self.state.key, "checkpoint"))
            return max(i.seq for i in infos)

        @invariant()
        def every_checkpoint_reads_back(self):
            if not self.state.revision:
                return
            assert _contents(self.state.messages) == self.history
            infos = self.run(self.store.list_checkpoints(self.state.key))
            assert {i.cp_id for i in infos if i.kind != snapshots.SEGMENT} == set(self.model)
            # Every frozen segment is referenced by a checkpoint: deletes reclaim what only they used.
            used = {g[0] for i in infos if i.kind != snapshots.SEGMENT
                    for g in _codec.decode(self.run(self.store.get_checkpoint(self.state.key, i.cp_id)).data)
                    .get("segs", ())}
            assert {i.cp_id for i in infos if i.kind == snapshots.SEGMENT} == used
            for cp_id, expected in self.model.items():
                snap = self.run(ops.checkpoint_snapshot(self.store, self.state, cp_id))
                assert _contents(snap["messages"]) == expected, cp_id

    return LinearStorage


@pytest.mark.parametrize("kind", ["memory", "sqlite", "encrypted", pytest.param("redis", marks=pytest.mark.redis)])
def test_every_checkpoint_reads_back_as_its_full_copy(kind, tmp_path):
    run_state_machine_as_test(
        make_machine(kind, tmp_path),
        settings=settings(max_examples=25 if kind == "memory" else 12, stateful_step_count=25, deadline=None,
                          suppress_health_check=list(HealthCheck)))


# -- the layout ----------------------------------------------------------------------------
async def _session(store, turns: int) -> SessionState:
    state = SessionState.new("u/s", "s", "u")
    for t in range(turns):
        await _turn(store, state, f"message {t}")
    return state


async def test_a_checkpoint_stores_no_copy_of_the_history():
    store = MemoryStore()
    state = await _session(store, 50)
    await ops.create_checkpoint(store, state)
    rec = await store.get_checkpoint(state.key, "c1")
    snap = _codec.decode(rec.data)
    assert snap["format"] == snapshots.LINEAR and snap["base"] == 100 and snap["tail"] == []
    assert len(rec.data) < sum(map(len, state.messages)) / 4


async def test_an_edit_freezes_the_changed_tail_once_for_all_the_checkpoints_that_reference_it():
    store = MemoryStore()
    state = await _session(store, 10)
    await ops.create_checkpoint(store, state, op_id="a")  # c1: base 20
    await ops.edit_message(store, state, 15, "changed", op_id="b")  # c2 (before the edit)
    segments = [i for i in await store.list_checkpoints(state.key) if i.kind == snapshots.SEGMENT]
    assert len(segments) == 1
    frozen = _codec.decode((await store.get_checkpoint(state.key, segments[0].cp_id)).data)["segment"]
    assert len(frozen) == 5 and _codec.decode(frozen[0])["content"] == "MESSAGE 7"
    for cp_id in ("c1", "c2"):
        snap = _codec.decode((await store.get_checkpoint(state.key, cp_id)).data)
        assert snap["base"] == 15 and snap["tail"] == [] and snap["segs"] == [[segments[0].cp_id, 0, 5]]
        restored = await ops.checkpoint_snapshot(store, state, cp_id)
        assert _codec.decode(restored["messages"][15])["content"] == "MESSAGE 7"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])  # Redis counts alike (test_storage_usage), 2x slower
async def test_storage_grows_with_the_history_not_with_history_times_checkpoints(kind, tmp_path):
    """2,000 turns with a checkpoint every 5 store at most 3x the bytes of the history alone
    (as the backend counts them: Store.usage)."""
    backend, _ = _store(kind, tmp_path)
    state = SessionState.new("u/s", "s", "u")
    for t in range(2000):
        await _turn(backend, state, f"turn {t}: " + "lorem ipsum " * 8)
        if (t + 1) % 5 == 0:
            await ops.create_checkpoint(backend, state, label=f"auto at turn {t + 1}")
    history = sum(map(len, state.messages))
    assert len(await backend.list_checkpoints(state.key)) == 400
    stored = (await backend.usage([state.key]))[state.key]
    assert stored.messages == history and stored.total <= 3 * history, (stored, history)
    assert _contents((await ops.checkpoint_snapshot(backend, state, 1))["messages"])[-1] == ("assistant", "TURN 4: "
                                                                                             + "LOREM IPSUM " * 8)
    await backend.close()


async def test_full_copy_checkpoints_written_before_linear_storage_still_restore(backend):
    state = await _session(backend, 3)
    old = _codec.encode({"meta": state.meta, "messages": state.messages[:4], "revision": state.revision})
    info = CheckpointInfo(state.key, "c1", "checkpoint", 1, 1.0, 2, "old format")
    await backend.put_checkpoint(CheckpointRecord(info, old))
    await ops.edit_message(backend, state, 0, "edited", op_id="e")  # copy-on-write leaves it alone
    assert _codec.decode((await backend.get_checkpoint(state.key, "c1")).data) == _codec.decode(old)
    await ops.restore_checkpoint(backend, state, 1)
    state = SessionState.from_record(await backend.load(state.key))
    assert _contents(state.messages) == [("user", "message 0"), ("assistant", "MESSAGE 0"),
                                         ("user", "message 1"), ("assistant", "MESSAGE 1")]


async def test_a_checkpoint_of_a_newer_format_is_refused_with_a_typed_error():
    store = MemoryStore()
    state = await _session(store, 1)
    info = CheckpointInfo(state.key, "c1", "checkpoint", 1, 1.0, 1, "")
    await store.put_checkpoint(CheckpointRecord(info, _codec.encode({"format": 3, "meta": state.meta})))
    with pytest.raises(UnsupportedFormat, match="Upgrade repertory"):
        await ops.restore_checkpoint(store, state, 1)
    assert _contents(state.messages) == [("user", "message 0"), ("assistant", "MESSAGE 0")]


async def test_a_history_replaced_without_copy_on_write_is_corrupt_not_a_wrong_answer():
    store = MemoryStore()
    state = await _session(store, 2)
    await ops.create_checkpoint(store, state)
    # Another writer (not through the ops) rewrites message 1 under the checkpoint's prefix.
    state.messages = [state.messages[0], _codec.encode({"role": "assistant", "content": "x"}), *state.messages[2:]]
    with pytest.raises(CorruptState, match="changed since it was taken"):
        await ops.checkpoint_snapshot(store, state, 1)


async def test_deleting_checkpoints_reclaims_the_segments_only_they_referenced():
    store = MemoryStore()
    state = await _session(store, 10)
    await ops.create_checkpoint(store, state, op_id="a")
    await ops.truncate(store, state, 2, op_id="b")  # c1 and c2 reference messages 2..19, frozen once

    async def kinds() -> list[str]:
        return sorted(i.kind for i in await store.list_checkpoints(state.key))

    assert await kinds() == ["checkpoint", "checkpoint", "segment"]
    await ops.delete_checkpoints(store, state, ["c1"])
    assert await kinds() == ["checkpoint", "segment"]  # c2 still needs it
    assert _contents((await ops.checkpoint_snapshot(store, state, "c2"))["messages"])[-1] == ("assistant", "MESSAGE 9")
    await ops.delete_checkpoints(store, state, ["c2"])
    assert await kinds() == []


async def test_a_lost_segment_is_corrupt_not_a_wrong_answer():
    store = MemoryStore()
    state = await _session(store, 3)
    await ops.create_checkpoint(store, state, op_id="a")
    await ops.truncate(store, state, 2, op_id="b")
    seg = next(i.cp_id for i in await store.list_checkpoints(state.key) if i.kind == snapshots.SEGMENT)
    await store.delete_checkpoints(state.key, [seg])  # behind the ops' back
    with pytest.raises(CorruptState, match="segment"):
        await ops.restore_checkpoint(store, state, 1)



async def test_a_lost_compare_and_set_after_copy_on_write_leaves_every_checkpoint_readable(backend):
    """Copy-on-write writes segments and rewrites checkpoints before the replace commits; when
    the replace then loses its compare-and-set (another writer got there first), every record
    still reads back under the history the other writer stored."""
    state = await _session(backend, 6)
    await ops.create_checkpoint(backend, state, op_id="a")
    expected = _contents(state.messages)
    other = SessionState.from_record(await backend.load(state.key))
    await _turn(backend, other, "from another runtime")  # state is now stale
    with pytest.raises(ConcurrentUpdate):
        await ops.edit_message(backend, state, 2, "lost", op_id="b")
    fresh = SessionState.from_record(await backend.load(state.key))
    assert _contents(fresh.messages) == expected + [("user", "from another runtime"),
                                                    ("assistant", "FROM ANOTHER RUNTIME")]
    assert _contents((await ops.checkpoint_snapshot(backend, fresh, 1))["messages"]) == expected
    await ops.edit_message(backend, fresh, 2, "won", op_id="c")  # the retry on fresh state
    assert _contents((await ops.checkpoint_snapshot(backend, fresh, 1))["messages"]) == expected


@pytest.mark.redis
async def test_on_redis_segments_live_under_the_session_hash_tag(tmp_path):
    store, prefix = _store("redis", tmp_path)
    try:
        state = await _session(store, 4)
        await ops.create_checkpoint(store, state, op_id="a")
        await ops.truncate(store, state, 2, op_id="b")
        names = [n.decode() async for n in store._client.scan_iter(match=f"{prefix}:*")]
        assert any(":cp:s" in n for n in names)  # a segment is stored
        assert names and all(n.startswith(f"{prefix}:{{u/s}}:") for n in names), names  # one cluster slot
    finally:
        await store.close()
        await drop_redis_keys(prefix)


async def test_rekey_reseals_segments_and_every_checkpoint_still_reads_back(tmp_path):
    k1, k2 = generate_encryption_key("k1"), generate_encryption_key("k2")
    inner = SQLiteStore(tmp_path / "s.db")
    try:
        old = EncryptedStore(inner, KeyRing(k1))
        state = await _session(old, 5)
        await ops.create_checkpoint(old, state, op_id="a")
        await ops.truncate(old, state, 4, op_id="b")  # c1 and c2 reference a segment
        expected = {cp: _contents((await ops.checkpoint_snapshot(old, state, cp))["messages"]) for cp in (1, 2)}
        assert await EncryptedStore(inner, KeyRing([k2, k1])).rekey(state.key, "admin")
        new = EncryptedStore(inner, KeyRing(k2), required=True)  # k1 is gone: everything was resealed
        state = SessionState.from_record(await new.load(state.key))
        for cp, messages in expected.items():
            assert _contents((await ops.checkpoint_snapshot(new, state, cp))["messages"]) == messages
    finally:
        await inner.close()
