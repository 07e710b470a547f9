"""Session analytics, ratings and preferences: exact figures, round trips, the seed snippets.

The functions taking ``rt`` run on the local runtime here and on Ray from
tests/integration/test_session_suite_on_ray.py.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

import repertory
from repertory import Agent, InvalidInput, Session
from repertory.session.analytics import HEURISTIC, analytics, percentile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _reply(content, name, latency, prompt, completion, cost=None, model="m1"):
    m = {"role": "assistant", "content": content, "name": name, "model": model, "latency": latency,
         "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}
    if cost is not None:
        m["cost"] = cost
    return m


SCRIPT = [
    {"role": "user", "content": "Tell me about Lisbon trams"},
    _reply("a", "guide", 0.10, 10, 5, 0.001),
    {"role": "user", "content": "Lisbon museums please"},
    _reply("b", "guide", 0.30, 20, 6, 0.002),
    {"role": "user", "content": "Thanks, that was helpful"},
    _reply("c", "guide", 0.20, 30, 7),
    {"role": "user", "content": "And the weather in Lisbon?"},
    _reply("d", "forecaster", 1.00, 40, 8, 0.004, model="m2"),
]


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([0.1, 0.3, 0.2], 50) == 0.2 and percentile([0.1, 0.3, 0.2], 95) == 0.3


def test_analytics_figures_are_exact_for_a_scripted_session(rt):
    s = Session("scripted")
    s.set_history(SCRIPT)
    s.set_state({"turns": 4})
    perf = s.get_performance_metrics()
    assert perf["turns"] == 4 and perf["model_calls"] == 4
    assert perf["latency_p50"] == 0.2 and perf["latency_p95"] == 1.0
    assert perf["tokens"] == {"prompt": 100, "completion": 26, "total": 126}
    assert perf["cost"] == pytest.approx(0.007) and perf["priced_calls"] == 3
    assert perf["errors"] == 0 and perf["retries"] == {"cas_retries": 0, "repeated_model_calls": 0, "lease_waits": 0}
    guide = perf["agents"]["guide"]
    assert guide["model_calls"] == 3 and guide["models"] == ["m1"]
    assert guide["latency_p50"] == 0.2 and guide["latency_p95"] == 0.3
    assert guide["tokens"] == {"prompt": 60, "completion": 18, "total": 78}
    assert guide["cost"] == pytest.approx(0.003)
    assert perf["agents"]["forecaster"]["latency_p50"] == 1.0
    assert s.extract_topics()[0] == "lisbon"
    # No ratings: the documented heuristic, named in the result (one positive message of four).
    assert s.calculate_satisfaction_score() == {
        "score": 2 / 3, "method": HEURISTIC, "ratings": 0, "signals": {"positive": 1, "negative": 0, "errors": 0}}
    report = s.analytics()
    assert json.loads(json.dumps(report)) == report  # plain data, as the HTTP server sends it
    assert report["total_interactions"] == 8 and report["turns"] == 4 and report["topics"][0] == "lisbon"
    assert report["performance"] == perf


def test_turns_record_model_latency_and_usage(rt):
    s = Session(agent=Agent("Helper", model="repertory/demo"))
    s.chat("My name is Alice")
    s.chat("What is my name?")
    replies = [m for m in s.get_history() if m["role"] == "assistant"]
    assert all(m["model"] == "repertory/demo" and m["latency"] > 0 and m["cost"] == 0.0 for m in replies)
    perf = s.get_performance_metrics()
    assert perf["tokens"]["prompt"] == sum(m["usage"]["prompt_tokens"] for m in replies)
    assert perf["tokens"]["completion"] == sum(m["usage"]["completion_tokens"] for m in replies)
    assert perf["agents"]["Helper"]["model_calls"] == 2 and perf["priced_calls"] == 2


def test_ratings_are_kept_apart_from_metadata(rt):
    s = Session("rated")
    s.chat("hello")
    s.rate(1.0)
    s.rate(0.5, "slow")
    s.metadata = {}  # user-writable metadata: replacing it keeps the ratings
    cp = s.create_checkpoint("before")
    s.restore_checkpoint(cp)
    assert s.calculate_satisfaction_score() == {"score": 0.75, "method": "ratings", "ratings": 2}
    for bad in (1.5, -0.1, "good", True, float("nan")):
        with pytest.raises(InvalidInput, match="from 0"):
            s.rate(bad)
    assert [r["comment"] for r in Session("rated").get_state()["ratings"]] == [None, "slow"]


def test_ratings_and_preferences_survive_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    repertory.init(runtime="local", store=url)
    try:
        s = Session("kept")
        s.chat("hello")
        s.rate(0.8)
        s.update_preference("language", "en-GB")
        s.update_profile("name", "Ann")
    finally:
        repertory.shutdown()
    repertory.init(runtime="local", store=url)
    try:
        again = Session("kept")
        assert again.calculate_satisfaction_score()["score"] == 0.8
        assert again.user_profile == {"preferences": {"language": "en-GB"}, "name": "Ann"}
        assert again.analytics()["satisfaction"]["method"] == "ratings"
    finally:
        repertory.shutdown()


def test_failed_turns_are_counted(rt):
    s = Session("failing", agent=Agent("Broken", model="openai/none", api_base="http://127.0.0.1:9",
                                       num_retries=0, timeout=2))
    s.set_history([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    with pytest.raises(repertory.ModelError):
        s.chat("hello?")
    perf = s.get_performance_metrics()
    assert perf["errors"] == 1
    happy = s.calculate_satisfaction_score()
    assert happy["signals"]["errors"] == 1 and happy["score"] < 0.5


def test_heuristic_without_signals_is_neutral():
    state = {"history": [{"role": "user", "content": "hello"}], "turns": 1, "metrics": {}, "ratings": [],
             "session_id": "x", "user_id": None, "created_at": 1.0, "updated_at": 3.5}
    assert analytics(state, now=5.0)["satisfaction"]["score"] == 0.5
    assert analytics(state, now=5.0)["duration"] == 2.5 and analytics(state, now=5.0)["age"] == 4.0


@pytest.mark.parametrize("name", ["seed_session_analytics", "seed_user_preferences", "seed_context_building"])
def test_seed_snippets_run(rt, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")


def test_preferences_reach_the_users_long_term_memory(rt):
    s = Session("prefs-a", user_id="pat", persist_memory=True)
    s.update_preference("language", "Portuguese")
    s.update_profile("city", "Porto")
    later = Session("prefs-b", user_id="pat", persist_memory=True)
    assert "Portuguese" in later.chat("Which language do I prefer?")  # recalled, another session
    assert "Porto" in later.chat("Which city is mine?")
    other = Session("prefs-c", user_id="sam", persist_memory=True)
    assert "Portuguese" not in other.chat("Which language do I prefer?")  # never another user's
    plain = Session("prefs-d", user_id="kim")  # without memory: the profile only
    plain.update_preference("language", "Danish")
    assert "Danish" not in Session("prefs-e", user_id="kim", persist_memory=True).chat("Which language do I prefer?")
