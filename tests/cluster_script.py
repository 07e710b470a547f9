"""Run by tests/integration/test_cluster_placement.py in its own process: a 3-node Ray cluster
(ray.cluster_utils: three raylets on this machine), repertory on it, sessions served from every
node, then a node added (it gets a host, which serves sessions), then a worker node removed and
the histories checked. Prints one JSON line."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import ray
from ray.cluster_utils import Cluster

import repertory
from repertory import Session


def main(store: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)  # this cluster, by address
    out: dict = {"nodes": sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])}
    rt = repertory.init(address=cluster.address, store=store, max_resident=1000)
    sessions = [Session(f"c{i}") for i in range(30)]

    async def round_(k: int) -> None:
        await asyncio.gather(*(s.achat(f"turn {k}") for s in sessions))

    asyncio.run(round_(0))
    stats = rt.stats()
    out["hosts"] = [{"host": st["host"], "node": st["node"], "turns": st["turns"]} for st in stats]
    agent_key = next(iter(rt._agents))
    out["replicas"] = ray.get([h.node.remote() for h in rt._agents[agent_key]])

    # A node joins the running runtime: it notices within seconds (on its call path), starts a
    # host there, and the sessions that hash to it move there (round 2 runs on the new host).
    added = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    time.sleep(2.2)  # the runtime looks at the nodes every 2 s
    before = {st["host"]: st["turns"] for st in rt.stats()}
    asyncio.run(round_(1))
    asyncio.run(round_(2))
    out["added"] = added.node_id
    out["num_hosts_grown"] = rt.num_hosts
    out["hosts_grown"] = [{"host": st["host"], "node": st["node"], "turns": st["turns"] - before.get(st["host"], 0)}
                          for st in rt.stats()]

    # A worker node leaves: its hosts and replica restart elsewhere; nothing is lost.
    cluster.remove_node(workers[0])
    asyncio.run(round_(3))
    out["histories"] = [[m["content"] for m in s.get_history()] for s in sessions]
    out["hosts_after"] = [{"host": st["host"], "node": st["node"]} for st in rt.stats()]
    out["removed"] = workers[0].node_id
    repertory.shutdown()
    ray.shutdown()
    cluster.shutdown()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
