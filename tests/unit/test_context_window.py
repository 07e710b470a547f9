"""The short-term window: long sessions stay within the model's context, settings are stored,
summaries are counted, tool rounds stay within the limit, the prompt carries the context.

The functions taking ``rt`` run on the local runtime here and on Ray from
tests/integration/test_session_suite_on_ray.py.
"""

from __future__ import annotations

import pytest

import repertory
from openai_server import OpenAIServer
from repertory import Agent, InvalidInput, Session
from repertory.agents.demo_model import DEMO_CONTEXT_WORDS
from repertory.agents.window import ContextWindow

TURNS = 5000


def _long_history(turns: int) -> list[dict]:
    out = []
    for i in range(turns):
        out.append({"role": "user", "content": f"Note {i}: the parcel number {i} went to depot {i % 97} today."})
        out.append({"role": "assistant", "content": f"Noted parcel {i}."})
    return out


def _prompts(s: Session) -> list[int]:
    return [m["usage"]["prompt_tokens"] for m in s.get_history() if m["role"] == "assistant" and "model" in m]


def test_a_5000_turn_session_stays_within_the_demo_models_context(rt):
    s = Session("long", agent=Agent("Clerk", model="repertory/demo"))
    s.set_history(_long_history(TURNS))  # 5,000 turns, ~60,000 words: far past 8,192
    s.set_state({"turns": TURNS})
    assert s.chat("My favourite depot is Lisbon.").startswith("[demo model]")
    first = s.get_state()["window"]
    assert first is not None and first["start"] > 0 and first["summary"] is None  # "drop" by default
    assert "Lisbon" in s.chat("Which depot is my favourite?")  # the newest turns are in the prompt
    for i in range(3):
        s.chat(f"Parcel {TURNS + i} is fragile.")
    # The prompt the model received (its usage: words) never exceeded its declared size.
    prompts = _prompts(s)
    assert len(prompts) == 5 and all(0 < p <= DEMO_CONTEXT_WORDS for p in prompts), prompts
    assert max(prompts) > DEMO_CONTEXT_WORDS // 2  # and it was used, not emptied
    assert s.get_state()["turns"] == TURNS + 5


def test_summaries_fold_older_turns_and_their_tokens_are_counted(rt):
    s = Session("folded", context_window=6, context_policy="summarize")
    for i in range(12):
        s.chat(f"My locker {i} has code {1000 + i}.")
    assert "1000" in s.chat("What code has locker 0?")  # from the summary, not the window
    state = s.get_state()
    window = state["window"]
    assert window["summaries"] >= 1 and "locker 0" in window["summary"]
    assert window["usage"]["prompt_tokens"] > 0 and window["usage"]["completion_tokens"] > 0
    perf = s.get_performance_metrics()
    replies = [m for m in state["history"] if m["role"] == "assistant"]
    assert perf["summary_tokens"]["prompt"] == window["usage"]["prompt_tokens"]
    assert perf["tokens"]["prompt"] == sum(m["usage"]["prompt_tokens"] for m in replies) + window["usage"]["prompt_tokens"]
    # The window held at most 6 past messages plus the question, and the summary.
    assert all(m["usage"]["prompt_tokens"] < 200 for m in replies)


def test_a_turn_that_summarises_reports_the_summary_tokens(rt):
    import asyncio

    s = Session("reported", context_window=2, context_policy="summarize")
    s.chat("My name is Alice.")
    s.chat("I live in Porto.")
    reply = asyncio.run(s.aturn("I work at the harbour."))  # the first message leaves the window
    replies = [m for m in s.get_history() if m["role"] == "assistant"]
    summary = s.get_state()["window"]["usage"]
    assert reply.usage["prompt_tokens"] == replies[-1]["usage"]["prompt_tokens"] + summary["prompt_tokens"]


