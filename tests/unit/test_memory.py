"""Long-term memory (issue 9): recall across sessions of a user, quality, eviction, bad config.

The tests take the runtime as ``rt`` (tests/unit/conftest.py: the local runtime over a fresh
SQLite file); tests/integration/test_session_suite_on_ray.py runs the same functions on Ray.
"""

from __future__ import annotations

import json
import random
import runpy
import time
from pathlib import Path

import pytest

import repertory
from repertory import Agent, Memory, MemoryConfigError, QualityFilter, Session

from tests.openai_server import OpenAIServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUESTION = "What's my favourite programming language?"


def _memory_agent(name: str = "MemoryAgent", **memory_options) -> Agent:
    return Agent(name=name, instructions="Remember user preferences and past conversations",
                 memory=Memory(**memory_options))


def _tell(session: Session) -> None:
    session.chat("I prefer Python over JavaScript")
    session.chat("My favourite colour is blue")


def test_facts_of_one_user_reach_their_later_sessions_only(rt):
    agent = _memory_agent()
    _tell(Session(session_id="a", user_id="u", agent=agent, persist_memory=True))
    later = Session(session_id="b", user_id="u", agent=agent).chat(QUESTION)
    assert "[demo model]" in later and "Python" in later  # the demo model quotes only its prompt
    other = Session(session_id="c", user_id="v", agent=agent).chat(QUESTION)
    assert "Python" not in other and "blue" not in other


def test_streamed_turns_remember_and_recall(rt):
    agent = _memory_agent("Streamer")
    session = Session(session_id="a", user_id="u", agent=agent)
    "".join(session.stream("I prefer Python over JavaScript"))
    assert "Python" in "".join(Session(session_id="b", user_id="u", agent=agent).stream(QUESTION))


def test_persist_memory_without_agent_memory_uses_the_runtime_database(rt):
    agent = Agent("Plain", "You are a helpful assistant.")
    _tell(Session(session_id="a", user_id="u", agent=agent, persist_memory=True))
    assert "Python" in Session(session_id="b", user_id="u", agent=agent, persist_memory=True).chat(QUESTION)
    # Without memory on, the same user's new session starts blank.
    assert "Python" not in Session(session_id="c", user_id="u", agent=agent).chat(QUESTION)
    # persist_memory=False turns an agent's memory off for one session.
    assert "Python" not in Session(session_id="d", user_id="u", agent=_memory_agent(),
                                   persist_memory=False).chat(QUESTION)


def test_without_user_memory_belongs_to_the_session(rt):
    agent = _memory_agent()
    _tell(Session(session_id="solo", agent=agent))
    assert "Python" not in Session(session_id="other", agent=agent).chat(QUESTION)
    stored = agent.memory.get_all(session_id="solo")
    assert {m["content"] for m in stored} >= {"The user prefers Python over JavaScript."}
    assert agent.memory.get_all(session_id="other") == []


def test_memories_survive_a_runtime_restart(rt, tmp_path):
    store = rt.settings.store
    agent = _memory_agent()
    _tell(Session(session_id="a", user_id="u", agent=agent, persist_memory=True))
    repertory.shutdown()
    repertory.init(runtime="local" if rt.agents_in_process else "ray", store=store,
                   namespace=rt.settings.namespace)
    assert "Python" in Session(session_id="b", user_id="u", agent=_memory_agent()).chat(QUESTION)


def test_runtimes_on_different_stores_do_not_share_memories(rt, tmp_path):
    agent = _memory_agent()
    _tell(Session(session_id="a", user_id="u", agent=agent, persist_memory=True))
    repertory.shutdown()
    repertory.init(runtime="local" if rt.agents_in_process else "ray",
                   store=f"sqlite:///{tmp_path / 'other' / 'state.db'}", namespace=rt.settings.namespace + "-b")
    assert "Python" not in Session(session_id="b", user_id="u", agent=_memory_agent()).chat(QUESTION)


def test_the_model_extracts_facts_through_litellm_and_they_reach_the_prompt(rt):
    extract_marker = "Extract durable facts"

    def script(body):
        system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
        if extract_marker not in system:
            return None
        said = body["messages"][-1]["content"]
        if "Python" in said:
            return json.dumps([{"fact": "The user's favourite programming language is Python.",
                                "importance": 0.9, "relevance": 0.9}])
        return "[]"

    with OpenAIServer() as server:
        server.script = script
        agent = Agent("HttpAgent", "You are helpful.", model="openai/test-model", api_base=server.base_url,
                      api_key="sk-test", memory=Memory())
        Session(session_id="a", user_id="u", agent=agent).chat("I prefer Python over JavaScript")
        extraction = [r for r in server.requests if extract_marker in r["messages"][0]["content"]]
        assert len(extraction) == 1 and extraction[0]["model"] == "test-model"
        def turn_prompt(start):  # the turn's own request (the extraction call runs beside it)
            [req] = [r for r in server.requests[start:] if extract_marker not in r["messages"][0]["content"]]
            return req["messages"]

        n = len(server.requests)
        Session(session_id="b", user_id="u", agent=agent).chat(QUESTION)
        prompt = turn_prompt(n)
        assert prompt[0]["role"] == "system"
        assert "The user's favourite programming language is Python." in prompt[0]["content"]
        n = len(server.requests)
        Session(session_id="c", user_id="v", agent=agent).chat(QUESTION)
        assert "Python" not in json.dumps(turn_prompt(n))


