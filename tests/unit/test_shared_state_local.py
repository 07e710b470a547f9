"""SharedState and multi-agent sessions on the local runtime (no Ray)."""

import asyncio

import pytest

import repertory
from repertory import Agent, InvalidInput, Session, SharedState


def test_operations_and_versions(rt):
    s = SharedState("board")
    assert s.get("missing", 7) == 7 and s.revision() == 0
    s.set("a", 1)
    s.update({"b": [1], "c": {"x": True}})
    assert s.increment("a", 2) == 3
    assert s.append("b", 2) == 2
    assert s.compare_and_set("a", 3, 10) is True
    assert s.compare_and_set("a", 3, 11) is False
    assert s.compare_and_set("new", None, "made") is True
    assert s.delete("c") is True and s.delete("c") is False
    assert s.snapshot() == {"a": 10, "b": [1, 2], "new": "made"}
    assert sorted(s.keys()) == ["a", "b", "new"]
    assert s.revision() == 7  # one per change; refused/no-op operations do not count


def test_bad_values_and_keys_are_refused(rt):
    s = SharedState()
    with pytest.raises(InvalidInput, match="plain data"):
        s.set("k", object())
    with pytest.raises(InvalidInput):
        s.set("", 1)
    s.set("text", "x")
    with pytest.raises(InvalidInput, match="increment needs numbers"):
        s.increment("text")
    with pytest.raises(InvalidInput, match="append needs a list"):
        s.append("text", 1)
    assert s.snapshot() == {"text": "x"}


async def test_concurrent_increments_and_cas(rt):
    s = SharedState("counter")
    await asyncio.gather(*[s.aincrement("n") for _ in range(500)])
    assert await s.aget("n") == 500
    wins = await asyncio.gather(*[s.acompare_and_set("owner", None, f"w{i}") for i in range(50)])
    assert wins.count(True) == 1


def test_survives_runtime_restart(rt, tmp_path):
    SharedState("durable").update({"k": "v", "n": 1})
    url = rt.settings.store
    repertory.shutdown()
    repertory.init(runtime="local", store=url)
    assert SharedState("durable").snapshot() == {"k": "v", "n": 1}


async def test_watch_yields_changes(rt):
    s = SharedState("watched")
    seen = []
    await s.aset("a", 0)
    start = await s.arevision()

    async def watcher():  # from a known revision: no change is missed, whenever it subscribes
        async for change in s.awatch(["a"], after=start):
            seen.append(change)
            if len(seen) == 2:
                return

    task = asyncio.create_task(watcher())
    await s.aset("a", 1)
    await s.aset("b", 1)  # not watched
    await s.aset("a", 2)
    await asyncio.wait_for(task, 5)
    assert [c["changes"] for c in seen] == [{"a": 1}, {"a": 2}]
    assert seen[1]["revision"] > seen[0]["revision"]


def test_seed_multi_agent_snippet(rt):
    # Shared state for agents
    shared_state = SharedState()
    # Create specialised agents
    research_agent = Agent(name="Researcher", instructions="Research topics thoroughly")
    writer_agent = Agent(name="Writer", instructions="Write based on research")
    # Create session with multiple agents
    session = Session(session_id="project_x", agents={"research": research_agent, "writer": writer_agent},
                      shared_state=shared_state)
    # Agents share state
    session.run_agent("research", "Research quantum computing")
    shared_state.set("topic", "quantum computing")
    out = session.run_agent("writer", "What is the topic of the research?")
    assert "quantum computing" in out  # the writer saw the research turn and the shared state
    hist = session.get_history()
    assert [m.get("agent") for m in hist] == ["research", "research", "writer", "writer"]
    assert hist[1]["name"] == "Researcher" and hist[3]["name"] == "Writer"
    with pytest.raises(InvalidInput, match=r"\['research', 'writer'\]"):
        session.run_agent("editor", "hello")


def test_own_history_mode(rt):
    a, b = Agent(name="A"), Agent(name="B")
    s = Session(agents={"a": a, "b": b}, agent_history="own")
    s.run_agent("a", "My name is Alice")
    assert "Alice" not in s.run_agent("b", "What's my name?")
    assert "Alice" in s.run_agent("a", "What's my name?")


def test_session_context_for_workflows(rt):
    s = Session(session_id="ctx")
    s.chat("hello")
    s.add_result("objective", {"ok": True})
    ctx = s.get_context()
    assert ctx["interaction_count"] == 1 and ctx["results"][0]["objective"] == "objective"
