"""Sessions on the default Ray runtime over a Redis Cluster store (``redis+cluster://``, with
replicated commits): a few turns, a master failed over, a restart, everything read back."""

import os
import uuid

import pytest

import repertory
from redis_cluster import redis_cluster  # noqa: F401  (the module's cluster fixture)
from repertory import Session

pytestmark = [pytest.mark.ray, pytest.mark.redis, pytest.mark.redis_cluster]


def test_turns_survive_a_failover_and_a_restart(ray_cluster, redis_cluster, tmp_path):  # noqa: F811
    url = redis_cluster.url(f"rptest-{uuid.uuid4().hex}", wait=1)
    namespace = f"rc{os.getpid()}-{tmp_path.name}"[:60]
    repertory.init(store=url, num_hosts=1, namespace=namespace)
    try:
        s = Session(session_id="alice-1")
        s.chat("My name is Alice")
        s.chat("I live in Lisbon")
        key = next(n.decode() for n in redis_cluster.keys_of("alice-1") if n.endswith(b":meta"))
        redis_cluster.failover(redis_cluster.master_of(key))
        assert "Alice" in s.chat("What's my name?")
    finally:
        repertory.shutdown()
    repertory.init(store=url, num_hosts=1, namespace=namespace)
    try:
        history = Session(session_id="alice-1").get_history()
        assert [m["content"] for m in history[0::2]] == ["My name is Alice", "I live in Lisbon", "What's my name?"]
        assert len(history) == 6
    finally:
        repertory.shutdown()
