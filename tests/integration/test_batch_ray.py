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
