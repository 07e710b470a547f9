"""Contract tests for issue 16 on the local runtime: public API only, real SQLite and Redis.

Each test names the behaviour that must hold. Where it fails on the current code it is an
``xfail(strict=True)`` naming the issue item, so that the marker turns into a failure once
the defect is fixed (then drop the marker).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import repertory
from contract_helpers import OTHER_RUNTIME, read_jsonl, restart_local, wait_for
from openai_server import OpenAIServer
from repertory import (Agent, CorruptState, InvalidInput, InvalidSessionId, Session, SharedState)
from repertory.cli import app

pytestmark = pytest.mark.redis  # parametrised over SQLite and Redis (127.0.0.1:6379 db 15)

DEMO = Agent("Demo", model=repertory.DEMO_MODEL)


def xfail(item: int, why: str):
    return pytest.mark.xfail(strict=True, reason=f"issue 16 item {item}: {why}")


@pytest.fixture
def sqlite_local(tmp_path):
    repertory.init(runtime="local", store=f"sqlite:///{tmp_path / 'state.db'}")
    yield tmp_path
    if repertory.is_initialized():
        repertory.shutdown()


@pytest.fixture
def server():
    with OpenAIServer() as srv:
        yield srv


def noted(message: str) -> str:
    """What the demo model answers to a statement."""
    return f"[demo model] Noted: \u201c{message}\u201d."


# ---------------------------------------------------------------------------------------
# item 1: a compare-and-set token never repeats across incarnations
# ---------------------------------------------------------------------------------------


def test_recreated_session_never_reuses_a_revision_seen_by_another_runtime(local):
    a = Session("shared-id", agent=DEMO)
    for i in range(4):
        a.chat(f"A says {i}.")
    revision = a.get_state()["revision"]  # A's resident copy is at this revision
    b = subprocess.run([sys.executable, "-c", OTHER_RUNTIME, local.url, str(revision)],
                       capture_output=True, text=True, timeout=120)
    assert b.returncode == 0, b.stderr
    # Before the fix B's incarnation counted from 1 and reached A's revision exactly (what let
    # A's stale write through); now each incarnation starts at a random revision.
    assert int(b.stdout.split()[-1]) != revision
    a.chat("A again.")
    restart_local(local)
    state = Session("shared-id", agent=DEMO).get_state()
    assert state["user_data"].get("owner") == "B"  # B's acknowledged write survived A's commit
    assert "B was here." in [m["content"] for m in state["history"]]


# ---------------------------------------------------------------------------------------
# item 2: unstorable keys are refused at write time
# ---------------------------------------------------------------------------------------
def test_user_data_tuple_key_refused_and_session_stays_readable(local):
    s = Session("tuple-key", agent=DEMO)
    s.chat("Hello there.")
    with pytest.raises(InvalidInput):
        s.user_data[(1, 2)] = "x"
    assert dict(s.user_data) == {}
    restart_local(local)
    s = Session("tuple-key", agent=DEMO)
    assert [m["content"] for m in s.get_history()][0] == "Hello there."
    s.chat("Still here.")


def test_shared_state_tuple_key_refused_and_state_stays_readable(local):
    board = SharedState("tuple-board")
    board.set("ok", 1)
    with pytest.raises(InvalidInput):
        board.set("p", {(1, 2): 1})
    assert board.snapshot() == {"ok": 1}
    restart_local(local)
    assert SharedState("tuple-board").snapshot() == {"ok": 1}


# ---------------------------------------------------------------------------------------
# item 5: sessions listing, export and cleanup do not see shared state
# ---------------------------------------------------------------------------------------
@pytest.fixture
def session_and_board(local):
    SharedState("board").set("k", 1)
    Session("s1", agent=DEMO).chat("Hello.")
    return local


def test_list_sessions_does_not_show_shared_state(session_and_board):
    assert [s.key for s in repertory.list_sessions()] == ["s1"]


def test_export_sessions_skips_shared_state(session_and_board, tmp_path):
    assert repertory.export_sessions(tmp_path / "all.jsonl") == 1
    assert [line["key"] for line in read_jsonl(tmp_path / "all.jsonl")] == ["s1"]


def test_cleanup_keeps_shared_state(session_and_board):
    removed = repertory.cleanup(timedelta(0))
    assert [s.key for s in removed] == ["s1"]
    restart_local(session_and_board)
    assert SharedState("board").get("k") == 1


# ---------------------------------------------------------------------------------------
# item 6: the seed's multi-agent snippet (local runtime; the Ray one is in integration)
# ---------------------------------------------------------------------------------------
def test_multi_agent_session_with_new_shared_state_runs_agent_at_once(local):
    team = Session(agents={"research": Agent("Researcher", model=repertory.DEMO_MODEL),
                           "writer": Agent("Writer", model=repertory.DEMO_MODEL)},
                   shared_state=SharedState())
    assert team.run_agent("research", "Research quantum computing.") == noted("Research quantum computing.")


# ---------------------------------------------------------------------------------------
# item 7: a session remembers its agent definition
# ---------------------------------------------------------------------------------------
KEEPER = Agent("Keeper", instructions="The secret codeword is pineapple.", model=repertory.DEMO_MODEL)


def test_instructions_reach_the_prompt_when_the_agent_is_given(local):
    # Control for the two tests below: the demo model quotes the system prompt.
    assert "pineapple" in Session("keeper", agent=KEEPER).chat("What is the secret codeword?")


def test_new_handle_without_agent_keeps_the_sessions_instructions(local):
    Session("keeper", agent=KEEPER).chat("Hello there.")
    assert "pineapple" in Session("keeper").chat("What is the secret codeword?")


def test_loaded_session_keeps_its_instructions(local, tmp_path):
    s = Session("keeper", agent=KEEPER)
    s.chat("Hello there.")
    s.save(tmp_path / "keeper.rps")
    s.delete()
    restart_local(local)
    loaded = Session.load(tmp_path / "keeper.rps")
    assert "pineapple" in loaded.chat("What is the secret codeword?")


def test_new_handle_without_agent_keeps_model_and_options(local, server, monkeypatch):
    # api_key is a secret: the session never stores it, so the restored agent takes the key
    # from the environment, as a deployment gives it (test_agent_definitions checks the store).
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    agent = Agent("Echo", model="openai/test-model", api_base=server.base_url, api_key="k")
    assert Session("echoer", agent=agent).chat("first") == "echo: first"
    restart_local(local)
    assert Session("echoer").chat("second") == "echo: second"
    assert len(server.requests) == 2


# ---------------------------------------------------------------------------------------
# item 9: turn-id replay survives history edits
# ---------------------------------------------------------------------------------------
JOB_MESSAGES = ["My name is Alice.", "Remember that my favourite colour is teal."]


def _job_file(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"id": "j1", "session_id": "bj", "messages": JOB_MESSAGES}) + "\n")
    return path


def test_batch_rerun_after_pop_turn_answers_its_own_message(sqlite_local, tmp_path):
    jobs = _job_file(tmp_path)
    assert repertory.batch(jobs, tmp_path / "out1.jsonl", agents={"demo": DEMO}).ok == 1
    s = Session("bj", agent=DEMO)
    s.pop_turn()
    s.chat("Actually I like red.")
    assert repertory.batch(jobs, tmp_path / "out2.jsonl", agents={"demo": DEMO}).ok == 1
    replies = read_jsonl(tmp_path / "out2.jsonl")[-1]["replies"]
    assert replies == [noted(m) for m in JOB_MESSAGES]
    history = s.get_history()
    assert history[-2]["content"] == JOB_MESSAGES[1] and history[-1]["content"] == replies[1]


def test_batch_rerun_after_clear_runs_the_turns_again(sqlite_local, tmp_path):
    jobs = _job_file(tmp_path)
    assert repertory.batch(jobs, tmp_path / "out1.jsonl", agents={"demo": DEMO}).ok == 1
    s = Session("bj", agent=DEMO)
    s.clear()
    assert repertory.batch(jobs, tmp_path / "out2.jsonl", agents={"demo": DEMO}).ok == 1
    assert read_jsonl(tmp_path / "out2.jsonl")[-1]["replies"] == [noted(m) for m in JOB_MESSAGES]
    assert [m["content"] for m in s.get_history()] == [JOB_MESSAGES[0], noted(JOB_MESSAGES[0]),
                                                      JOB_MESSAGES[1], noted(JOB_MESSAGES[1])]


def test_batch_rerun_without_edits_replays_from_the_store(sqlite_local, tmp_path):
    # Control for the two tests above: an untouched session is answered from the store.
    jobs = _job_file(tmp_path)
    repertory.batch(jobs, tmp_path / "out1.jsonl", agents={"demo": DEMO})
    report = repertory.batch(jobs, tmp_path / "out2.jsonl", agents={"demo": DEMO})
    assert report.ok == 1 and report.turns == 0
    assert len(Session("bj", agent=DEMO).get_history()) == 4


# ---------------------------------------------------------------------------------------
# item 11: a delete while turns wait on the session's lock keeps one lock
# ---------------------------------------------------------------------------------------
async def test_turns_waiting_on_a_deleted_session_run_after_it_one_at_a_time(sqlite_local, server):
    server.delay = 0.4
    s = Session("locked", agent=Agent("Slow", model="openai/test-model", api_base=server.base_url,
                                      api_key="k", num_retries=0))
    first = asyncio.ensure_future(s.achat("m1"))
    await asyncio.to_thread(wait_for, lambda: len(server.requests) >= 1, what="m1 to hold the lock")
    delete = asyncio.ensure_future(s.adelete())
    await asyncio.sleep(0)
    waiting = [asyncio.ensure_future(s.achat(m)) for m in ("m2", "m3")]
    await asyncio.sleep(0)
    assert await first == "echo: m1"
    assert await delete is True
    later = asyncio.ensure_future(s.achat("m4"))  # arrives after the delete, behind m2 and m3
    assert await asyncio.gather(*waiting, later) == ["echo: m2", "echo: m3", "echo: m4"]
    assert [m["content"] for m in await s.aget_history()] == ["m2", "echo: m2", "m3", "echo: m3",
                                                             "m4", "echo: m4"]
    assert len(server.requests) == 4  # each turn called the model once: none ran beside another


# ---------------------------------------------------------------------------------------
# item 12: a resident copy never outlives its stored state (Redis expiry)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("local", ["redis"], indirect=True)
def test_redis_expiry_is_seen_by_a_resident_session(local):
    s = Session("short", agent=DEMO, ttl=2)
    s.chat("Hello.")
    r = local.redis()
    key = local.meta_key("short")
    assert r.exists(key)
    wait_for(lambda: not r.exists(key), timeout=15, interval=0.1, what="Redis to expire the session")
    assert s.exists() is False
    assert s.get_history() == []


# ---------------------------------------------------------------------------------------
# item 14: sessions made by merge, fork or import get the store's default TTL
# ---------------------------------------------------------------------------------------
def _ttl(store, key: str) -> int:
    return store.redis().ttl(store.meta_key(key))


@pytest.mark.parametrize("local", ["redis"], indirect=True)
def test_chat_session_gets_default_ttl(local):
    # Control: a session created by chatting has the one-hour default.
    Session("plain", agent=DEMO).chat("Hello.")
    assert 3500 < _ttl(local, "plain") <= 3600


@pytest.mark.parametrize("local", ["redis"], indirect=True)
def test_merged_session_gets_default_ttl(local):
    a, b = Session("ma", agent=DEMO), Session("mb", agent=DEMO)
    a.chat("Hello from a.")
    b.chat("Hello from b.")
    merged = Session.merge(a, b)
    assert merged.session_id == "ma_merged"
    assert 3500 < _ttl(local, "ma_merged") <= 3600


@pytest.mark.parametrize("local", ["redis"], indirect=True)
def test_forked_session_gets_default_ttl(local):
    a = Session("fa", agent=DEMO)
    a.chat("Hello.")
    a.fork("fa-fork")
    assert 3500 < _ttl(local, "fa-fork") <= 3600


@pytest.mark.parametrize("local", ["redis"], indirect=True)
def test_imported_session_gets_default_ttl(local, tmp_path):
    a = Session("ia", agent=DEMO)
    a.chat("Hello.")
    repertory.export_sessions(tmp_path / "ia.jsonl")
    a.delete()
    assert repertory.import_sessions(tmp_path / "ia.jsonl") == 1
    assert 3500 < _ttl(local, "ia") <= 3600


# ---------------------------------------------------------------------------------------
# item 16: one deeply nested JSONL line gets its own error, the rest runs
# ---------------------------------------------------------------------------------------
DEEP = "[" * 100000


def _jobs_with_deep_line(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join([json.dumps({"id": "a", "messages": ["First job."]}), DEEP,
                               json.dumps({"id": "b", "messages": ["Third line."]})]) + "\n")
    return path


def test_batch_deeply_nested_line_gets_an_error_line_and_the_rest_runs(sqlite_local, tmp_path):
    report = repertory.batch(_jobs_with_deep_line(tmp_path), tmp_path / "out.jsonl", agents={"demo": DEMO})
    assert (report.ok, report.failed) == (2, 1)
    out = {(r["id"], r["line"]): r for r in read_jsonl(tmp_path / "out.jsonl")}
    assert out[("a", 1)]["replies"] == [noted("First job.")]
    assert out[("b", 3)]["replies"] == [noted("Third line.")]
    assert out[(None, 2)]["status"] == "error"


def test_batch_cli_deeply_nested_line_gets_an_error_line_and_the_rest_runs(tmp_path):
    result = CliRunner().invoke(app, ["batch", str(_jobs_with_deep_line(tmp_path)), "--out",
                                      str(tmp_path / "out.jsonl"), "--local", "--store",
                                      f"sqlite:///{tmp_path / 'state.db'}"])
    assert result.exit_code == 1, result.output  # exit 1: one job failed
    assert not isinstance(result.exception, RecursionError)
    out = read_jsonl(tmp_path / "out.jsonl")
    assert sorted((r["line"], r["status"]) for r in out) == [(1, "ok"), (2, "error"), (3, "ok")]


def test_import_deeply_nested_line_is_reported_as_corrupt(sqlite_local, tmp_path):
    Session("one", agent=DEMO).chat("Hello.")
    repertory.export_sessions(tmp_path / "exp.jsonl")
    Session("one", agent=DEMO).delete()
    with (tmp_path / "exp.jsonl").open("a") as f:
        f.write(DEEP + "\n")
    with pytest.raises(CorruptState, match="line 2"):
        repertory.import_sessions(tmp_path / "exp.jsonl")
    assert repertory.list_sessions() == []


def test_import_cli_deeply_nested_line_is_reported_as_corrupt(tmp_path):
    (tmp_path / "exp.jsonl").write_text(DEEP + "\n")
    result = CliRunner().invoke(app, ["sessions", "import", str(tmp_path / "exp.jsonl"), "--local",
                                      "--store", f"sqlite:///{tmp_path / 'state.db'}"])
    assert result.exit_code == 1
    assert not isinstance(result.exception, RecursionError)
    assert "CorruptState" in result.output and "line 1" in result.output


# ---------------------------------------------------------------------------------------
# item 20: ids with a trailing newline are rejected
# ---------------------------------------------------------------------------------------
def test_session_id_with_trailing_newline_is_rejected(sqlite_local):
    with pytest.raises(InvalidSessionId):
        Session("alice\n", agent=DEMO)


def test_user_id_with_trailing_newline_is_rejected(sqlite_local):
    with pytest.raises(InvalidSessionId):
        Session("s1", agent=DEMO, user_id="alice\n")


def test_batch_session_id_with_trailing_newline_is_rejected(sqlite_local, tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"id": "a", "session_id": "alice\n", "messages": ["Hello."]}) + "\n")
    report = repertory.batch(jobs, tmp_path / "out.jsonl", agents={"demo": DEMO})
    assert report.failed == 1
    assert read_jsonl(tmp_path / "out.jsonl")[0]["error_type"] == "InvalidSessionId"
    # No session for the refused job; only the batch run's progress record.
    assert [s.session_id[:10] for s in repertory.list_sessions()] == ["batch-run-"]


def test_session_id_with_inner_newline_is_rejected(sqlite_local):
    # Control: the regex already refuses a newline that is not at the end.
    with pytest.raises(InvalidSessionId):
        Session("ali\nce", agent=DEMO)


# ---------------------------------------------------------------------------------------
# item 22: invalid input raises InvalidInput at the call that made it; failing tools are logged
# ---------------------------------------------------------------------------------------
def test_create_checkpoint_with_object_label_raises_invalid_input(local):
    s = Session("cp-label", agent=DEMO)
    s.chat("Hello.")
    with pytest.raises(InvalidInput):
        s.create_checkpoint(object())
    assert s.list_checkpoints() == []


def test_set_history_with_non_str_content_raises_invalid_input(local):
    s = Session("bad-content", agent=DEMO)
    s.chat("Hello.")
    before = s.get_history()
    with pytest.raises(InvalidInput):
        s.set_history([{"role": "user", "content": 5}])
    assert s.get_history() == before
    assert s.chat("Still fine.") == noted("Still fine.")


def test_restore_version_with_invalid_argument_raises_invalid_input(local):
    s = Session("versions", agent=DEMO)
    s.chat("Hello.")
    s.save_version("v0")
    with pytest.raises(InvalidInput):
        s.restore_version("x")


def test_restore_version_of_unknown_number_returns_false(local):
    s = Session("versions", agent=DEMO)
    s.chat("Hello.")
    assert s.save_version("v0") == 0
    assert s.restore_version(7) is False
    assert s.restore_version(0) is True


_FAILING_TOOL = textwrap.dedent("""
    import sys
    import repertory
    from repertory import Agent, Session

    def get_weather(city: str) -> str:
        \"\"\"Current weather for a city.\"\"\"
        raise RuntimeError("weather-service-exploded")

    repertory.init(runtime="local", store=sys.argv[2])
    agent = Agent("W", model="openai/test-model", tools=[get_weather], api_base=sys.argv[1], api_key="k")
    print(Session("tool", agent=agent).chat("Weather in Paris?"))
    repertory.shutdown()
