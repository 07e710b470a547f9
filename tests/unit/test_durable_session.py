"""Durable session state on the local runtime: checkpoints, branches, edits, files, races."""

import asyncio
import os
import pickle
import struct
import time
import zlib

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import repertory
from repertory import CorruptState, InvalidInput, Session, UnsupportedFormat
from repertory.config import Settings
from repertory.runtimes.local import LocalRuntime
from contract_helpers import wait_for


def users(s):
    return [m["content"] for m in s.get_history() if m["role"] == "user"]


def test_checkpoint_list_restore_and_retention(rt):
    s = Session(checkpoint_every=3, keep_checkpoints=2)
    for i in range(9):
        s.chat(f"m{i}")
    cps = s.list_checkpoints()
    assert [c["turn"] for c in cps] == [6, 9] and all(c["label"].startswith("auto") for c in cps)
    manual = s.create_checkpoint("mine")
    s.chat("after")
    s.restore_checkpoint(manual)
    assert users(s) == [f"m{i}" for i in range(9)]
    with pytest.raises(InvalidInput, match="no checkpoint 99"):
        s.restore_checkpoint(99)


def test_restore_keeps_revision_moving_forward(rt):
    s = Session()
    s.chat("one")
    cp = s.create_checkpoint()
    v_before = s.get_state()["revision"]
    s.chat("two")
    s.restore_checkpoint(cp)
    assert s.get_state()["revision"] > v_before + 1  # restore is a new write, never a rewind


def test_fork_is_independent_and_can_start_at_a_checkpoint(rt):
    s = Session(session_id="trunk")
    s.chat("shared past")
    cp = s.create_checkpoint()
    s.chat("trunk only")
    now = s.fork("branch-now")
    then = s.fork("branch-then", at=cp)
    now.chat("branch only")
    assert users(s) == ["shared past", "trunk only"]
    assert users(now) == ["shared past", "trunk only", "branch only"]
    assert users(then) == ["shared past"]
    assert now.metadata["forked_from"] == "trunk"
    with pytest.raises(InvalidInput, match="already exists"):
        s.fork("branch-now")


def test_pop_truncate_edit_keep_the_past_reachable(rt):
    s = Session()
    for m in ("a", "b", "c"):
        s.chat(m)
    removed = s.pop_turn()
    assert [m["content"] for m in removed][0] == "c" and users(s) == ["a", "b"]
    s.edit_message(0, "A!")
    assert s.get_history()[0]["content"] == "A!" and "edited_at" in s.get_history()[0]
    assert len(s.truncate(1)) == 3 and len(s.get_history()) == 1
    labels = [c["label"] for c in s.list_checkpoints()]
    assert labels == ["before pop_turn", "before edit", "before truncate"]
    s.restore_checkpoint(1)
    assert users(s) == ["a", "b", "c"]
    with pytest.raises(InvalidInput):
        s.edit_message(50, "x")


def test_user_data_profile_metadata_write_through(rt):
    s = Session(session_id="ud")
    s.user_data["plan"] = "pro"
    s.user_data.update(seats=3)
    s.update_preference("language", "en-GB")
    s.user_profile["name"] = "Ann"
    s.metadata = {"source": "test"}
    again = Session(session_id="ud")
    assert again.user_data == {"plan": "pro", "seats": 3}
    assert again.user_profile == {"preferences": {"language": "en-GB"}, "name": "Ann"}
    assert again.metadata == {"source": "test"}
    with pytest.raises(InvalidInput, match="plain data"):
        s.user_data["bad"] = object()
    assert Session(session_id="ud").user_data == {"plan": "pro", "seats": 3}


def test_context_and_results(rt):
    s = Session()
    s.chat("I am planning a trip to Lisbon")
    s.add_result("plan trip", {"days": 3})
    ctx = s.get_context()
    assert ctx["interaction_count"] == 1 and ctx["results"][0]["results"] == {"days": 3}
    assert "lisbon" in ctx["recent_topics"] and ctx["recent_history"][0]["role"] == "user"


def test_save_is_atomic_and_load_restores(rt, tmp_path):
    s = Session(session_id="saver")
    s.chat("hello")
    s.create_checkpoint("cp")
    path = s.save(tmp_path / "out" / "saver.pkl", with_checkpoints=True)
    assert sorted(os.listdir(tmp_path / "out")) == ["saver.pkl"]  # no temp file left behind
    s.delete()
    loaded = Session.load(path)
    assert users(loaded) == ["hello"] and loaded.list_checkpoints()[0]["label"] == "cp"
    other = Session.load(path, session_id="copy")
    assert other.session_id == "copy" and users(other) == ["hello"]


def _future_version_file(path):
    body = msgpack.packb({"kind": "repertory.session"})
    path.write_bytes(struct.pack(">3sBI", b"RPS", 200, zlib.crc32(body)) + body)


