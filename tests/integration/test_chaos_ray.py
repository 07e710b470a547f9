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


def test_reduced_chaos_run_on_sqlite(ray_cluster, tmp_path):
    kinds = ("host", "replica", "store-actor")
    report = run_chaos(ChaosConfig(seed=11, duration=20, sessions=6, clients=3, faults=kinds, every=3,
                                   quiet_tail=4, workdir=tmp_path, namespace=f"chaos-sql-{os.getpid()}"))
    _assert_clean(report, kinds)


def test_reduced_chaos_run_with_redis_restarts(ray_cluster, tmp_path):
    kinds = ("redis-restart", "host")
    report = run_chaos(ChaosConfig(seed=12, duration=12, sessions=4, clients=2, faults=kinds, every=3,
                                   quiet_tail=4, workdir=tmp_path, namespace=f"chaos-redis-{os.getpid()}"))
    _assert_clean(report, kinds)


@pytest.mark.redis_cluster
def test_reduced_chaos_run_with_redis_cluster_failovers(ray_cluster, tmp_path):
    # the store on a private 3+3 Redis Cluster with wait=1: the masters of loaded sessions fail
    # over under the load, once gracefully and once by SIGKILL (seed 13's schedule: targets even, odd)
    kinds = ("redis-failover",)
    report = run_chaos(ChaosConfig(seed=13, duration=10, sessions=4, clients=2, faults=kinds, every=2.5,
                                   quiet_tail=3, workdir=tmp_path, namespace=f"chaos-rc-{os.getpid()}"))
    _assert_clean(report, kinds)
    assert sorted(f.target.split()[-1] for f, _ in report.faults) == ["(failover)", "(killed)"]


def test_reduced_chaos_run_with_node_removals(tmp_path):
    # in a process of its own: the run starts a 3-node Ray cluster (ray.cluster_utils), which must
    # be its process's first Ray; worker nodes leave and fresh ones join under the load
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, "-m", "repertory.cli.app", "chaos", "--seed", "14", "--duration", "12s", "--sessions", "4",
         "--clients", "2", "--faults", "node", "--every", "3", "--workdir", str(tmp_path), "--json", str(out)],
        env=env, capture_output=True, text=True, timeout=400)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    print(f"\nchaos seed 14 (node): {figures['turns']} turns, {figures['ops']} state ops, faults "
          f"{[(f['target'], f['recovery_s']) for f in figures['faults']]}, {figures['seconds']} s")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert figures["failed_faults"] == [] and figures["anomalies"] == [] and figures["unacknowledged"] == 0
    assert figures["faults_by_kind"].get("node", 0) >= 2
    assert figures["turns"] > 20 and figures["ops"] > 5
    assert all(f["recovery_s"] is not None for f in figures["faults"])
