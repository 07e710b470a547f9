"""The runtime benchmark of ``repertory bench`` on the default Ray runtime, at its smallest.

It runs on the tests' Ray (the benchmark uses a Ray it finds running and leaves it running) and
checks the figures' shape only: speed is measured in benchmarks/, never asserted here.
"""

from __future__ import annotations

import math

import pytest
import ray

from repertory.bench import runtime as bench_runtime

pytestmark = pytest.mark.ray


def test_runtime_benchmark_reports_every_figure_against_its_same_run_baseline(ray_cluster):
    args = bench_runtime.options(True, sessions=10, seq_turns=6, warmup=2, block=3, skip_demo=True,
                                 skip_memory=True)
    args.model_calls, args.actor_creations, args.cold_sessions = 20, 1, 4
    figures = bench_runtime.figures(bench_runtime.measure(args))
    names = {f.name for f in figures}
    null = "null model client (benchmark instrument)"
    assert {f"Ray runtime, {null}: sequential turn p50", f"Ray runtime, {null}: concurrent turns/s",
            f"Ray runtime, store via StoreActor, {null}: sequential turn p50",
            f"Ray runtime, agents in hosts, {null}: concurrent turns/s",
            "Ray: cold activation (first get_history) p50"} <= names
    for f in figures:
        assert f.benchmark == "runtime" and f.baseline and f.value > 0 and f.baseline_value > 0
        assert math.isclose(f.ratio, f.value / f.baseline_value)
    # the tests' Ray is still up and the benchmark's bare actors are gone
    assert ray.is_initialized()
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True)
                if a["namespace"].startswith("bench-") and a["name"].startswith("bare-")]
