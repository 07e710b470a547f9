"""The reduced chaos run, on the default Ray runtime: faults really injected, 0 anomalies.

The long run is ``repertory chaos --seed N --duration 5m`` (README, "Chaos run"); this is its
reduced form for CI, with fixed seeds so that a failure replays the same schedule.
"""

import json
import os
import subprocess
import sys

import pytest

from repertory.chaos.run import ChaosConfig, run_chaos

pytestmark = [pytest.mark.ray, pytest.mark.chaos]


def _figures(report):
    recov = [round(t, 2) if t is not None else None for _, t in report.faults]
    print(f"\nchaos seed {report.config.seed}: {report.turns} turns, {report.ops} state ops, "
          f"faults {report.faults_by_kind()}, anomalies {len(report.anomalies)}, "
          f"unacknowledged {report.unacknowledged}, errors retried {dict(report.errors)}, "
          f"recovery s {recov}, {report.seconds:.1f} s")


def _assert_clean(report, kinds):
    _figures(report)
    assert report.failed_faults == []
    assert {k: report.faults_by_kind().get(k, 0) > 0 for k in kinds} == {k: True for k in kinds}
    assert report.anomalies == []
    assert report.unacknowledged == 0
    assert report.turns > 20 and report.ops > 5
    # every fault was followed by an acknowledged turn on a session it hit
    assert [f.kind for f, t in report.faults if t is None] == []


def test_reduced_chaos_run_on_one_node(ray_cluster, tmp_path):
    # the store on a private Redis through the StoreActor: a host, an agent replica, the
    # StoreActor and the Redis itself (AOF, fsync always) are killed under the load, one each
    # (seed 11's schedule)
    kinds = ("host", "replica", "store-actor", "redis-restart")
    report = run_chaos(ChaosConfig(seed=11, duration=14, sessions=6, clients=3, faults=kinds, every=2.5,
                                   quiet_tail=3, workdir=tmp_path, namespace=f"chaos-one-{os.getpid()}"))
    _assert_clean(report, kinds)


@pytest.mark.redis_cluster
def test_reduced_chaos_run_with_node_removal_and_a_redis_cluster_failover(tmp_path):
    # in a process of its own: the run starts a 3-node Ray cluster (ray.cluster_utils), which must
    # be its process's first Ray, and a private 3+3 Redis Cluster (wait=1). Seed 12's schedule: a
    # worker node with a session host leaves (a fresh one joins), then the master of a loaded
    # session's slot is SIGKILLed (its replica takes over; the node restarts as a replica).
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, "-m", "repertory.cli.app", "chaos", "--seed", "12", "--duration", "12s", "--sessions", "4",
         "--clients", "2", "--faults", "node,redis-failover", "--every", "3", "--workdir", str(tmp_path),
         "--json", str(out)],
        env=env, capture_output=True, text=True, timeout=400)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    print(f"\nchaos seed 12: {figures['turns']} turns, {figures['ops']} state ops, faults "
          f"{[(f['target'], f['recovery_s']) for f in figures['faults']]}, errors retried {figures['errors']}, "
          f"{figures['seconds']} s")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert figures["failed_faults"] == [] and figures["anomalies"] == [] and figures["unacknowledged"] == 0
    assert figures["faults_by_kind"] == {"node": 1, "redis-failover": 1}
    assert [f["target"].split()[-1] for f in figures["faults"]][1] == "(killed)"
    assert figures["turns"] > 20 and figures["ops"] > 5
    assert all(f["recovery_s"] is not None for f in figures["faults"])
