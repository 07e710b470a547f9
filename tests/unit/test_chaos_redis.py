"""The chaos run's private Redis: a SIGKILL and restart keeps every acknowledged write (AOF, fsync always)."""

import shutil

import pytest
import redis

from repertory.chaos.redis_server import PrivateRedis

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def test_a_killed_private_redis_comes_back_with_its_writes(tmp_path):
    server = PrivateRedis(tmp_path / "redis")
    assert server.port != 6379
    server.start()
    try:
        client = redis.Redis(port=server.port)
        for i in range(200):
            client.rpush("chaos:acked", i)
        client.close()
        server.restart()  # SIGKILL, then the same port and directory
        client = redis.Redis(port=server.port)
        assert [int(x) for x in client.lrange("chaos:acked", 0, -1)] == list(range(200))
        client.close()
    finally:
        server.stop()
