"""``repertory bench``: the benchmarks as a command, every figure beside its same-run baseline.

Speed is never asserted here (benchmarks/ measures it); these tests check that the command runs
the real benchmarks (SQLite files, Redis on 127.0.0.1 under a private prefix, Ray) and reports
each figure with its baseline and ratio.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repertory.bench import SUITES, suite
from repertory.bench import batch as bench_batch
from repertory.bench import runtime as bench_runtime
from repertory.bench import store as bench_store
from repertory.bench.common import Figure, figure
from repertory.cli import app
from repertory.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"benchmark", "name", "value", "unit", "baseline", "baseline_value", "ratio"}


def _check_figures(figures: list[dict], benchmark: str) -> None:
    assert figures, "no figure reported"
    for f in figures:
        assert set(f) == KEYS
        assert f["benchmark"] == benchmark
        assert f["baseline"] and f["baseline"] != f["name"]
        assert f["value"] > 0 and f["baseline_value"] > 0
        assert math.isclose(f["ratio"], f["value"] / f["baseline_value"], rel_tol=1e-9)


def _repertory(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "repertory.cli.app", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_bench_store_quick_writes_every_figure_with_its_baseline(tmp_path):
    out = tmp_path / "figures.json"
    proc = _repertory("bench", "store", "--quick", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["quick"] is True and doc["benchmarks"] == ["store"]
    _check_figures(doc["figures"], "store")
    names = {f["name"] for f in doc["figures"]}
    baselines = {f["baseline"] for f in doc["figures"]}
    # repertory's own stores on both backends, each against its peers (the bench extra is in dev)
    assert any(n.startswith("repertory SQLiteStore") for n in names)
    assert any(n.startswith("repertory RedisStore") for n in names)
    assert any(b.startswith("OpenAI Agents SDK SQLiteSession") for b in baselines)
    assert any(b.startswith("LangGraph SqliteSaver") for b in baselines)
    assert any(b.startswith("OpenAI Agents SDK RedisSession") for b in baselines)
    assert any(b.startswith("LangGraph plain-Redis RedisSaver") for b in baselines)
    assert any(b.startswith("raw redis-py") for b in baselines)
    assert any("group commit" in n for n in names)
    # the rich tables, then the summary of the figures, on stdout
    assert "Per-turn durable write and cold load" in proc.stdout
    assert "same-run baselines" in proc.stdout


def test_bench_json_into_a_missing_folder_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["bench", "store", "--quick", "--json", str(tmp_path / "nope" / "f.json")])
    assert result.exit_code == 1
    assert "InvalidInput" in result.output and "does not exist" in result.output


def test_bench_unknown_benchmark_is_refused():
    result = CliRunner().invoke(app, ["bench", "nonsense"])
    assert result.exit_code == 2
    with pytest.raises(InvalidInput, match="choose one of"):
        suite("nonsense")
    assert set(SUITES) == {"store", "runtime", "batch"}


def test_benchmark_scripts_still_run_as_scripts():
    for name in ("bench_store", "bench_runtime", "bench_batch", "bench_encryption"):
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--help"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
        assert "usage" in proc.stdout


def test_figure_drops_what_was_not_measured():
    assert figure("x", "a", float("nan"), "µs", "b", 1.0) is None
    assert figure("x", "a", 1.0, "µs", "b", 0.0) is None
    assert figure("x", "a", None, "µs", "b", 1.0) is None
    f = figure("x", "a", 3.0, "µs", "b", 2.0)
    assert f == Figure("x", "a", 3.0, "µs", "b", 2.0, 1.5)


def test_store_figures_pair_each_repertory_store_with_the_peers_of_its_family():
    def row(family, rep, write, load):
        return {"family": family, "repertory": rep, "write": {"p50_us": write}, "load": {"p50_us": load}}

    res = {"backends": {"rep sqlite": row("sqlite", True, 100.0, 50.0),
                        "peer sqlite": row("sqlite", False, 400.0, 200.0),
                        "broken peer": {"family": "sqlite", "repertory": False, "error": "boom"},
                        "rep redis": row("redis", True, 150.0, 90.0),
                        "peer redis": row("redis", False, 300.0, 90.0),
                        "_redis_cleanup": {"deleted_keys": 3}},
           "group_commit": {"rep sqlite": {"sessions": 50, "concurrent_writes_per_s": 5000.0,
                                           "sequential_writes_per_s": 1000.0},
                            "rep redis": {"error": "down"}}}
    got = {(f.name, f.baseline): f.ratio for f in bench_store.figures(res)}
    assert got == {("rep sqlite: write p50", "peer sqlite: write p50"): 0.25,
                   ("rep sqlite: load p50", "peer sqlite: load p50"): 0.25,
                   ("rep redis: write p50", "peer redis: write p50"): 0.5,
                   ("rep redis: load p50", "peer redis: load p50"): 1.0,
                   ("rep sqlite: group commit, 50 appends at once",
                    "rep sqlite: the same appends one after another"): 5.0}


def test_batch_figures_are_against_the_plain_litellm_loop():
    res = {"baseline_jobs_per_s": 200.0,
           "runs": {"local repertory/demo": {"jobs_per_s": 100.0}, "ray repertory/null": {"jobs_per_s": None}}}
    [f] = bench_batch.figures(res)
    assert (f.name, f.unit, f.ratio) == ("repertory.batch, local repertory/demo: jobs/s", "jobs/s", 0.5)


def test_batch_ray_null_turns_are_held_to_the_hosts_times_the_hostcore_floor():
    res = {"baseline_jobs_per_s": 200.0, "hostcore_floor_turns_per_s": 1000.0, "hosts": 2,
           "runs": {"ray repertory/null, agents in hosts": {"jobs_per_s": 800.0, "turns_per_s": 800.0},
                    "ray repertory/null": {"jobs_per_s": 400.0, "turns_per_s": 400.0, "floor_turns_per_s": 500.0},
                    "local repertory/null": {"jobs_per_s": 900.0, "turns_per_s": 900.0}}}
    got = {f.name: (f.baseline_value, f.ratio) for f in bench_batch.figures(res)}
    assert got["repertory.batch, ray repertory/null, agents in hosts: turns/s"] == (2000.0, 0.4)
    assert got["repertory.batch, ray repertory/null: turns/s"] == (1000.0, 0.4)  # the floor measured next to it
    assert "repertory.batch, local repertory/null: turns/s" not in got  # the floor is for Ray only


def test_runtime_figures_are_against_the_bare_floor_and_actor_creation():
    def turns(p50, tps):
        return {"sequential": {"p50_us": p50}, "concurrent": {"turns_per_s": tps}}

    res = {"bare": [turns(500.0, 4000.0)], "actor_creation": {"p50_us": 20_000.0},
           "ray_direct": {"null": turns(1000.0, 2000.0), "cold": {"history_cold": {"p50_us": 200.0}}},
           "inproc": {"null": turns(100.0, 8000.0), "cold": {"history_cold": {"p50_us": 50.0}}},
           "model_client": {"litellm_demo": {"cpu_us_per_call": 300.0}, "null": {"cpu_us_per_call": 1.0}},
           "memory": [{"sessions": 10_000, "rss_bytes_per_session": 12_000.0, "payload_bytes_per_session": 6_000.0},
                      {"sessions": 100_000, "error": "killed"}]}
    got = {f.name: (f.baseline, f.ratio) for f in bench_runtime.figures(res)}
    null = "null model client (benchmark instrument)"
    assert got[f"Ray runtime, {null}: sequential turn p50"] == ("bare Ray floor: sequential turn p50", 2.0)
    assert got[f"in-process HostCore, {null}: concurrent turns/s"] == ("bare Ray floor: concurrent turns/s", 2.0)
    assert got["Ray: cold activation (first get_history) p50"] == ("create a Ray actor + first call p50", 0.01)
    assert got["resident session, 10,000 activated: RSS per session"] == ("encoded payload per session", 2.0)
    assert len(got) == 8


def test_bench_runtime_sessions_served(tmp_path):
    out = tmp_path / "served.json"
    proc = _repertory("bench", "runtime", "--sessions-served", "300", "--resident-cap", "20", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())["figures"]
    _check_figures(figures, "runtime")
    assert [f["baseline"] for f in figures] == ["turns/s on resident sessions (no activation)",
                                                "RSS after the first tenth"]
    assert "Sessions served: 300 stored sessions" in proc.stdout


def test_sessions_served_is_a_runtime_option():
    result = CliRunner().invoke(app, ["bench", "store", "--sessions-served", "10"])
    assert result.exit_code == 1
    assert "InvalidInput" in result.output and "repertory bench runtime --sessions-served" in result.output


def test_the_hostcore_floor_logs_nothing_per_turn(tmp_path):
    # Before any runtime configures logging, structlog's default printed a debug line per turn:
    # the floor then measured printing as well, and looked slower than it is.
    code = ("import asyncio, sys; from repertory.bench.batch import hostcore_floor; "
            f"asyncio.run(hostcore_floor(30, 4, {str(tmp_path)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "turn_committed" not in out.stdout + out.stderr
