"""Batch jobs on real Ray (two session hosts, agent actors) and a real SQLite file."""

import json
from collections import Counter

import pytest

import repertory
from repertory import Session
from repertory.agents.demo_model import DEMO_LABEL

pytestmark = pytest.mark.ray


def test_two_hundred_jobs_on_ray(runtime, tmp_path):
    jobs = tmp_path / "in.jsonl"
    jobs.write_text("".join(json.dumps({"id": f"r{i}", "messages": [f"My name is N{i}", "What's my name?"]}) + "\n"
                            for i in range(200)))
    (tmp_path / "agents.yaml").write_text("helper:\n  instructions: You help.\n")
    out = tmp_path / "out.jsonl"
    report = repertory.batch(jobs, out, agents=tmp_path / "agents.yaml", concurrency=32)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert (report.ok, report.failed, report.turns) == (200, 0, 400)
    assert len(recs) == 200 and set(Counter(r["id"] for r in recs).values()) == {1}
    r7 = next(r for r in recs if r["id"] == "r7")
    assert r7["status"] == "ok" and DEMO_LABEL in r7["replies"][1] and "My name is N7" in r7["replies"][1]
    # both hosts served sessions, and a re-run from an empty output is answered from the store
    assert all(s["activations"] > 0 for s in runtime.stats())
    out.write_text("")
    again = repertory.batch(jobs, out, agents=tmp_path / "agents.yaml", concurrency=32)
    assert again.ok == 200 and again.turns == 0
    assert [m["role"] for m in Session("batch-r7").get_history()] == ["user", "assistant"] * 2


def test_a_host_killed_mid_batch_loses_and_repeats_nothing(runtime, tmp_path):
    import ray

    jobs = [{"id": f"k{i}", "messages": [f"My name is N{i}", "What's my name?", "Thanks"]} for i in range(200)]
    killed = []

    def kill_a_host(report):
        if report.done >= 40 and not killed:  # slices are in flight on both hosts now
            killed.append(report.done)
            ray.kill(runtime.hosts[0], no_restart=False)

    out = tmp_path / "out.jsonl"
    report = repertory.batch(jobs, out, concurrency=64, progress=kill_a_host)
    recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert killed and (report.ok, report.failed) == (200, 0) and len(recs) == 200
    assert report.sliced_jobs == 200 and report.slices <= 200 // 4  # many jobs per host call
    assert "My name is N9" in recs["k9"]["replies"][1]
    for i in range(200):  # every message once, in order, whichever host ran it and however often
        users = [m["content"] for m in Session(f"batch-k{i}").get_history() if m["role"] == "user"]
        assert users == jobs[i]["messages"], (i, users)
