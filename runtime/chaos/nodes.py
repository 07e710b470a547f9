"""The chaos run's own multi-node Ray cluster (``ray.cluster_utils``: a head and worker raylets
on this machine), for the ``node`` fault: a worker node is removed and a fresh one added.

It must be the first Ray of its process (a driver joins one cluster), so a run with the node
fault refuses to start where Ray is already initialised; the ``repertory chaos`` command runs in
a process of its own.
"""

from __future__ import annotations

from typing import Any

from repertory.errors import InvalidInput

__all__ = ["RayNodes"]


class RayNodes:
    """A head node and ``workers`` worker nodes of ``cpus`` CPUs each."""

    def __init__(self, workers: int = 2, cpus: int = 1) -> None:
        import ray
        from ray.cluster_utils import Cluster

        if ray.is_initialized():
            raise InvalidInput("the node fault starts its own multi-node Ray cluster, but Ray is already "
                               "initialised in this process; run it from the `repertory chaos` command "
                               "(or a process without Ray)")
        self.cpus = cpus
        # shutdown_at_exit=False: Ray would install a SIGTERM handler per node, which only the main
        # thread may do, and nodes are added from the run's loop thread. The run shuts the cluster
        # down itself, and the nodes' processes share the fate of this one (Ray's reaper).
        self._cluster = Cluster(initialize_head=True, shutdown_at_exit=False,
                                head_node_args={"num_cpus": cpus, "include_dashboard": False})
        self.workers: list[Any] = [self._cluster.add_node(num_cpus=cpus) for _ in range(workers)]
        self._cluster.wait_for_nodes()
        self.removed = 0

    @property
    def address(self) -> str:
        return self._cluster.address

    def replace(self, node: Any) -> None:
        """Remove worker ``node`` (as if its machine died) and add a fresh worker in its place."""
        self._cluster.remove_node(node)
        self.removed += 1
        self.workers[self.workers.index(node)] = self._cluster.add_node(num_cpus=self.cpus)
        self._cluster.wait_for_nodes()

    def shutdown(self) -> None:
        self._cluster.shutdown()
