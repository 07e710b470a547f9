import collections

import pytest

import hashlib

from repertory.errors import InvalidInput, InvalidSessionId
from repertory.ids import SessionRef, new_session_id, validate_session_id, validate_user_id
from repertory.host.routing import host_index, jump_hash
from repertory.ids import storage_key


@pytest.mark.parametrize("bad", ["", "a" * 129, "has space", "slash/no", "-lead", "ümlaut", None, 5])
def test_invalid_ids(bad):
    with pytest.raises(InvalidSessionId):
        validate_session_id(bad)


def test_valid_ids():
    for good in ["user_123", "project_x", new_session_id(), "a.b:c@d-e", "a" * 128, "7"]:
        assert validate_session_id(good) == good
    assert validate_user_id(None) is None


def test_user_scoping_never_collides():
    keys = {storage_key("s", None), storage_key("s", "alice"), storage_key("s", "bob")}
    assert len(keys) == 3


def test_jump_hash_is_stable_and_balanced():
    counts = collections.Counter(host_index(f"session-{i}", 8) for i in range(8000))
    assert set(counts) == set(range(8))
    assert min(counts.values()) > 800
    assert host_index("x", 8) == host_index("x", 8)


def test_jump_hash_moves_few_keys():
    moved = sum(jump_hash(k, 10) != jump_hash(k, 11) for k in range(10000))
    assert moved < 10000 * 0.15


# Placement must not change between releases or processes: hosts of a running cluster and a
# restarted one must agree. Expected values computed once and pinned.
@pytest.mark.parametrize("key,buckets,expected", [
    # the published test vectors of jump consistent hash (Lamping & Veach; dgryski/go-jump)
    (1, 1, 0), (42, 57, 43), (0xDEAD10CC, 1, 0), (0xDEAD10CC, 666, 361), (256, 1024, 520),
    # keys wider than 64 bits and negative keys are taken modulo 2**64
    (2**64 - 1, 10, 9), (2**64 - 1, 1000, 313), (-1, 1000, 313), (2**70 + 5, 1000, 231), (5, 1000, 231),
])
def test_jump_hash_pinned_values(key, buckets, expected):
    assert jump_hash(key, buckets) == expected


@pytest.mark.parametrize("key,expected", [
    ("s1", [0, 0, 0, 4, 4, 4]),
    ("alice/s1", [0, 1, 2, 4, 4, 64]),
    ("session-0", [0, 1, 2, 6, 15, 58]),
    ("x", [0, 0, 0, 7, 7, 55]),
])
def test_host_index_pinned_values(key, expected):
    assert [host_index(key, n) for n in (1, 2, 3, 8, 16, 100)] == expected


@pytest.mark.parametrize("buckets", [0, -1])
def test_jump_hash_needs_a_bucket(buckets):
    with pytest.raises(ValueError, match="buckets must be positive"):
        jump_hash(1, buckets)


@pytest.mark.parametrize("bad,match", [
    (5, "^session_id must be a str, got int$"),
    ("a" * 129, "must be 1 to 128 characters long; use a shorter id, or leave session_id=None for a uuid4$"),
    ("-x", "may only hold letters, digits and . _ : @ - and must start with a letter or digit$"),
])
def test_invalid_id_messages_say_what_to_do(bad, match):
    with pytest.raises(InvalidSessionId, match=match):
        validate_session_id(bad)


def test_session_ref_checks_every_field():
    assert SessionRef("s", "alice", "dedicated").key == "alice/s"
    with pytest.raises(InvalidSessionId, match="^user_id 'bad/x'"):
        SessionRef("s", "bad/x")
    with pytest.raises(InvalidSessionId, match="^session_id"):
        SessionRef("bad/x")
    with pytest.raises(InvalidInput, match="placement must be 'pooled' or 'dedicated', not 'elsewhere'"):
        SessionRef("s", placement="elsewhere")
    assert SessionRef.from_key("alice/s") == SessionRef("s", "alice")
    assert SessionRef.from_key("s", "dedicated") == SessionRef("s", None, "dedicated")
    assert str(SessionRef("s", "alice")) == "alice/s"


def test_host_index_of_many_keys_is_pinned():
    placements = [host_index(f"session-{i}", n) for i in range(500) for n in (3, 7, 64, 1000)]
    assert hashlib.sha256(repr(placements).encode()).hexdigest() == (
        "722cb81877d73c6a2d0d1f1942b4939f1f9219f6cbb511f6cf15cea4bfd558ce")


def test_spread_places_hosts_over_every_node_in_proportion_to_cpus():
    from collections import Counter

    from repertory.host.routing import spread

    nodes = [("b", 2.0), ("a", 4.0), ("c", 2.0)]
    assert Counter(spread(nodes, 8)) == {"a": 4, "b": 2, "c": 2}
    assert set(spread(nodes, 3)) == {"a", "b", "c"}  # a small count still reaches every node
    assert spread(nodes, 5) == spread(list(reversed(nodes)), 5)  # the same in every process
    assert spread([("x", 0.0)], 2) == ["x", "x"]  # a zero-CPU node still takes hosts
    with pytest.raises(ValueError):
        spread([], 1)
