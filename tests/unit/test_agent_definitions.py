"""Issue 16 item 7: a session stores its agent definitions and continues with them.

What is stored (``Agent.to_dict()``: no secrets, tools by import path), that it reads back
after a restart on SQLite and Redis, that the raw records hold no secret, that tools are
restored only by import path and only when marked, that a replacement is recorded, and that
the declared schema refuses bad definitions in imports and session files.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

import definition_tools
import repertory
from contract_helpers import b64, read_jsonl, restart_local, unb64
from openai_server import OpenAIServer
from repertory import Agent, AgentError, CorruptState, InvalidInput, Session, Tool
from repertory.agents.definition import definition_key, is_secret_name
from repertory.state.schema import AGENT_CHANGES_KEPT
from repertory.stores.codec import MsgpackCodec

pytestmark = pytest.mark.redis

codec = MsgpackCodec()
KEEPER = Agent("Keeper", instructions="The secret codeword is pineapple.", model=repertory.DEMO_MODEL)
OTHER = Agent("Other", instructions="The secret codeword is mango.", model=repertory.DEMO_MODEL)
SECRET = "sk-live-SECRET-4242"


class ResponseShape:  # an option value a store cannot hold (litellm takes classes for response_format)
    pass


@pytest.fixture
def server(monkeypatch):
    # Keys are never stored: a restored agent reaches the model with the environment's key.
    monkeypatch.setenv("OPENAI_API_KEY", "from-the-environment")
    with OpenAIServer() as srv:
        yield srv


def _raw_records(store) -> bytes:
    """Every byte the store holds, read around repertory (the SQLite file and WAL, or Redis keys)."""
    if store.kind == "sqlite":
        path = Path(store.url.removeprefix("sqlite:///"))
        con = sqlite3.connect(path)
        try:
            rows = [bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode()
                    for table in ("sessions", "messages", "checkpoints")
                    for row in con.execute(f"SELECT * FROM {table}") for v in row if v is not None]
        finally:
            con.close()
        files = [p.read_bytes() for p in path.parent.glob(path.name + "*")]
        return b"\n".join(rows + files)
    r = store.redis()
    out = []
    for key in r.scan_iter(match=f"{store.prefix}:*"):
        kind = r.type(key)
        if kind == b"hash":
            out.extend(v for kv in r.hgetall(key).items() for v in kv)
        elif kind == b"list":
            out.extend(r.lrange(key, 0, -1))
        elif kind == b"zset":
            out.extend(m for m, _ in r.zrange(key, 0, -1, withscores=True))
        elif kind == b"string":
            out.append(r.get(key))
    assert out, "the session's keys were found"
    return b"\n".join(out)


# -- the stored form --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["api_key", "API_KEY", "apiKey", "x-api-key", "Authorization", "token",
                                  "azure_ad_token", "aws_secret_access_key", "aws_access_key_id", "password",
                                  "client_secret", "Cookie", "vertex_credentials", "Proxy-Authorization"])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens", "temperature", "api_base", "base_url",
                                  "top_p", "seed", "monkey", "keywords", "X-Trace-Id", "metadata", "user"])
def test_names_that_are_not_secrets(name):
    assert not is_secret_name(name)


def test_definition_leaves_out_secrets_and_values_a_store_cannot_hold():
    agent = Agent("Echo", instructions="Be brief.", model="openai/test-model", api_key=SECRET, temperature=0.2,
                  max_tokens=10, api_base="http://127.0.0.1:9/v1", aws_secret_access_key=SECRET,
                  extra_headers={"Authorization": f"Bearer {SECRET}", "X-Trace-Id": "t1"},
                  proxy_url=f"https://user:{SECRET}@proxy.example/", response_format=ResponseShape)
    d = agent.to_dict()
    assert d == {"name": "Echo", "instructions": "Be brief.", "model": "openai/test-model",
                 "options": {"temperature": 0.2, "max_tokens": 10, "api_base": "http://127.0.0.1:9/v1",
                             "extra_headers": {"X-Trace-Id": "t1"}},
                 "tools": [], "withheld": ["api_key", "aws_secret_access_key", "extra_headers.Authorization",
                                           "proxy_url", "response_format"],
                 "max_tool_rounds": 8, "history_window": None}
    assert SECRET not in json.dumps(d)


def test_tools_are_stored_by_import_path_where_they_have_one():
    def closure(city: str) -> str:
        """A closure: no import path."""
        return city

    agent = Agent("T", model=repertory.DEMO_MODEL, tools=[definition_tools.weather, definition_tools.unmarked,
                                                         closure, Tool(lambda q: q, name="lookup", description="d")])
    assert agent.to_dict()["tools"] == [
        {"name": "weather", "path": "definition_tools:weather", "description": "The weather in a city."},
        {"name": "unmarked", "path": "definition_tools:unmarked", "description": definition_tools.unmarked.__doc__},
        {"name": "closure", "path": None, "description": "A closure: no import path."},
        {"name": "lookup", "path": None, "description": "d"},
    ]


def test_tool_marks_only_functions():
    with pytest.raises(AgentError, match="@tool"):
        repertory.tool(len)


# -- round trips ------------------------------------------------------------------------------
def test_every_stored_field_reads_back_after_a_restart(local):
    agent = Agent("Full", instructions="The secret codeword is pineapple.", model=repertory.DEMO_MODEL,
                  tools=[definition_tools.weather], max_tool_rounds=3, history_window=6, temperature=0.3,
                  metadata={"team": "a", "tags": ["x", "y"]})
    Session("full", agent=agent).chat("Hello there.")
    restart_local(local)
    s = Session("full")
    assert s.get_state()["agent"] == agent.to_dict()
    restored = s.agent
    assert restored.to_dict() == agent.to_dict()
    assert restored.key == agent.key  # the same AgentActors on Ray
    assert restored.tools[0].fn is definition_tools.weather
    assert "pineapple" in s.chat("What is the secret codeword?")
    assert s.get_state()["agent_changes"] == []  # continuing with the stored agent changes nothing


def test_stored_record_holds_no_secret(local, server):
    agent = Agent("Echo", model="openai/test-model", api_base=server.base_url, api_key=SECRET,
                  extra_headers={"Authorization": f"Bearer {SECRET}"})
    s = Session("secretive", agent=agent)
    s.chat("first")
    s.create_checkpoint("cp")
    stored = s.get_state()["agent"]
    assert stored["withheld"] == ["api_key", "extra_headers.Authorization"]
    assert stored["options"] == {"api_base": server.base_url, "extra_headers": {}}
    raw = _raw_records(local)
    assert b"api_base" in raw  # the definition is there ...
    assert SECRET.encode() not in raw  # ... without the key
    restart_local(local)
    assert Session("secretive").chat("second") == "echo: second"  # the key came from the environment
    assert server.requests[-1]["messages"][-1]["content"] == "second"


def test_restored_tool_is_imported_and_called(local, server):
    agent = Agent("Forecaster", model="openai/test-model", api_base=server.base_url,
                  tools=[definition_tools.weather])
    Session("forecast", agent=agent).chat("warm-up")
    restart_local(local)
    assert Session("forecast").chat("Weather in Paris?") == "The tool said: sunny in Paris"


def test_tool_without_import_path_needs_agent(local, server):
    def local_weather(city: str) -> str:
        """Weather from a closure."""
        return f"closure weather in {city}"

    agent = Agent("Closure", model="openai/test-model", api_base=server.base_url, tools=[local_weather])
    Session("closure", agent=agent).chat("warm-up")
    restart_local(local)
    with pytest.raises(AgentError, match="without an import path.*pass agent="):
        Session("closure").chat("Weather?")
    assert Session("closure", agent=agent).chat("Weather?") == "The tool said: closure weather in Paris"


def test_unmarked_tool_is_not_imported_from_a_stored_definition(local, server):
    agent = Agent("Unmarked", model="openai/test-model", api_base=server.base_url, tools=[definition_tools.unmarked])
    Session("unmarked", agent=agent).chat("warm-up")
    restart_local(local)
    with pytest.raises(AgentError, match=r"not marked as restorable.*@repertory.tool"):
        Session("unmarked").chat("Weather?")


def test_new_session_without_agent_uses_the_default_assistant_and_stores_none(local):
    s = Session("plain")
    assert s.agent.name == "Assistant"
    s.chat("Hello.")
    state = s.get_state()
    assert state["agent"] is None and state["agents"] == {} and state["agent_changes"] == []


def test_multi_agent_session_stores_all_its_agents(local):
    team = Session("team", agents={"keeper": KEEPER, "other": OTHER})
    team.run_agent("keeper", "Hello.")
    restart_local(local)
    again = Session("team")
    assert sorted(again.agents) == ["keeper", "other"]
    assert again.agent.name == "Keeper"
    assert {n: a.to_dict() for n, a in again.agents.items()} == {"keeper": KEEPER.to_dict(), "other": OTHER.to_dict()}
    assert "mango" in again.run_agent("other", "What is the secret codeword?")
    assert "pineapple" in again.chat("What is the secret codeword?")


def test_session_file_carries_the_definitions(local, tmp_path):
    s = Session("filed", agent=KEEPER)
    s.chat("Hello.")
    s.save(tmp_path / "filed.rps")
    doc = codec.decode((tmp_path / "filed.rps").read_bytes())
    assert doc["meta"]["agent"] == KEEPER.to_dict()
    restart_local(local)
    loaded = Session.load(tmp_path / "filed.rps", session_id="refiled")
    assert loaded.agent.to_dict() == KEEPER.to_dict()
    assert repertory.export_sessions(tmp_path / "all.jsonl") == 2
    metas = [codec.decode(unb64(line["meta"])) for line in read_jsonl(tmp_path / "all.jsonl")]
    assert [m["agent"] for m in metas] == [KEEPER.to_dict(), KEEPER.to_dict()]


def test_fork_continues_with_the_stored_agent(local):
    Session("parent", agent=KEEPER).chat("Hello.")
    Session("parent").fork("child")
    restart_local(local)
    child = Session("child")
    assert child.get_state()["agent"] == KEEPER.to_dict()
    assert "pineapple" in child.chat("What is the secret codeword?")


# -- replacements ------------------------------------------------------------------------------
def test_explicit_agent_replaces_the_stored_one_and_the_change_is_recorded(local):
    Session("swap", agent=KEEPER).chat("Hello.")
    Session("swap", agent=OTHER).chat("Hello again.")
    Session("swap", agent=OTHER).chat("Same agent: no change.")
    restart_local(local)
    state = Session("swap").get_state()
    assert state["agent"] == OTHER.to_dict()
    [change] = state["agent_changes"]
    assert {k: v for k, v in change.items() if k != "at"} == {
        "field": "agent", "name": "Other", "old": definition_key(KEEPER.to_dict()),
        "new": definition_key(OTHER.to_dict())}
    assert change["at"] <= state["updated_at"]
    assert "mango" in Session("swap").chat("What is the secret codeword?")


def test_restore_keeps_the_agent_and_its_change_record(local):
    s = Session("rewind", agent=KEEPER)
    s.chat("Hello.")
    cp = s.create_checkpoint()
    Session("rewind", agent=OTHER).chat("Hello again.")
    s.restore_checkpoint(cp)
    state = Session("rewind").get_state()
    assert state["agent"] == OTHER.to_dict() and len(state["agent_changes"]) == 1


def test_replacing_a_named_agent_is_recorded(local):
    Session("crew", agents={"a": KEEPER, "b": OTHER}).run_agent("a", "Hi.")
    Session("crew", agents={"a": KEEPER, "b": KEEPER}).run_agent("b", "Hi.")
    changes = [{k: v for k, v in c.items() if k != "at"} for c in Session("crew").get_state()["agent_changes"]]
    assert changes == [{"field": "agents", "name": "b", "old": definition_key(OTHER.to_dict()),
                        "new": definition_key(KEEPER.to_dict())}]


def test_change_record_is_bounded(local):
    for i in range(AGENT_CHANGES_KEPT + 4):
        Session("flip", agent=KEEPER if i % 2 else OTHER).chat(f"Turn {i}.")
    changes = Session("flip").get_state()["agent_changes"]
    assert len(changes) == AGENT_CHANGES_KEPT
    assert [c["name"] for c in changes[-2:]] == ["Other", "Keeper"]


def test_bad_agent_is_refused_when_the_handle_is_made(local):
    with pytest.raises(InvalidInput, match="instructions"):
        Session("bad", agent=Agent("Bad", instructions=["not", "text"], model=repertory.DEMO_MODEL))
    assert repertory.list_sessions() == []


def test_a_turn_carrying_a_bad_definition_is_refused_and_nothing_written(local):
    from repertory.host.api import TurnRequest
    from repertory.ids import SessionRef

    rt = repertory.get_runtime()
    rt.ensure_agent(KEEPER)
    bad = {"agent": dict(KEEPER.to_dict(), options={"api_key": SECRET}), "agents": {}}
    req = TurnRequest(ref=SessionRef("carried", None, "pooled"), agent_key=KEEPER.key, content="Hi.",
                      turn_id="t1", agents=bad)
    with pytest.raises(InvalidInput, match="never stores"):
        asyncio.run(rt.turn(req))
    assert not Session("carried").exists()


# -- the schema refuses bad definitions in imports and files ------------------------------------
def _bad_agent(**fields):
    return dict(KEEPER.to_dict(), **fields)


BAD_META = {
    "agent-not-a-dict": ("agent", "Keeper"),
    "instructions-number": ("agent", _bad_agent(instructions=3)),
    "model-empty": ("agent", _bad_agent(model="")),
    "unknown-field": ("agent", dict(KEEPER.to_dict(), code="import os")),
    "missing-field": ("agent", {k: v for k, v in KEEPER.to_dict().items() if k != "tools"}),
    "secret-option": ("agent", _bad_agent(options={"api_key": SECRET})),
    "secret-header": ("agent", _bad_agent(options={"extra_headers": {"Authorization": "Bearer x"}})),
    "tool-path-code": ("agent", _bad_agent(tools=[{"name": "t", "path": "os.system('x')", "description": ""}])),
    "tool-twice": ("agent", _bad_agent(tools=[{"name": "t", "path": None, "description": ""}] * 2)),
    "max-tool-rounds-text": ("agent", _bad_agent(max_tool_rounds="8")),
    "history-window-zero": ("agent", _bad_agent(history_window=0)),
    "agents-list": ("agents", [KEEPER.to_dict()]),
    "agents-bad-member": ("agents", {"a": _bad_agent(name=7)}),
    "changes-too-many": ("agent_changes", [{"at": 1.0, "field": "agent", "name": "K", "old": None, "new": "k"}]
                         * (AGENT_CHANGES_KEPT + 1)),
    "change-bad-field": ("agent_changes", [{"at": 1.0, "field": "tools", "name": "K", "old": None, "new": "k"}]),
    "change-time-text": ("agent_changes", [{"at": "now", "field": "agent", "name": "K", "old": None, "new": "k"}]),
}


@pytest.mark.parametrize("field,value", BAD_META.values(), ids=BAD_META.keys())
def test_import_refuses_a_bad_definition_and_writes_nothing(local, tmp_path, field, value):
    Session("source", agent=KEEPER).chat("Hello.")
    assert repertory.export_sessions(tmp_path / "out.jsonl") == 1
    [line] = read_jsonl(tmp_path / "out.jsonl")
    meta = codec.decode(unb64(line["meta"]))
    meta[field] = value
    line["meta"] = b64(codec.encode(meta))
    Session("source").delete()
    (tmp_path / "bad.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(CorruptState):
        repertory.import_sessions(tmp_path / "bad.jsonl")
    assert repertory.list_sessions() == []


@pytest.mark.parametrize("field,value", BAD_META.values(), ids=BAD_META.keys())
def test_load_refuses_a_bad_definition_and_writes_nothing(local, tmp_path, field, value):
    s = Session("source", agent=KEEPER)
    s.chat("Hello.")
    path = tmp_path / "s.rps"
    s.save(path)
    s.delete()
    doc = codec.decode(path.read_bytes())
    doc["meta"][field] = value
    path.write_bytes(codec.encode(doc))
    with pytest.raises(CorruptState):
        Session.load(path)
    assert repertory.list_sessions() == []


def test_cli_chat_continues_a_session_with_its_stored_agent(tmp_path):
    from typer.testing import CliRunner

    from repertory.cli import app

    store = f"sqlite:///{tmp_path / 'state.db'}"
    repertory.init(runtime="local", store=store)
    try:
        Session("cli-keeper", agent=KEEPER).chat("Hello.")
    finally:
        repertory.shutdown()
    result = CliRunner().invoke(app, ["chat", "--session", "cli-keeper", "--local", "--store", store],
                                input="What is the secret codeword?\n/quit\n")
    assert result.exit_code == 0, result.output
    assert "pineapple" in result.output


@pytest.mark.parametrize("first", ["agent", "history"])
def test_a_read_before_the_first_turn_keeps_the_handles_ttl(local, first):
    # The handle reads its stored agents before its first turn: that read must not give the
    # new session the default TTL instead of the handle's.
    s = Session("brief", ttl=600)
    if first == "history":
        assert s.get_history() == []
    s.chat("Hello.")
    [info] = repertory.list_sessions()
    assert info.expires_at is not None
    assert (info.expires_at - info.updated_at).total_seconds() == pytest.approx(600, abs=5)



def _tool_a(x: str) -> str:
    """A."""
    return x


def _tool_b(x: str) -> str:
    """B."""
    return x


def _uncached(a: Agent) -> Agent:
    """A twin of ``a`` sharing its attributes but nothing remembered."""
    twin = Agent.__new__(Agent)
    twin.__dict__.update(vars(a))
    twin.__dict__["_memo"] = None
    return twin


def test_key_and_definition_follow_every_change_to_the_agent():
    # key and the stored definition are remembered between calls (a handle per request asks
    # for them on every turn); a change of any part, set or made in place, gives new ones.
    from repertory.agents.definition import definition_of
    from repertory.agents.tools import as_tool
    from repertory.memory.settings import MemorySettings

    a = Agent("Keyed", "Be brief.", model="repertory/null", temperature=0.1)
    seen = {a.key}
    assert a.key == _uncached(a).key and a.to_dict() == definition_of(a)
    for change in [
        lambda: setattr(a, "instructions", "Be long."),
        lambda: setattr(a, "model", "repertory/demo"),
        lambda: a.llm_options.update(temperature=0.9),  # in place
        lambda: a.llm_options.update(top_p=0.5),
        lambda: a.tools.append(as_tool(_tool_a)),  # in place
        lambda: a.tools.__setitem__(0, as_tool(_tool_b)),
        lambda: setattr(a, "max_tool_rounds", 3),
        lambda: setattr(a, "history_window", 4),
        lambda: setattr(a, "max_context_tokens", 1000),
        lambda: setattr(a, "memory", MemorySettings()),
        lambda: setattr(a.memory, "max_memories", 7),  # in place
        lambda: setattr(a, "name", "Renamed"),
    ]:
        change()
        assert a.key == _uncached(a).key and a.key not in seen
        seen.add(a.key)
        assert a.to_dict() == definition_of(a)
    a.to_dict()["instructions"] = "changed by a caller"  # a copy: the agent keeps its own
    assert a.to_dict() == definition_of(a)


def test_a_handle_made_after_a_change_carries_the_new_definition(local):
    a = Agent("Changing", "First.", model="repertory/null")
    s1 = Session("changing-1", a)
    a.instructions = "Second."
    s2 = Session("changing-2", a)
    assert s1._definitions["agent"]["instructions"] == "First."
    assert s2._definitions["agent"]["instructions"] == "Second."
    s2.chat("hi")
    assert s2.get_state()["agent"]["instructions"] == "Second."
