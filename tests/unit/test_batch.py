"""Batch jobs (repertory.batch, ``repertory batch``) on the local runtime."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

import repertory
from openai_server import OpenAIServer
from repertory import Agent, AgentError, InvalidInput, Session
from repertory.agents.spec import import_tool, load_agents
from repertory.cli import app
from repertory.agents.demo_model import DEMO_LABEL

batch_mod = importlib.import_module("repertory.batch.runner")
REPERTORY = str(Path(sys.executable).with_name("repertory"))


@pytest.fixture
def db(tmp_path: Path):
    path = tmp_path / "s.db"
    repertory.init(runtime="local", store=f"sqlite:///{path}")
    yield path
    repertory.shutdown()


@pytest.fixture
def server():
    with OpenAIServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(batch_mod, "_BACKOFF", 0.01)


def write_jobs(path: Path, jobs: list) -> Path:
    path.write_text("".join((j if isinstance(j, str) else json.dumps(j)) + "\n" for j in jobs))
    return path


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def http_agent(server: OpenAIServer, name: str = "Remote", **options) -> Agent:
    return Agent(name=name, model="openai/test-model", api_base=server.base_url, api_key="k", num_retries=0,
                 **options)


def user_messages(session_id: str) -> list[str]:
    return [m["content"] for m in Session(session_id).get_history() if m["role"] == "user"]


def test_thousand_single_turn_jobs(db, tmp_path):
    jobs = write_jobs(tmp_path / "in.jsonl", [{"id": f"j{i}", "messages": [f"Note number {i}"]} for i in range(1000)])
    seen = []
    t0 = time.perf_counter()
    report = repertory.batch(jobs, tmp_path / "out.jsonl", progress=lambda r: seen.append(r.done))
    elapsed = time.perf_counter() - t0
    out = read_out(tmp_path / "out.jsonl")
    assert len(out) == 1000 and sorted(Counter(r["id"] for r in out).values()) == [1] * 1000
    assert all(r["status"] == "ok" and len(r["replies"]) == 1 and DEMO_LABEL in r["replies"][0] for r in out)
    assert next(r for r in out if r["id"] == "j7")["replies"][0].endswith("Note number 7\u201d.")
    assert (report.total, report.ok, report.failed, report.skipped, report.turns) == (1000, 1000, 0, 0, 1000)
    assert report.jobs_per_s > 0 and seen[-1] == 1000 and elapsed < 60


def test_jobs_go_to_their_host_in_slices(db, tmp_path):
    jobs = [{"id": f"s{i}", "messages": [f"My name is N{i}", "What's my name?"]} for i in range(300)]
    report = repertory.batch(jobs, tmp_path / "out.jsonl", concurrency=64)
    assert (report.ok, report.failed, report.turns) == (300, 0, 600)
    # each job's two turns went in one chain, many jobs per call
    assert report.sliced_jobs == 300 and 0 < report.slices <= 300 // 8
    out = {r["id"]: r for r in read_out(tmp_path / "out.jsonl")}
    assert out["s7"]["attempts"] == 1 and "My name is N7" in out["s7"]["replies"][1]
    assert all(user_messages(f"batch-s{i}") == [f"My name is N{i}", "What's my name?"] for i in range(0, 300, 37))


def test_a_slice_job_that_fails_goes_on_turn_by_turn(db, tmp_path, server):
    agents = {"remote": http_agent(server)}
    server.fail_next = 1  # the first model call fails: that job's second attempt is its own
    jobs = [{"id": f"f{i}", "agent": "remote", "messages": ["one", "two"]} for i in range(5)]
    report = repertory.batch(jobs, tmp_path / "out.jsonl", agents=agents, concurrency=5, retries=1)
    recs = read_out(tmp_path / "out.jsonl")
    assert report.ok == 5 and sorted(r["attempts"] for r in recs) == [1, 1, 1, 1, 2]
    assert all(r["replies"] == ["echo: one", "echo: two"] for r in recs)
    assert all(user_messages(f"batch-f{i}") == ["one", "two"] for i in range(5))
    # without retries the failed chain's job is reported with the reply it got before failing
    server.fail_next = 0
    report = repertory.batch([{"id": "big", "messages": ["y" * 2_000_000]}], tmp_path / "out2.jsonl", retries=0)
    rec = read_out(tmp_path / "out2.jsonl")[0]
    assert report.failed == 1 and rec["error_type"] == "MessageTooLarge" and rec["attempts"] == 1


def test_truncated_output_resumes_without_redoing(db, tmp_path):
    jobs = write_jobs(tmp_path / "in.jsonl", [{"id": i, "messages": [f"I am {i}", "Who am I?", "Thanks"]}
                                              for i in range(40)])
    out = tmp_path / "out.jsonl"
    first = repertory.batch(jobs, out, concurrency=8)
    assert first.ok == 40 and first.turns == 120
    before = {r["id"]: r["replies"] for r in read_out(out)}
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:15]) + lines[15][:20])  # 15 whole lines and a torn one
    again = repertory.batch(jobs, out, concurrency=8)
    assert (again.skipped, again.ok, again.failed, again.turns) == (15, 25, 0, 0)  # answered from the store
    final = read_out(out)  # the torn line is gone, every line parses
    assert len(final) == 40 and {r["id"]: r["replies"] for r in final} == before
    assert all(user_messages(f"batch-{i}") == [f"I am {i}", "Who am I?", "Thanks"] for i in range(40))


def test_sigkill_during_cli_batch_then_resume(tmp_path):
    n, per_job = 1500, 5
    write_jobs(tmp_path / "in.jsonl", [{"id": f"k{i}", "messages": [f"m{j} of {i}" for j in range(per_job)]}
                                       for i in range(n)])
    (tmp_path / "agents.json").write_text(json.dumps({"fast": {"model": "repertory/null"}}))
    store = f"sqlite:///{tmp_path / 's.db'}"
    cmd = [REPERTORY, "batch", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl"),
           "--agents", str(tmp_path / "agents.json"), "--concurrency", "16", "--local", "--store", store]
    env = dict(os.environ, REPERTORY_LOG_LEVEL="ERROR")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    out = tmp_path / "out.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 50:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = out.read_bytes().count(b"\n")
    assert 50 <= written < n, f"the batch was not interrupted midway ({written} lines); make it longer"
    done = subprocess.run(cmd, capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    ok = Counter(r["id"] for r in read_out(out) if r["status"] == "ok")
    assert set(ok) == {f"k{i}" for i in range(n)} and set(ok.values()) == {1}
    repertory.init(runtime="local", store=store)
    try:
        for i in range(n):
            assert user_messages(f"batch-k{i}") == [f"m{j} of {i}" for j in range(per_job)]
    finally:
        repertory.shutdown()


def test_bad_lines_are_reported_with_their_line_number(db, tmp_path):
    jobs = write_jobs(tmp_path / "in.jsonl", [
        {"id": "good", "messages": ["hello"]},
        "{not json",
        "",
        {"messages": ["no id"]},
        {"id": "no-messages"},
        {"id": "who", "agent": "nobody", "messages": ["hi"]},
        {"id": "typo", "message": ["hi"]},
        {"id": "empty", "messages": [""]},
        {"id": "both", "messages": ["x"], "workflow": {"tasks": [{"description": "y"}]}},
        {"id": "cycle", "workflow": {"tasks": [{"name": "a", "description": "a", "depends_on": ["b"]},
                                               {"name": "b", "description": "b", "depends_on": ["a"]}]}},
        "[1, 2]",
    ])
    report = repertory.batch(jobs, tmp_path / "out.jsonl")
    out = {r["line"]: r for r in read_out(tmp_path / "out.jsonl")}
    assert report.total == 10 and report.ok == 1 and report.failed == 9 and len(out) == 10
    assert out[1]["status"] == "ok"
    assert out[2]["id"] is None and "line 2 is not JSON" in out[2]["error"]
    assert "needs an 'id'" in out[4]["error"] and "'messages' (an agent job) or 'workflow'" in out[5]["error"]
    assert "unknown agent 'nobody'" in out[6]["error"] and out[6]["id"] == "who"
    assert "unknown field(s) ['message']" in out[7]["error"]
    assert out[8]["error_type"] == "EmptyMessage" and out[8]["attempts"] == 1  # not retried
    assert "exactly one" in out[9]["error"] and "cycle" in out[10]["error"] and "JSON object" in out[11]["error"]
    assert all(r["status"] == "error" and r["error_type"] for line, r in out.items() if line != 1)
    assert report.errors["who"].startswith("InvalidInput: line 6: unknown agent")


def test_duplicate_ids_stop_the_batch_before_it_runs(db, tmp_path):
    jobs = write_jobs(tmp_path / "in.jsonl", [{"id": "a", "messages": ["x"]}, {"id": "b", "messages": ["y"]},
                                              {"id": "a", "messages": ["z"]}])
    with pytest.raises(InvalidInput, match=r"line 3: job id 'a' is also on line 1"):
        repertory.batch(jobs, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists() and not Session("batch-b").exists()
    with pytest.raises(InvalidInput, match="also on line 1"):  # 1 and "1" are the same id
        repertory.batch([{"id": 1, "messages": ["x"]}, {"id": "1", "messages": ["y"]}], tmp_path / "o.jsonl")


def test_failing_model_is_retried_then_reported(db, tmp_path, server):
    agents = {"remote": http_agent(server)}
    out = tmp_path / "out.jsonl"
    server.fail_next = 2  # two 500s, then an answer: the third attempt succeeds
    r = repertory.batch([{"id": "a", "agent": "remote", "messages": ["hi"]}], out, agents=agents, retries=2)
    assert r.ok == 1 and read_out(out)[-1]["attempts"] == 3 and read_out(out)[-1]["replies"] == ["echo: hi"]
    server.fail_next = 3
    r = repertory.batch([{"id": "b", "agent": "remote", "messages": ["hi"]}], out, agents=agents, retries=2)
    rec = read_out(out)[-1]
    assert r.failed == 1 and rec["status"] == "error" and rec["attempts"] == 3
    assert rec["error_type"] == "ModelError" and "injected failure" in rec["error"]
    assert r.errors["b"].startswith("ModelError: ") and user_messages("batch-b") == []
    # the re-run retries the failed job; its new line supersedes the old one
    r = repertory.batch([{"id": "b", "agent": "remote", "messages": ["hi"]}], out, agents=agents)
    assert r.ok == 1 and [x["status"] for x in read_out(out) if x["id"] == "b"] == ["error", "ok"]


def test_timeout_then_resume_answers_each_message_once(db, tmp_path, server):
    agents = {"remote": http_agent(server)}
    job = [{"id": "slow", "agent": "remote", "messages": ["one", "two"]}]
    out = tmp_path / "out.jsonl"
    server.delay = 0.5
    r = repertory.batch(job, out, agents=agents, timeout=0.2, retries=1)
    rec = read_out(out)[-1]
    assert r.failed == 1 and rec["error_type"] == "TimeoutError" and rec["attempts"] == 2
    assert "did not finish within 0.2 s" in rec["error"]
    server.delay = 0.0
    r = repertory.batch(job, out, agents=agents)
    assert r.ok == 1 and read_out(out)[-1]["replies"] == ["echo: one", "echo: two"]
    assert user_messages("batch-slow") == ["one", "two"]


def test_workflow_jobs_resume_from_recorded_tasks(db, tmp_path):
    wf = {"name": "review", "tasks": [
        {"name": "draft", "description": "Draft a summary"},
        {"name": "check", "description": "Check the draft", "depends_on": ["draft"], "expected_output": "fixes"}]}
    jobs = [{"id": f"w{i}", "input": f"document {i}", "workflow": wf} for i in range(3)]
    jobs.append({"id": "chat", "messages": ["hello"]})
    out = tmp_path / "out.jsonl"
    r = repertory.batch(jobs, out)
    recs = {x["id"]: x for x in read_out(out)}
    assert r.ok == 4 and r.turns == 7 and list(recs["w1"]["results"]) == ["draft", "check"]
    assert "document 1" in recs["w1"]["results"]["draft"] and recs["w1"]["session_id"] == "batch-w1"
    assert Session("batch-w1").metadata["workflows"]["batch-w1"]["status"] == "completed"
    out.write_text("")  # forget the output: the workflows are answered from their recorded tasks
    r = repertory.batch(jobs, out)
    assert r.ok == 4 and r.turns == 0
    assert {x["id"]: x.get("results") for x in read_out(out)} == {k: v.get("results") for k, v in recs.items()}


def test_long_job_beyond_the_replay_window(db, tmp_path):
    fast = Agent("Fast", model="repertory/null")
    messages = [f"message {i}" for i in range(70)]
    out = tmp_path / "out.jsonl"
    # as if a run was killed after 66 answered messages: they are in the session, not in the output
    first = repertory.batch([{"id": "long", "messages": messages[:66]}], out, default_agent=fast)
    assert first.turns == 66
    out.write_text("")
    r = repertory.batch([{"id": "long", "messages": messages}], out, default_agent=fast)
    assert r.ok == 1 and r.turns == 4 and len(read_out(out)[-1]["replies"]) == 70
    out.write_text("")
    r = repertory.batch([{"id": "long", "messages": messages}], out, default_agent=fast)
    assert r.turns == 0 and user_messages("batch-long") == messages


def test_agents_file_with_a_tool_by_import_path(db, tmp_path, server):
    (tmp_path / "agents.yaml").write_text(f"""