""")


def test_failing_tool_is_logged(server, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REPERTORY_LOG_LEVEL", "REPERTORY_MODEL")}
    proc = subprocess.run([sys.executable, "-c", _FAILING_TOOL, server.base_url,
                           f"sqlite:///{tmp_path / 'state.db'}"], capture_output=True, text=True,
                          timeout=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # the failure reached the model as text (stdout) ...
    assert "The tool said: error: RuntimeError: weather-service-exploded" in proc.stdout
    # ... and was logged at the default level (stderr, where repertory's structlog writes)
    logged = [line for line in proc.stderr.splitlines() if "weather-service-exploded" in line]
    assert logged and "get_weather" in logged[0]


# ---------------------------------------------------------------------------------------
# item 23: cleanup(30) means 30 days
# ---------------------------------------------------------------------------------------
def _import_aged(tmp_path: Path, session_id: str, age: timedelta) -> None:
    """A session last updated ``age`` ago (an import keeps its age)."""
    from repertory.stores.codec import MsgpackCodec

    codec = MsgpackCodec()
    Session(session_id, agent=DEMO).chat("Hello.")
    path = tmp_path / f"{session_id}.jsonl"
    repertory.export_sessions(path, prefix=session_id)
    Session(session_id, agent=DEMO).delete()
    line = read_jsonl(path)[0]
    meta = codec.decode(_unb64(line["meta"]))
    meta["updated_at"] -= age.total_seconds()
    line["meta"] = _b64(codec.encode(meta))
    path.write_text(json.dumps(line) + "\n")
    assert repertory.import_sessions(path) == 1


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def test_cleanup_with_a_number_means_days(local, tmp_path):
    _import_aged(tmp_path, "old", timedelta(days=31))
    _import_aged(tmp_path, "hour-old", timedelta(hours=1))
    Session("fresh", agent=DEMO).chat("Hello.")
    assert [s.key for s in repertory.cleanup(30)] == ["old"]
    assert sorted(s.key for s in repertory.list_sessions()) == ["fresh", "hour-old"]


def test_cleanup_with_a_timedelta_removes_only_older_sessions(local, tmp_path):
    # Control for the test above, and a check that the aged import works.
    _import_aged(tmp_path, "old", timedelta(days=31))
    _import_aged(tmp_path, "hour-old", timedelta(hours=1))
    assert [s.key for s in repertory.cleanup(timedelta(days=30))] == ["old"]
    assert sorted(s.key for s in repertory.list_sessions()) == ["hour-old"]
