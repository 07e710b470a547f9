import collections

import pytest

from repertory.errors import InvalidSessionId
from repertory.ids import new_session_id, validate_session_id, validate_user_id
from repertory.host.routing import host_index, jump_hash
from repertory.ids import storage_key


@pytest.mark.parametrize("bad", ["", "a" * 129, "has space", "slash/no", "-lead", "ümlaut", None, 5])
def test_invalid_ids(bad):
    with pytest.raises(InvalidSessionId):
        validate_session_id(bad)


def test_valid_ids():
    for good in ["user_123", "project_x", new_session_id(), "a.b:c@d-e"]:
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
