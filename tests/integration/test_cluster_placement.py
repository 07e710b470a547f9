"""A 3-node Ray cluster (ray.cluster_utils, three raylets on this machine, in a subprocess so
that it does not meet the test session's Ray): hosts and agent replicas run on every node,
every node serves sessions, a node added to the running runtime gets a host that serves
sessions, and removing a node keeps every history exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

SCRIPT = Path(__file__).resolve().parents[1] / "cluster_script.py"


def test_hosts_and_replicas_spread_over_nodes_and_a_lost_node_loses_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, str(SCRIPT), f"sqlite:///{tmp_path / 'state.db'}"], env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    nodes = set(out["nodes"])
    assert len(nodes) == 3
    # One host per node (each has one CPU), each serving turns; one agent replica per node.
    assert {h["node"] for h in out["hosts"]} == nodes
    assert all(h["turns"] > 0 for h in out["hosts"]), out["hosts"]
    assert sum(h["turns"] for h in out["hosts"]) == 30
    assert set(out["replicas"]) == nodes
    # The node added to the running runtime got a host, and it served sessions (by node id).
    assert out["num_hosts_grown"] == 4
    grown = [h for h in out["hosts_grown"] if h["node"] == out["added"]]
    assert len(grown) == 1 and grown[0]["turns"] > 0, out["hosts_grown"]
    assert sum(h["turns"] for h in out["hosts_grown"]) == 60
    # After the node left: the histories are exact, and no host is left on the removed node.
    for i, history in enumerate(out["histories"]):
        assert history[0::2] == ["turn 0", "turn 1", "turn 2", "turn 3"], (i, history)
        assert len(history) == 8
    assert out["removed"] not in {h["node"] for h in out["hosts_after"]}
