"""The declared schema of stored session state (repertory.state.schema / .values)."""

import math
from collections import OrderedDict
from enum import IntEnum

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repertory.errors import CorruptState, InvalidInput, UnsupportedFormat
from repertory.state.session_state import SCHEMA_VERSION as LIVE_SCHEMA_VERSION
from repertory.state.session_state import SessionState
from repertory.state.schema import (MAX_DEPTH, SCHEMA_VERSION, check_checkpoint_info, check_export_doc,
                                    check_message, check_meta, check_ttl, check_value)
from repertory.state.ops import snapshot
from repertory.stores.codec import MsgpackCodec

codec = MsgpackCodec()
NAN = float("nan")


def nested(depth: int) -> list:
    """``depth`` lists, one inside the other (built without recursion)."""
    v: list = []
    for _ in range(depth - 1):
        v = [v]
    return v


# -- plain values -------------------------------------------------------------------------------
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) \
    | st.text() | st.binary()
clean = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
                     max_leaves=20)
# What is refused because it would not read back equal (bytes keys and depth are policy: tested below).
poison = (st.tuples(scalars) | st.frozensets(st.integers(), max_size=2) | st.sets(st.integers(), max_size=2)
          | st.just(NAN) | st.integers(2**64, 2**70) | st.integers(-(2**70), -(2**63) - 1)
          | st.just("a\ud800b") | st.builds(object)
          | st.dictionaries(st.integers() | st.none() | st.floats() | st.tuples(st.integers()) | st.booleans(),
                            scalars, min_size=1, max_size=2))
poisoned = st.recursive(poison, lambda kids: st.one_of(
    st.tuples(st.lists(clean, max_size=2), kids).map(lambda p: [*p[0], p[1]]),
    st.tuples(st.dictionaries(st.text(), clean, max_size=2), st.text(), kids).map(lambda p: {**p[0], p[1]: p[2]}),
), max_leaves=5)


def strict_round_trip_equal(value) -> bool:
    """Raw msgpack, read with str/bytes keys only (sets written as lists, as the old codec did)."""
    def default(o):
        if isinstance(o, (set, frozenset)):
            return list(o)
        raise TypeError(type(o).__name__)

    try:
        back = msgpack.unpackb(msgpack.packb(value, use_bin_type=True, default=default), raw=False,
                               strict_map_key=True)
    except Exception:
        return False
    return back == value


@settings(max_examples=300, deadline=None)
@given(clean)
def test_accepted_values_round_trip_equal(value):
    check_value(value, "v")
    assert codec.decode(codec.encode(value)) == value


@settings(max_examples=300, deadline=None)
@given(poisoned)
def test_refused_values_would_not_round_trip(value):
    with pytest.raises(InvalidInput):
        check_value(value, "v")
    with pytest.raises(InvalidInput):  # one rule: the codec refuses exactly the same
        codec.encode(value)
    assert not strict_round_trip_equal(value)


@settings(max_examples=200, deadline=None)
@given(clean | poisoned)
def test_codec_and_check_value_agree(value):
    try:
        check_value(value, "v")
        ok = True
    except InvalidInput:
        ok = False
    try:
        codec.encode(value)
        assert ok
    except InvalidInput:
        assert not ok


@pytest.mark.parametrize("value,match", [
    ({"a": (1, 2)}, r"v\['a'\] is a tuple, which would read back as a list; pass a list"),
    ([{1, 2}], r"v\[0\] is a set"),
    ({"x": [0.5, NAN]}, r"v\['x'\]\[1\] is NaN"),
    ({(1, 2): "a"}, "has the tuple key"),
    ({1: "a"}, "has the int key 1; stored dict keys must be str"),
    ({b"k": "a"}, "has the bytes key"),  # msgpack could carry it; JSON exports could not
    ({"n": 2**64}, "outside 64 bits"),
    ({"s": "\ud800"}, "not valid Unicode"),
    ({"o": object()}, "has type object; session state holds plain data"),
])
def test_check_value_names_the_path_and_the_fix(value, match):
    with pytest.raises(InvalidInput, match=match):
        check_value(value, "v")


def test_equal_reading_values_are_accepted():
    for v in [math.inf, -math.inf, 2**64 - 1, -(2**63), b"\x00", bytearray(b"ab"), OrderedDict(a=1),
              IntEnum("E", "A").A, {"é": "ü"}, True, None, -0.0]:
        check_value(v, "v")
        assert codec.decode(codec.encode(v)) == v


