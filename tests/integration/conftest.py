import os

import pytest
import ray

import repertory


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the whole test run; runtimes come and go on it."""
    # address="local": always a private instance, never one another process started (ray start,
    # cluster_utils and another test run leave their address in /tmp/ray/ray_current_cluster).
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="repertory-tests",
             logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def _init(tmp_path, **settings):
    return repertory.init(store=f"sqlite:///{tmp_path / 'state.db'}",
                          namespace=f"t{os.getpid()}-{tmp_path.name}"[:60], **settings)


@pytest.fixture
def runtime(ray_cluster, tmp_path):
    """A Ray runtime over a fresh SQLite file, two hosts, a small resident cap."""
    rt = _init(tmp_path, num_hosts=2, max_resident=50)
    yield rt
    repertory.shutdown()


@pytest.fixture
def runtime_with(ray_cluster, tmp_path):
    """``runtime_with(**settings)``: a Ray runtime over a fresh SQLite file with those settings."""
    yield lambda **settings: _init(tmp_path, **settings)
    repertory.shutdown()
