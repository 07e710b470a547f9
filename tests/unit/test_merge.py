"""merge_states: histories interleaved by time, a shared past once; later-updated user data wins."""

from repertory.state.merge import merge_states


def msg(role, content, ts, **extra):
    return {"role": role, "content": content, "timestamp": ts, **extra}


def state(sid, history, user_data, updated_at):
    return {"session_id": sid, "history": history, "user_data": user_data, "updated_at": updated_at}


def test_later_updated_user_data_wins_either_way_round():
    old = state("old", [], {"colour": "red", "size": 1, "only_old": True}, updated_at=100.0)
    new = state("new", [], {"colour": "blue", "size": 1, "only_new": True}, updated_at=200.0)
    for a, b in ((old, new), (new, old)):
        result = merge_states(a, b)
        assert result.user_data == {"colour": "blue", "size": 1, "only_old": True, "only_new": True}
        # only the key both set differently is a conflict, named with both values and the winner
        assert result.conflicts == [{"key": "colour", "values": {"old": "red", "new": "blue"},
                                     "kept": "blue", "from": "new"}]


def test_equal_update_times_keep_the_first_sessions_value():
    a = state("a", [], {"k": "from a"}, updated_at=5.0)
    b = state("b", [], {"k": "from b"}, updated_at=5.0)
    result = merge_states(a, b)
    assert result.user_data == {"k": "from a"} and result.conflicts[0]["from"] == "a"
    # a session without an update time counts as oldest
    del b["updated_at"]
    assert merge_states(b, state("c", [], {"k": "from c"}, updated_at=0.5)).user_data == {"k": "from c"}


def test_conflicts_are_sorted_by_key():
    a = state("a", [], {"z": 1, "b": 1, "m": 1}, updated_at=1.0)
    b = state("b", [], {"z": 2, "b": 2, "m": 1}, updated_at=2.0)
    assert [c["key"] for c in merge_states(a, b).conflicts] == ["b", "z"]


def test_histories_interleave_by_time_and_a_shared_past_appears_once():
    shared = [msg("user", "hi", 1.0), msg("assistant", "hello", 2.0)]
    a = state("a", [*shared, msg("user", "from a", 5.0), msg("assistant", "ok a", 6.0)], {}, 1.0)
    b = state("b", [*shared, msg("user", "from b", 3.0), msg("tool", "x", 5.0, tool_call_id="t1")], {}, 2.0)
    result = merge_states(a, b)
    assert [m["content"] for m in result.history] == ["hi", "hello", "from b", "from a", "x", "ok a"]


def test_same_content_at_other_times_or_tool_calls_is_kept_twice():
    a = state("a", [msg("user", "yes", 1.0), msg("tool", "r", 4.0, tool_call_id="t1")], {}, 1.0)
    b = state("b", [msg("user", "yes", 2.0), msg("tool", "r", 4.0, tool_call_id="t2")], {}, 1.0)
    result = merge_states(a, b)
    assert [(m["content"], m.get("tool_call_id")) for m in result.history] == [
        ("yes", None), ("yes", None), ("r", "t1"), ("r", "t2")]


def test_messages_without_timestamp_come_first_in_their_order():
    a = state("a", [{"role": "user", "content": "a0"}, msg("user", "a1", 1.0)], {}, 1.0)
    b = state("b", [{"role": "user", "content": "b0"}, {"role": "user", "content": "b1"}], {}, 1.0)
    assert [m["content"] for m in merge_states(a, b).history] == ["a0", "b0", "b1", "a1"]


def test_a_side_without_update_time_is_older():
    newer = state("newer", [], {"k": "newer"}, updated_at=0.5)
    undated = {"session_id": "undated", "history": [], "user_data": {"k": "undated"}}
    assert merge_states(newer, undated).user_data == {"k": "newer"}
    assert merge_states(undated, newer).user_data == {"k": "newer"}


def test_same_time_messages_keep_side_order_then_position():
    a = state("a", [msg("user", "a0", 1.0), msg("user", "a1", 2.0)], {}, 1.0)
    b = state("b", [msg("user", "b0", 2.0), msg("user", "b1", 2.0)], {}, 1.0)
    assert [m["content"] for m in merge_states(a, b).history] == ["a0", "a1", "b0", "b1"]


def test_messages_differing_only_in_role_are_both_kept():
    a = state("a", [msg("user", "same", 1.0)], {}, 1.0)
    b = state("b", [msg("assistant", "same", 1.0)], {}, 1.0)
    assert [m["role"] for m in merge_states(a, b).history] == ["user", "assistant"]


def test_conflicts_on_keys_of_older_records_that_are_not_str():
    # records written before the encoder refused non-str keys still decode with them
    a = state("a", [], {1: "x", "b": "x"}, updated_at=1.0)
    b = state("b", [], {1: "y", "b": "y"}, updated_at=2.0)
    assert [c["key"] for c in merge_states(a, b).conflicts] == [1, "b"]