def test_window_settings_survive_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    repertory.init(runtime="local", store=url)
    try:
        s = Session("kept", context_window=4, max_context_tokens=500, context_policy="summarize")
        s.chat("My name is Bob.")
    finally:
        repertory.shutdown()
    repertory.init(runtime="local", store=url)
    try:
        again = Session("kept")  # no settings given: the stored ones apply
        assert again.get_state()["context"] == {"messages": 4, "tokens": 500, "policy": "summarize"}
        for i in range(5):
            again.chat(f"Fact {i} is true.")
        assert again.get_state()["window"]["summaries"] >= 1  # summarised, as stored
        assert "Bob" in again.chat("What is my name?")
        replaced = Session("kept", context_window=10)  # a handle that sets them stores its own
        replaced.chat("hello")
        assert Session("kept").get_state()["context"] == {"messages": 10, "tokens": None, "policy": "drop"}
    finally:
        repertory.shutdown()


def test_drop_keeps_the_newest_messages_only(rt):
    s = Session("dropper", context_window=2)
    s.chat("My name is Alice.")
    s.chat("I like tea.")
    assert "Alice" not in s.chat("What is my name?")  # out of the window, not summarised
    assert len(s.get_history()) == 6  # the history keeps everything


def test_bad_window_settings_are_refused_at_construction(rt):
    for kw in ({"context_window": 0}, {"max_context_tokens": -5}, {"context_policy": "forget"},
               {"context_window": 2.5}, {"prompt_context": "everything"}):
        with pytest.raises(InvalidInput):
            Session(**kw)
    with pytest.raises(InvalidInput):
        Agent("A", max_context_tokens=0)
    with pytest.raises(InvalidInput):
        Agent("A", context_policy="forget")


def test_replacing_the_history_resets_the_window(rt):
    s = Session("reset", context_window=2, context_policy="summarize")
    for i in range(4):
        s.chat(f"Fact {i}.")
    assert s.get_state()["window"] is not None
    s.set_history([{"role": "user", "content": "Fresh start."}])
    assert s.get_state()["window"] is None  # its start pointed into the old history
    assert s.chat("Anything?").startswith("[demo model]")


def test_tool_rounds_stay_within_the_token_limit(rt):
    big = " ".join(["lorem"] * 150)

    def lookup(city: str) -> str:
        """Everything about a city."""
        return big

    with OpenAIServer() as server:
        agent = Agent("Tools", model="openai/test-model", tools=[lookup], api_base=server.base_url,
                      api_key="test-key", max_context_tokens=400)
        s = Session("tooly", agent=agent)
        s.set_history(_long_history(40))
        assert s.chat("Tell me about Paris") == f"The tool said: {big}"
        counter = ContextWindow("openai/test-model")
        sizes = [sum(counter.count(m) for m in r["messages"]) for r in server.requests]
        assert len(sizes) == 2 and all(n <= 400 for n in sizes), sizes
        # The second round kept the tool result and left out older history instead.
        assert server.requests[1]["messages"][-1]["role"] == "tool"
        assert len(server.requests[1]["messages"]) < len(server.requests[0]["messages"]) + 2


def test_the_prompt_carries_the_profile_and_the_agents_context(rt):
    s = Session("profiled")
    s.update_profile("name", "Carol")
    assert "Carol" in s.chat("What is my name?")
    quiet = Session("quiet", prompt_context=None)
    quiet.update_profile("name", "Carol")
    assert "Carol" not in quiet.chat("What is my name?")
    agent = Agent("Ctx")
    agent.context = {"project": "Atlas"}
    assert "Atlas" in Session("ctx", agent=agent).chat("Which project is it?")
    full = Session("full", prompt_context="full")
    full.chat("I am planning a trip to Lisbon.")
    assert "lisbon" in full.chat("What are the recent topics?").lower()


def test_build_context_returns_the_seed_fields(rt):
    s = Session("built", context_window=4)
    s.update_profile("name", "Dan")
    for text in ("I am planning a trip to Lisbon.", "Lisbon trams are old."):
        s.chat(text)
    ctx = s.build_context()
    assert ctx["user_profile"] == {"name": "Dan"} and ctx["interaction_count"] == 2
    assert ctx["recent_topics"][0] == "lisbon" and ctx["session_duration"] >= 0
    assert len(ctx["recent_history"]) == 4  # the session's context_window