@pytest.mark.parametrize("make,error", [
    (lambda p, good: p.write_bytes(good[: len(good) // 2]), CorruptState),
    (lambda p, good: p.write_bytes(good[:-1] + bytes([good[-1] ^ 0x55])), CorruptState),
    (lambda p, good: p.write_bytes(pickle.dumps({"history": [1, 2]})), CorruptState),
    (lambda p, good: _future_version_file(p), UnsupportedFormat),
    (lambda p, good: p.write_bytes(b""), CorruptState),
])
def test_hostile_files_raise_typed_errors_and_change_nothing(rt, tmp_path, make, error):
    s = Session(session_id="victim")
    s.chat("keep me")
    good = open(s.save(tmp_path / "good.rps"), "rb").read()
    bad = tmp_path / "bad.pkl"
    make(bad, good)
    before = bad.read_bytes()
    with pytest.raises(error, match="bad.pkl"):
        Session.load(bad)
    assert bad.read_bytes() == before
    assert users(Session(session_id="victim")) == ["keep me"]


def test_two_runtimes_write_one_session_without_lost_updates(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = LocalRuntime(Settings(store=url)), LocalRuntime(Settings(store=url))
    try:
        sa, sb = Session(session_id="contended", runtime=a), Session(session_id="contended", runtime=b)

        async def burst():
            return await asyncio.gather(*[(sa if i % 2 else sb).achat(f"m{i}") for i in range(40)],
                                        return_exceptions=True)

        results = asyncio.run(burst())
        lost = [i for i, r in enumerate(results) if isinstance(r, Exception)]
        assert not lost, results  # after the first collision the runtimes take turns by lease
        # Read through a third runtime: a runtime's resident copy only learns of another
        # runtime's writes on its next write (compare-and-set) or after passivation.
        c = LocalRuntime(Settings(store=url))
        hist = Session(session_id="contended", runtime=c).get_history()
        c.shutdown()
        # Every acknowledged turn is there exactly once; a turn that gave up left nothing.
        assert sorted(m["content"] for m in hist[0::2]) == sorted(f"m{i}" for i in range(40) if i not in lost)
        assert all(r["content"].endswith(f"\u201c{u['content']}\u201d.") for u, r in zip(hist[0::2], hist[1::2]))
    finally:
        a.shutdown()
        b.shutdown()


def test_ttl_expiry_and_pin_on_sqlite(tmp_path):
    repertory.init(runtime="local", store=f"sqlite:///{tmp_path / 'ttl.db'}", sweep_interval=0.1,
                        idle_timeout=0.2)
    try:
        short = Session(session_id="short", ttl=0.5)
        short.chat("bye soon")
        pinned = Session(session_id="pinned", ttl=0.5)
        pinned.chat("stay")
        pinned.pin()
        wait_for(lambda: not Session(session_id="short").exists(), what="the short session to expire")
        # the sweeper removes the expired row
        wait_for(lambda: asyncio.run(_list(tmp_path / "ttl.db")) == ["pinned"], what="the sweep")
        assert Session(session_id="pinned").exists()
    finally:
        repertory.shutdown()


async def _list(path):
    from repertory.stores import SQLiteStore

    store = SQLiteStore(path)
    try:
        import sqlite3

        return [r[0] for r in sqlite3.connect(path).execute("SELECT key FROM sessions")]
    finally:
        await store.close()


async def test_async_context_manager(rt):
    async with Session(session_id="ctx") as s:
        await s.achat("inside")
    with pytest.raises(RuntimeError):
        async with Session(session_id="ctx") as s:
            await s.achat("before the error")
            raise RuntimeError("boom")
    assert len(await Session(session_id="ctx").aget_history()) == 4


message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system"]),
     "content": st.text(max_size=200), "timestamp": st.floats(0, 2e9, allow_nan=False)},
    optional={"name": st.text(min_size=1, max_size=10)})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.lists(message, max_size=15), b=st.lists(message, max_size=15))
def test_property_save_load_fork_merge_keep_histories(rt, tmp_path, a, b):
    import uuid

    sa, sb = Session(session_id=f"a-{uuid.uuid4().hex}"), Session(session_id=f"b-{uuid.uuid4().hex}")
    sa.set_history(a)
    sb.set_history(b)
    path = sa.save(tmp_path / f"{sa.session_id}.rps")
    assert Session.load(path, session_id=f"l-{uuid.uuid4().hex}").get_history() == a
    assert sa.fork().get_history() == a
    merged = Session.merge(sa, sb, session_id=f"m-{uuid.uuid4().hex}").get_history()
    # every message once (duplicates across sides kept once), ordered by timestamp
    def ident(m):
        return (m["role"], m["content"], m["timestamp"], None)
    assert len({ident(m) for m in merged}) == len(merged) == len({ident(m) for m in a + b})
    assert [m["timestamp"] for m in merged] == sorted(m["timestamp"] for m in merged)


async def test_concurrent_results_and_preferences_lose_nothing(rt):
    s = Session(session_id="busy-fields")
    await asyncio.gather(*[s.aadd_result(f"objective {i}", i) for i in range(20)],
                         *[s.aupdate_preference(f"p{i}", i) for i in range(20)])
    ctx = await s.aget_context()
    assert sorted(r["results"] for r in ctx["results"]) == list(range(20))
    assert ctx["user_profile"]["preferences"] == {f"p{i}": i for i in range(20)}


def test_for_session_addresses_another_session_with_the_same_settings(rt):
    agent = repertory.Agent(name="Copied", instructions="Be brief.")
    a = Session("orig", agent, "u1", context_window=4, checkpoint_every=2)
    b = a.for_session("copy", "u2")
    assert (b.session_id, b.user_id, a.session_id, a.user_id) == ("copy", "u2", "orig", "u1")
    assert b.agent is agent and b.context_window == 4 and b.checkpoint_every == 2
    b.chat("My name is Ada")
    b.chat("and again")
    assert users(b) == ["My name is Ada", "and again"] and not a.exists()
    assert len(b.list_checkpoints()) == 1  # its own settings apply to its own turns
    assert Session("copy", user_id="u2").agent.name == "Copied"  # stored with the definitions
    b.merge_conflicts.append({"x": 1})
    assert a.merge_conflicts == []
    with pytest.raises(InvalidInput):
        a.for_session("bad/id")
