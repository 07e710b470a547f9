"""The chaos checker on hand-made logs and histories: each kind of anomaly is caught, a clean run passes.

The checker is what makes a chaos run mean something; these tests make sure it cannot pass by
accident (a lost turn, a duplicate, a reorder, a phantom, a wrong reply, a state operation
applied twice or not at all).
"""

from __future__ import annotations

import pytest

from repertory.chaos.checker import StoredSession, check, recovery_times
from repertory.chaos.log import AckLog, read_log
from repertory.errors import InvalidInput


def _log(tmp_path, turns=3, ops=2):
    log = AckLog(tmp_path / "acks.jsonl")
    for i in range(turns):
        log.sent("c0", "s1", f"t{i}", f"m{i}")
        log.turn("c0", "s1", f"t{i}", f"m{i}", f"r{i}", ack=10.0 + i)
    for i in range(ops):
        log.op_sent("c0", "s1", f"o{i}")
        log.op("c0", "s1", f"o{i}", ack=20.0 + i)
    log.close()
    return read_log(tmp_path / "acks.jsonl")


def _history(pairs):
    out = []
    for user, reply in pairs:
        out += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return out


CLEAN = [("m0", "r0"), ("m1", "r1"), ("m2", "r2")]


def _kinds(anomalies):
    return sorted(a.kind for a in anomalies)


def test_a_clean_run_passes(tmp_path):
    records = _log(tmp_path)
    assert check(records, {"s1": StoredSession(_history(CLEAN), ["o0", "o1"])}) == []


def test_a_lost_turn_is_caught(tmp_path):
    records = _log(tmp_path)
    found = check(records, {"s1": StoredSession(_history([CLEAN[0], CLEAN[2]]), ["o0", "o1"])})
    assert _kinds(found) == ["lost"] and "m1" in found[0].detail


def test_a_lost_session_is_caught(tmp_path):
    records = _log(tmp_path)
    assert _kinds(check(records, {})) == ["lost"] * 3 + ["op-missing"] * 2


def test_a_duplicate_is_caught(tmp_path):
    records = _log(tmp_path)
    found = check(records, {"s1": StoredSession(_history([*CLEAN, CLEAN[1]]), ["o0", "o1"])})
    assert _kinds(found) == ["duplicate"]


def test_a_reorder_is_caught(tmp_path):
    records = _log(tmp_path)
    found = check(records, {"s1": StoredSession(_history([CLEAN[1], CLEAN[0], CLEAN[2]]), ["o0", "o1"])})
    assert _kinds(found) == ["reorder"]


def test_a_phantom_is_caught(tmp_path):
    records = _log(tmp_path)
    found = check(records, {"s1": StoredSession(_history([*CLEAN, ("never sent", "x")]), ["o0", "o1"])})
    assert _kinds(found) == ["phantom"]


def test_a_sent_but_unacknowledged_turn_may_be_present_once(tmp_path):
    log = AckLog(tmp_path / "acks.jsonl")
    log.sent("c0", "s1", "t0", "m0")  # applied, but the client gave up before the ack
    log.close()
    records = read_log(tmp_path / "acks.jsonl")
    assert check(records, {"s1": StoredSession(_history([("m0", "r0")]), [])}) == []
    assert _kinds(check(records, {"s1": StoredSession(_history([("m0", "r0")] * 2), [])})) == ["duplicate"]


def test_a_wrong_or_missing_reply_is_caught(tmp_path):
    records = _log(tmp_path)
    wrong = check(records, {"s1": StoredSession(_history([CLEAN[0], ("m1", "other"), CLEAN[2]]), ["o0", "o1"])})
    assert _kinds(wrong) == ["reply-mismatch"]
    history = _history(CLEAN)
    del history[3]  # m1's reply is gone: m1 is followed by m2
    assert _kinds(check(records, {"s1": StoredSession(history, ["o0", "o1"])})) == ["reply-mismatch"]


def test_state_operations_applied_twice_missing_or_never_sent_are_caught(tmp_path):
    records = _log(tmp_path)
    history = _history(CLEAN)
    assert _kinds(check(records, {"s1": StoredSession(history, ["o0", "o1", "o0"])})) == ["op-duplicate"]
    assert _kinds(check(records, {"s1": StoredSession(history, ["o1"])})) == ["op-missing"]
    assert _kinds(check(records, {"s1": StoredSession(history, ["o0", "o1", "zz"])})) == ["op-phantom"]


def test_a_sent_but_unacknowledged_state_operation_may_be_applied_once(tmp_path):
    log = AckLog(tmp_path / "acks.jsonl")
    log.op_sent("c0", "s1", "o0")
    log.close()
    records = read_log(tmp_path / "acks.jsonl")
    assert check(records, {"s1": StoredSession([], ["o0"])}) == []
    assert _kinds(check(records, {"s1": StoredSession([], ["o0", "o0"])})) == ["op-duplicate"]


def test_recovery_time_is_from_the_fault_to_the_next_ack_on_an_affected_session(tmp_path):
    log = AckLog(tmp_path / "acks.jsonl")
    log.fault("host", "host-0", at=5.0, sessions=["s1"])
    log.fault("store-actor", "store", at=9.5, sessions=None)  # every session
    log.sent("c0", "s2", "t0", "a")
    log.turn("c0", "s2", "t0", "a", "ra", ack=7.0)  # another host's session: not a recovery of host-0
    log.sent("c0", "s1", "t1", "b")
    log.turn("c0", "s1", "t1", "b", "rb", ack=8.0)
    log.sent("c0", "s2", "t2", "c")
    log.turn("c0", "s2", "t2", "c", "rc", ack=10.0)
    log.fault("replica", "agent-0", at=11.0, sessions=None)  # nothing acknowledged after it
    log.close()
    records = read_log(tmp_path / "acks.jsonl")
    assert [(f.kind, t) for f, t in recovery_times(records)] == [
        ("host", 3.0), ("store-actor", 0.5), ("replica", None)]


def test_a_torn_or_foreign_log_line_is_a_typed_error(tmp_path):
    path = tmp_path / "acks.jsonl"
    path.write_text('{"kind": "turn"}\n')
    with pytest.raises(InvalidInput, match="line 1"):
        read_log(path)