def test_quality_threshold_keeps_low_scores_out(rt):
    memory = Memory(quality_threshold=0.6)
    assert memory.add("The user likes tea.", user_id="u", importance=0.1, relevance=0.1) is False
    assert memory.add("The user prefers Python.", user_id="u", importance=0.9, relevance=0.9) is True
    assert [m["content"] for m in memory.get_all(user_id="u")] == ["The user prefers Python."]
    # Through turns: nothing the extractor finds scores 0.99, so nothing is remembered.
    strict = Agent("Strict", "Remember.", memory=Memory(quality_threshold=0.99))
    _tell(Session(session_id="a", user_id="u2", agent=strict))
    assert strict.memory.get_all(user_id="u2") == []
    assert "Python" not in Session(session_id="b", user_id="u2", agent=strict).chat(QUESTION)


def test_seed_quality_scorer_works_as_written_and_gates_turns(rt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = runpy.run_path(str(EXAMPLES / "seed_memory_quality.py"))
    memory = ns["memory"]
    now = time.time()
    # The page's scorer: 0.4 relevance + 0.3 recency + 0.3 importance.
    assert memory.score({"timestamp": now, "relevance": 1.0, "importance": 1.0}) == pytest.approx(1.0, abs=1e-3)
    assert memory.score({"timestamp": now - 365 * 86400}) < 0.7
    assert memory.add("The user prefers Python.", user_id="u", importance=0.9, relevance=0.9) is True
    assert memory.add("The user once mentioned rain.", user_id="u", importance=0.2, relevance=0.3) is False
    assert memory.add("The user lived in Paris.", user_id="u", importance=0.9, relevance=0.9,
                      timestamp=now - 365 * 86400) is False  # old news: recency ~0
    agent = Agent("Scored", "Remember.", memory=memory)
    _tell(Session(session_id="a", user_id="w", agent=agent))
    assert "Python" in Session(session_id="b", user_id="w", agent=agent).chat(QUESTION)


def test_custom_scorer_decides_what_is_kept(rt):
    memory = Memory(quality_threshold=0.5)
    memory.set_quality_scorer(lambda item: 1.0 if "colour" in item["content"] else 0.0)
    agent = Agent("Picky", "Remember.", memory=memory)
    _tell(Session(session_id="a", user_id="u", agent=agent))
    assert [m["content"] for m in memory.get_all(user_id="u")] == ["The user's favourite colour is blue."]


def test_quality_filter_is_a_reusable_scorer():
    qf = QualityFilter(relevance=0.5, recency=0.0, importance=0.5)
    assert qf({"timestamp": time.time(), "relevance": 0.2, "importance": 0.6}) == pytest.approx(0.4)
    assert QualityFilter()({"timestamp": time.time()}) == pytest.approx(0.4 * 0.5 + 0.3 + 0.3 * 0.5, abs=1e-3)
    assert QualityFilter.from_dict(qf.to_dict()) == qf
    with pytest.raises(MemoryConfigError):
        QualityFilter(relevance=-1)
    with pytest.raises(MemoryConfigError):
        QualityFilter(half_life=0)


def test_max_memories_keeps_the_best(rt):
    memory = Memory(max_memories=50)
    importances = list(range(500))
    random.Random(9).shuffle(importances)
    for i in importances:
        memory.add(f"Fact number {i} about the user.", user_id="u", importance=i / 500, relevance=0.5)
    kept = memory.get_all(user_id="u")
    assert len(kept) == 50
    assert sorted(round(m["importance"] * 500) for m in kept) == list(range(450, 500))
    assert memory.get_all(user_id="other") == []


def test_search_ranks_by_relevance_within_a_user(rt):
    memory = Memory()
    memory.add("The user prefers Python over JavaScript.", user_id="u", importance=0.8, relevance=0.8)
    memory.add("The user's favourite colour is blue.", user_id="u", importance=0.8, relevance=0.8)
    memory.add("The user prefers Rust over Go.", user_id="v", importance=0.8, relevance=0.8)
    hits = memory.search("which programming language, Python or JavaScript?", user_id="u", limit=1)
    assert [h["content"] for h in hits] == ["The user prefers Python over JavaScript."]
    assert all("Rust" not in h["content"] for h in memory.search("prefers", user_id="u"))
    # The same fact again is refreshed, not stored twice.
    memory.add("The user prefers Python over JavaScript.", user_id="u", importance=0.8, relevance=0.8)
    assert len(memory.get_all(user_id="u")) == 2
    assert memory.clear(user_id="u") == 2 and memory.get_all(user_id="u") == []


def test_bad_config_fails_at_construction(tmp_path):
    with pytest.raises(MemoryConfigError, match="unknown memory provider"):
        Memory(provider="postgres")
    with pytest.raises(MemoryConfigError, match="folder"):
        Memory(config={"db_path": str(tmp_path / "missing" / "memories.db")})
    with pytest.raises(MemoryConfigError, match="unknown memory config"):
        Memory(config={"db_pth": "x.db"})
    with pytest.raises(MemoryConfigError, match="quality_threshold"):
        Memory(quality_threshold=1.5)
    with pytest.raises(MemoryConfigError, match="max_memories"):
        Memory(max_memories=0)
    with pytest.raises(MemoryConfigError, match="callable"):
        Memory().set_quality_scorer("high")
    with pytest.raises(repertory.InvalidInput, match="Memory"):
        Agent("A", memory={"provider": "sqlite"})


def test_persist_memory_needs_a_database_file_on_other_stores(tmp_path):
    repertory.init(runtime="local", store="memory://")
    try:
        with pytest.raises(MemoryConfigError, match="db_path"):
            Session(session_id="a", user_id="u", persist_memory=True)
        db = tmp_path / "memories.db"
        agent = _memory_agent(config={"db_path": str(db)})
        _tell(Session(session_id="a", user_id="u", agent=agent))
        assert "Python" in Session(session_id="b", user_id="u", agent=agent).chat(QUESTION)
        assert db.exists()
    finally:
        repertory.shutdown()


def test_seed_memory_integration_snippet(rt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = runpy.run_path(str(EXAMPLES / "seed_memory_integration.py"), run_name="__main__")
    assert "Python" in ns["response"]
    assert (tmp_path / "memories.db").exists()
    facts = {m["content"] for m in ns["memory"].get_all(session_id="user_123")}
    assert facts == {"The user prefers Python over JavaScript.", "The user's favourite colour is blue."}


def test_deterministic_extractor_finds_statements_and_skips_questions():
    from repertory.memory.extract import extract_facts

    facts = extract_facts("Hi! My name is Alice. I prefer tea to coffee; I live in Lyon. I'm a nurse. "
                          "What's my name? I love chess. My favourite colour is green. I always run at 7")
    assert [f["content"] for f in facts] == [
        "The user's name is Alice.", "The user prefers tea to coffee.", "The user lives in Lyon.",
        "The user is a nurse.", "The user loves chess.", "The user's favourite colour is green.",
        "The user always runs at 7."]
    assert extract_facts("What's my favourite programming language?") == []
    assert extract_facts("I never go out; I usually study late")[1]["content"] == "The user usually studies late."
    assert all(0 < f["importance"] <= 1 and 0 < f["relevance"] <= 1 for f in facts)


def test_model_answers_are_read_leniently():
    from repertory.memory.extract import parse_model_facts

    got = parse_model_facts('Sure:\n[{"fact": "The user is vegan.", "importance": 2}, {"x": 1}, "The user is 30."]')
    assert [(f["content"], f["importance"]) for f in got] == [("The user is vegan.", 1.0), ("The user is 30.", 0.5)]
    assert parse_model_facts("no facts here") is None
    assert parse_model_facts("[]") == []


def test_an_unreadable_extraction_answer_falls_back_to_the_patterns(rt):
    with OpenAIServer() as server:  # it answers the extraction prompt with "echo: ...", not JSON
        agent = Agent("Echo", "You are helpful.", model="openai/test-model", api_base=server.base_url,
                      api_key="sk-test", memory=Memory())
        Session(session_id="a", user_id="u", agent=agent).chat("I prefer Python over JavaScript")
    assert [m["content"] for m in agent.memory.get_all(user_id="u")] == ["The user prefers Python over JavaScript."]


def test_search_ranks_within_the_newest_matches_of_a_large_scope(rt, monkeypatch):
    import repertory.memory.sqlite as provider

    monkeypatch.setattr(provider, "RECALL_WINDOW", 3)
    memory = Memory()
    for i in range(6):
        memory.add(f"The user owns chess set number {i}.", user_id="u", importance=0.5, relevance=0.5)
    hits = memory.search("chess", user_id="u", limit=10)
    assert sorted(h["content"] for h in hits) == [f"The user owns chess set number {i}." for i in (3, 4, 5)]