def test_a_short_session_stores_no_window(rt):
    s = Session("short")
    for i in range(5):
        s.chat(f"Short turn {i}.")
    state = s.get_state()
    assert state["window"] is None and state["context"] is None  # nothing moved, nothing set: nothing written


def test_streamed_turns_fit_and_store_the_window(rt):
    s = Session("streamed", context_window=2, context_policy="summarize")
    for i in range(4):
        assert "".join(s.stream(f"My pet number {i} is a cat.")).startswith("[demo model]")
    window = s.get_state()["window"]
    assert window["summaries"] >= 1 and "pet number 0" in window["summary"]
    assert "pet number 0" in "".join(s.stream("What is my pet number 0?"))


@pytest.mark.parametrize("policy", ["drop", "summarize"])
async def test_the_window_start_moves_rarely_and_prompts_stay_within_the_limit(policy):
    from repertory.agents.model_client import ModelReply

    async def summarize(prompt):  # a stand-in model call of fixed size (the demo model's is tested above)
        return ModelReply({"role": "assistant", "content": "the user listed parcels"},
                          {"prompt_tokens": 7, "completion_tokens": 4})

    window = ContextWindow("repertory/demo", tokens=120, policy=policy, summarize=summarize)
    messages: list[dict] = []
    stored = None
    moves = 0
    for turn in range(200):
        user = {"role": "user", "content": f"Parcel {turn} went to depot {turn % 7} this morning."}
        start = stored["start"] if stored else 0
        settings = None if stored is None else {"offset": start, "summary": stored["summary"]}
        fitted = await window.fit([*messages[start:], user], settings, "You are a clerk.")
        system = "You are a clerk." + (f" Summary: {fitted.summary}" if fitted.summary else "")
        sent = window.count({"content": system}) + sum(window.count(m) for m in fitted.history)
        assert sent <= 120 + 2, (turn, sent)  # the limit (the summary's label words aside)
        assert fitted.history[-1] is user and fitted.history[0]["role"] in ("user", "assistant")
        if fitted.state is not None:
            moves += 1
            stored = fitted.state
        messages += [user, {"role": "assistant", "content": f"Noted parcel {turn}."}]
    # ~8 turns fit in 120 words; each move frees about half of them, so the start is stored
    # every few turns, never on every turn.
    assert 0 < moves <= 200 // 5, moves


def test_window_state_settings_and_ratings_read_back_on_each_store(local):
    from contract_helpers import restart_local

    s = Session("every-store", context_window=2, context_policy="summarize")
    for i in range(4):
        s.chat(f"Shelf {i} holds jars.")
    s.rate(0.6)
    before = s.get_state()
    restart_local(local)
    after = Session("every-store").get_state()
    for field in ("context", "window", "ratings"):
        assert after[field] == before[field], field
    assert after["context"] == {"messages": 2, "tokens": None, "policy": "summarize"} and after["window"]["summary"]


def test_an_agents_window_settings_are_stored_with_its_definition(rt):
    agent = Agent("Brief", max_context_tokens=60, context_policy="summarize")
    assert agent.to_dict()["context"] == {"tokens": 60, "policy": "summarize"}
    assert "context" not in Agent("Plain").to_dict()  # other definitions (and keys) unchanged
    s = Session("agent-kept", agent=agent)
    for i in range(6):
        s.chat(f"Bin {i} is blue.")
    again = Session("agent-kept")  # no agent=: the stored definition, with its window
    assert (again.agent.max_context_tokens, again.agent.context_policy) == (60, "summarize")
    again.chat("Bin 9 is red.")
    prompts = _prompts(again)
    assert all(p <= 60 for p in prompts) and again.get_state()["window"]["summaries"] >= 1
