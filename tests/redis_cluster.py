"""The Redis Cluster fixture for tests: a fresh private cluster per module
(repertory.chaos.redis_cluster, which the chaos run's failover fault uses too)."""

from __future__ import annotations

import pytest

from repertory.chaos.redis_cluster import PrivateRedisCluster, start_cluster

__all__ = ["PrivateRedisCluster", "redis_cluster", "start_cluster"]


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    """A fresh 3-master, 3-replica cluster for one test module (it takes a few seconds to form)."""
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()