weather:
  instructions: You report the weather.
  model: openai/test-model
  api_base: {server.base_url}
  api_key: k
  tools: [batch_tools:weather]
plain: {{}}
""")
    jobs = [{"id": "w", "agent": "weather", "messages": ["Weather?"]},
            {"id": "p", "agent": "plain", "messages": ["Hi"]},
            {"id": "d", "user_id": "u1", "session_id": "mine", "messages": ["Hi"]}]
    r = repertory.batch(jobs, tmp_path / "out.jsonl", agents=tmp_path / "agents.yaml", default_agent="plain")
    recs = {x["id"]: x for x in read_out(tmp_path / "out.jsonl")}
    assert r.ok == 3 and recs["w"]["replies"] == ["The tool said: sunny in Paris"]
    assert DEMO_LABEL in recs["p"]["replies"][0] and recs["d"]["session_id"] == "mine"
    assert Session("mine", user_id="u1").exists()


def test_agents_file_forms_and_errors(tmp_path):
    def write(name: str, text: str) -> Path:
        (tmp_path / name).write_text(text)
        return tmp_path / name

    (tmp_path / "local_tools.py").write_text("def shout(text: str) -> str:\n    return text.upper()\n")
    agents = load_agents(write("a.json", json.dumps([
        {"name": "x", "instructions": "be x", "model": "repertory/null", "replicas": 2, "temperature": 0.1,
         "options": {"custom_flag": 1}, "tools": ["local_tools:shout", "batch_tools.weather"]}])))
    x = agents["x"]
    assert (x.instructions, x.model, x.replicas) == ("be x", "repertory/null", 2)
    assert x.llm_options == {"temperature": 0.1, "custom_flag": 1} and [t.name for t in x.tools] == ["shout", "weather"]
    assert import_tool("os.path:join") is os.path.join and import_tool("os.path.join") is os.path.join
    cases = {
        "missing.yaml": (None, InvalidInput, "does not exist"),
        "bad.yaml": ("a: [1, 2\n", InvalidInput, "not valid YAML"),
        "bad.json": ("{", InvalidInput, "not valid JSON"),
        "scalar.yaml": ("42\n", InvalidInput, "expected a mapping"),
        "typo.yaml": ("a:\n  instruction: hi\n", AgentError,
                      r"agent 'a': unknown field\(s\) \['instruction'\] \(did you mean 'instructions'"),
        "noimport.yaml": ("a:\n  tools: [no_such_module_xyz:f]\n", AgentError,
                          "agent 'a': cannot import tool 'no_such_module_xyz:f'"),
        "noattr.yaml": ("a:\n  tools: [batch_tools:nope]\n", AgentError, "cannot import tool 'batch_tools:nope'"),
        "notcallable.yaml": ("a:\n  tools: [batch_tools:NOT_CALLABLE]\n", AgentError, "is a int, not a function"),
        "badtype.yaml": ("a:\n  replicas: two\n", AgentError, "'replicas' must be a whole number"),
        "noname.yaml": ("- instructions: hi\n", AgentError, "entry 1 needs a 'name'"),
    }
    for name, (text, exc, match) in cases.items():
        path = tmp_path / name if text is None else write(name, text)
        with pytest.raises(exc, match=match) as info:
            load_agents(path)
        assert str(path) in str(info.value)


def test_cli_batch_exit_codes(tmp_path):
    store = ["--local", "--store", f"sqlite:///{tmp_path / 's.db'}"]
    good = write_jobs(tmp_path / "good.jsonl", [{"id": i, "messages": ["hi"]} for i in range(5)])
    res = CliRunner().invoke(app, ["batch", str(good), "--out", str(tmp_path / "o1.jsonl"), *store])
    assert res.exit_code == 0, res.output
    assert "ok" in res.output and len(read_out(tmp_path / "o1.jsonl")) == 5
    bad = write_jobs(tmp_path / "bad.jsonl", [{"id": "a", "messages": ["hi"]},
                                              {"id": "b", "agent": "zz", "messages": ["x"]}])
    res = CliRunner().invoke(app, ["batch", str(bad), "--out", str(tmp_path / "o2.jsonl"), *store])
    assert res.exit_code == 1 and "unknown agent 'zz'" in res.output
    assert {r["id"]: r["status"] for r in read_out(tmp_path / "o2.jsonl")} == {"a": "ok", "b": "error"}
    res = CliRunner().invoke(app, ["batch", str(good), "--out", str(tmp_path / "o3.jsonl"),
                                   "--agents", str(tmp_path / "none.yaml"), *store])
    assert res.exit_code == 1 and "does not exist" in res.output and not (tmp_path / "o3.jsonl").exists()


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_batch_results_and_exports_are_private_to_their_owner(db, tmp_path, umask):
    # They hold conversation text, as the store does (issue 16 item 21).
    import stat

    jobs = write_jobs(tmp_path / "in.jsonl", [{"id": "j1", "session_id": "j1", "messages": ["Hello there."]}])
    old = os.umask(umask)
    try:
        assert repertory.batch(jobs, tmp_path / "out.jsonl").ok == 1
        repertory.export_sessions(tmp_path / "export.jsonl")
        Session("j1").save(tmp_path / "j1.rps")
    finally:
        os.umask(old)
    for name in ("out.jsonl", "export.jsonl", "j1.rps"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