def test_depth_is_bounded_without_recursion_error():
    check_value(nested(MAX_DEPTH), "v")
    with pytest.raises(InvalidInput, match=f"nests more than {MAX_DEPTH} containers deep"):
        check_value(nested(MAX_DEPTH + 1), "v")
    with pytest.raises(InvalidInput, match="deep"):
        check_value(nested(100_000), "v")
    with pytest.raises(CorruptState, match="restore it"):
        check_value(nested(100), "v", error=CorruptState)


# -- messages -----------------------------------------------------------------------------------
def test_messages_the_runtime_writes_pass():
    state = SessionState.new("alice/s1", "s1", "alice", ttl=60.0)
    msgs = [{"role": "user", "content": "hi", "timestamp": 1.0, "agent": "a"},
            {"role": "assistant", "content": None, "name": "a", "timestamp": 2.0,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": None, "name": None, "content": "error: no tool", "timestamp": 3.0},
            {"role": "assistant", "content": "ok", "name": "a", "timestamp": 4.0,
             "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}, "edited_at": 5}]
    _, meta, encoded = state.append_write(msgs, turn_id="t1")
    assert check_meta(meta, "session 'alice/s1'") == meta
    for i, blob in enumerate(encoded):
        assert check_message(codec.decode(blob), i) == msgs[i]
    assert check_message({"role": "system", "content": "x", "refusal": None}, 0)["refusal"] is None


@pytest.mark.parametrize("msg,match", [
    ("hi", "history message 3 must be a dict, got str"),
    ({"role": "bot", "content": "x"}, "has role 'bot'"),
    ({"role": ["user"], "content": "x"}, "has role"),
    ({"role": "user", "content": None}, r"\['content'\] must be a str"),
    ({"role": "user"}, r"\['content'\] must be a str"),
    ({"role": "assistant", "content": None, "tool_calls": []}, r"\['content'\]"),
    ({"role": "user", "content": "x", "timestamp": "now"}, r"\['timestamp'\] must be a finite number"),
    ({"role": "user", "content": "x", "timestamp": math.inf}, "finite"),
    ({"role": "user", "content": "x", "agent": None}, r"\['agent'\] must be a str"),
    ({"role": "user", "content": "x", "name": 3}, r"\['name'\]"),
    ({"role": "user", "content": "x", "usage": {"t": "1"}}, r"\['usage'\]"),
    ({"role": "user", "content": "x", "usage": {"t": True}}, r"\['usage'\]"),
    ({"role": "assistant", "content": "x", "tool_calls": "f"}, r"\['tool_calls'\] must be a list of dicts"),
    ({"role": "user", "content": "x", "extra": (1,)}, r"\['extra'\] is a tuple"),
])
def test_bad_messages(msg, match):
    with pytest.raises(InvalidInput, match=match):
        check_message(msg, 3)
    with pytest.raises(CorruptState, match="restore it from a checkpoint"):
        check_message(msg, 3, where="session 'k'", error=CorruptState)


# -- meta ---------------------------------------------------------------------------------------
def fresh_meta(**changes):
    meta = SessionState.new("alice/s1", "s1", "alice", ttl=None).meta
    meta.update(changes)
    return meta


def test_schema_version_is_the_live_one():
    assert SCHEMA_VERSION == LIVE_SCHEMA_VERSION
    check_meta(fresh_meta(last_turn_id="t"), "m")


def test_recent_ops_are_declared():
    ops = [["o1", None], ["o2", "v1"], ["o3", ["c1", 0, 2]]]
    assert check_meta(fresh_meta(recent_ops=ops), "m")["recent_ops"] == ops
    check_meta(SessionState.new("s2", "s2", None, ttl=3600).meta, "m")


@pytest.mark.parametrize("changes,match", [
    ({"updated_at": "yesterday"}, r"\['updated_at'\] must be a finite number"),
    ({"created_at": math.nan}, r"\['created_at'\]"),
    ({"turns": "many"}, r"\['turns'\] must be an int >= 0"),
    ({"turns": -1}, r"\['turns'\]"),
    ({"turns": True}, r"\['turns'\]"),
    ({"recent_turns": "x"}, r"\['recent_turns'\] must be a list of \[turn id, message index\] pairs"),
    ({"recent_turns": [["t", "1"]]}, r"\['recent_turns'\]"),
    ({"recent_turns": [("t", 1)]}, r"\['recent_turns'\]"),
    ({"ttl": math.inf}, r"\['ttl'\] must be a positive number of seconds"),
    ({"ttl": 0}, r"\['ttl'\]"),
    ({"user_data": []}, r"\['user_data'\] must be a dict"),
    ({"metadata": {"w": {"t": (1,)}}}, r"\['metadata'\]\['w'\]\['t'\] is a tuple"),
    ({"user_profile": {3: "x"}}, r"\['user_profile'\] has the int key 3"),
    ({"session_id": "a/b"}, "session_id 'a/b' may only hold"),
    ({"user_id": 7}, "user_id must be a str"),
    ({"schema": "1"}, r"\['schema'\] is '1'"),
    ({"nickname": "x"}, r"unknown fields \['nickname'\]"),
    ({"last_turn_id": 5}, r"\['last_turn_id'\]"),
    ({"recent_ops": "x"}, r"\['recent_ops'\] must be a list of \[operation id, result\] pairs"),
    ({"recent_ops": [["o1"]]}, r"\['recent_ops'\]\[0\] must be an \[operation id, result\] pair"),
    ({"recent_ops": [["", None]]}, r"\['recent_ops'\]\[0\]"),
    ({"recent_ops": [[1, None]]}, r"\['recent_ops'\]\[0\]"),
    ({"recent_ops": [["o1", 5]]}, r"\['recent_ops'\]\[0\] has result 5"),
    ({"recent_ops": [["o1", ["c1", 3, 2]]]}, r"\['recent_ops'\]\[0\] has result"),
    ({"recent_ops": [["o1", ["c1", -1, 2]]]}, r"\['recent_ops'\]\[0\] has result"),
    ({"recent_ops": [["o1", {"id": 1}]]}, r"\['recent_ops'\]\[0\] has result"),
])
def test_bad_meta(changes, match):
    with pytest.raises(CorruptState, match=match) as exc:
        check_meta(fresh_meta(**changes), "session 'alice/s1'")
    assert "restore it from a checkpoint or a backup" in str(exc.value)
    with pytest.raises(InvalidInput, match=match):
        check_meta(fresh_meta(**changes), "meta", error=InvalidInput)


def test_meta_shape():
    meta = fresh_meta()
    del meta["user_data"]
    with pytest.raises(CorruptState, match=r"meta lacks \['user_data'\]"):
        check_meta(meta, "m")
    with pytest.raises(CorruptState, match="meta must be a dict, got str"):
        check_meta("x", "m")
    with pytest.raises(UnsupportedFormat, match="schema 2; this release reads schema 1. Upgrade"):
        check_meta(fresh_meta(schema=2), "session 'k'")
    with pytest.raises(InvalidInput, match="it must be 1"):
        check_meta(fresh_meta(schema=2), "m", error=InvalidInput)


# -- ttl and checkpoint info --------------------------------------------------------------------
def test_ttl():
    assert [check_ttl(t) for t in (None, 1, 0.5)] == [None, 1, 0.5]
    for bad in (0, -1, math.inf, math.nan, "10", True, 10**400, None.__class__):
        with pytest.raises(InvalidInput, match="use None to keep the session forever"):
            check_ttl(bad)


def info(**changes):
    return {"id": 1, "cp_id": "c1", "kind": "checkpoint", "turn": 2, "timestamp": 1717000000.0,
            "label": "auto at turn 2", **changes}


def test_checkpoint_info():
    assert check_checkpoint_info(info(), "cp") == info()
    check_checkpoint_info(info(id=0, cp_id="v0", kind="version"), "cp")


@pytest.mark.parametrize("changes,match", [
    ({"id": "notanint"}, "checkpoint id must be an int >= 1, got 'notanint'"),
    ({"id": 0, "cp_id": "c0"}, "int >= 1"),
    ({"id": -1, "cp_id": "v-1", "kind": "version"}, "version id must be an int >= 0"),
    ({"id": True}, "int >= 1"),
    ({"cp_id": "v1"}, "cp_id 'v1' does not match checkpoint 1"),
    ({"kind": "snapshot"}, "kind is 'snapshot'"),
    ({"label": {"a": 1}}, "label must be a str, got dict"),
    ({"turn": -1}, "turn must be an int >= 0"),
    ({"timestamp": math.nan}, "timestamp must be a finite number"),
    ({"extra": 1}, "exactly"),
])
def test_bad_checkpoint_info(changes, match):
    with pytest.raises(CorruptState, match=match):
        check_checkpoint_info(info(**changes), "cp")


def test_checkpoint_info_shape():
    with pytest.raises(CorruptState, match="exactly"):
        check_checkpoint_info({1: 2, "a": 3}, "cp")  # mixed keys: no TypeError from sorting
    with pytest.raises(CorruptState, match="exactly"):
        check_checkpoint_info("c1", "cp")


# -- exported sessions --------------------------------------------------------------------------
def export_doc(**changes):
    state = SessionState.new("alice/s1", "s1", "alice")
    _, meta, encoded = state.append_write([{"role": "user", "content": "hi", "timestamp": 1.0},
                                           {"role": "assistant", "content": "hello", "timestamp": 2.0}],
                                          turn_id="t1")
    state.applied(1, meta, encoded)
    doc = {"kind": "repertory.session", "key": "alice/s1", "meta": meta, "messages": encoded, "version": 1,
           "checkpoints": [{"info": info(turn=1), "data": snapshot(state)}]}
    doc.update(changes)
    return doc


def test_export_doc_round_trips():
    doc = export_doc()
    assert check_export_doc(doc, "file x.rps") == doc
    no_kind = {k: v for k, v in export_doc(checkpoints=None).items() if k != "kind"}  # a parsed JSONL line
    assert check_export_doc(no_kind, "x.jsonl line 1")["checkpoints"] == []


def hostile_docs():
    good = export_doc()
    m = good["meta"]
    cp = good["checkpoints"][0]
    return [
        (export_doc(meta={**m, "updated_at": "yesterday"}), r"line 4 meta\['updated_at'\] must be a finite number"),
        (export_doc(meta={**m, "turns": "many"}), r"\['turns'\]"),
        (export_doc(meta={**m, "recent_turns": "x"}), r"\['recent_turns'\]"),
        (export_doc(checkpoints=[{**cp, "info": info(id="notanint")}]), "checkpoint 0 checkpoint id must be an int"),
        (export_doc(checkpoints=[{**cp, "info": info(label={"a": 1})}]), "label must be a str"),
        (export_doc(messages=[codec.encode(b"garbage")]), "message 0 must be a dict, got bytes"),
        (export_doc(messages=[codec.encode({"role": "user"})]), r"message 0\['content'\]"),
        (export_doc(messages=[b"garbage"]), "not repertory state"),
        (export_doc(messages=["text"]), "message 0 must be an encoded record"),
        (export_doc(messages="x"), "messages must be a list"),
        (export_doc(meta={k: v for k, v in m.items() if k != "user_data"}), r"meta lacks \['user_data'\]"),
        (export_doc(meta="x"), "meta must be a dict, got str"),
        ("x", "is not an exported session"),
        (export_doc(kind="other"), "is not an exported session"),
        (export_doc(key="bob/s1"), "key 'bob/s1' does not match the session it holds"),
        (export_doc(version=-1), "version must be an int >= 0"),
        (export_doc(checkpoints="x"), "checkpoints must be a list"),
        (export_doc(checkpoints=[cp, cp]), "'c1' appears twice"),
        (export_doc(checkpoints=[{**cp, "data": codec.encode({"meta": m})}]), "is not a session snapshot"),
        (export_doc(checkpoints=[{**cp, "data": codec.encode({"meta": {**m, "turns": -2}, "messages": []})}]),
         r"checkpoint 0 meta\['turns'\]"),
        (export_doc(checkpoints=[{**cp, "data": codec.encode({"meta": m, "messages": [codec.encode(1)]})}]),
         "checkpoint 0 message 0 must be a dict"),
        (export_doc(checkpoints=[{**cp, "data": cp["data"][:-1]}]), "checksum"),
        (export_doc(checkpoints=[{"info": cp["info"]}]), "must be an encoded record"),
    ]


@pytest.mark.parametrize("case", range(len(hostile_docs())))
def test_hostile_export_docs(case):
    doc, match = hostile_docs()[case]
    with pytest.raises(CorruptState, match=match) as exc:
        check_export_doc(doc, "x.jsonl line 4")
    assert "x.jsonl line 4" in str(exc.value)
    assert "nothing was imported" in str(exc.value).lower()
    assert "remove it and import the rest" in str(exc.value)


def test_newer_schema_is_unsupported():
    with pytest.raises(UnsupportedFormat, match="Upgrade repertory"):
        check_export_doc(export_doc(meta={**export_doc()["meta"], "schema": 2}), "f")
