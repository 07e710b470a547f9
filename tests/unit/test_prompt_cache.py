"""A session's next turn decodes only its new messages (agents.prompt_cache; issue 12, item 2).

Counted, not timed: the messages decoded per turn, at 100 and at 1,000 stored messages; the
decoded history always equal to a fresh decode of the same bytes, whatever happens to the
histories between turns (a property test); and the shared decoded messages unchanged by turns
that call tools.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repertory.agents.agent import Agent
from repertory.agents.prompt_cache import PromptCache
from repertory.config import Settings
from repertory.errors import CorruptState
from repertory.host.api import TurnRequest
from repertory.host.core import HostCore
from repertory.ids import SessionRef
from repertory.runtimes.local import LocalAgentPool
from repertory.stores import SQLiteStore
from repertory.stores.codec import MsgpackCodec, array_head, pack_array, unpack_array

_codec = MsgpackCodec()


def _msg(i: int, tag: str = "a") -> bytes:
    role = "user" if i % 2 == 0 else "assistant"
    return _codec.encode({"role": role, "content": f"{tag} message {i} " + "x" * 150, "timestamp": 1e9 + i})


def _history(n: int, tag: str = "a") -> list[bytes]:
    return [_msg(i, tag) for i in range(n)]


def test_a_grown_history_decodes_only_its_new_messages():
    cache = PromptCache()
    h = _history(400)
    assert cache.decode(pack_array(h)) == unpack_array(pack_array(h))
    assert cache.decoded == 400
    h += [_msg(400), _msg(401), _msg(402)]
    assert cache.decode(pack_array(h)) == unpack_array(pack_array(h))
    assert cache.decoded == 403 and cache.hits == 1


def test_a_changed_or_cut_history_is_decoded_whole():
    cache = PromptCache()
    h = _history(400)
    cache.decode(pack_array(h))
    edited = [*h[:200], _msg(200, "edited"), *h[201:]]
    assert cache.decode(pack_array(edited)) == unpack_array(pack_array(edited))
    cut = h[50:]  # a window that moved: another first message, another entry
    assert cache.decode(pack_array(cut)) == unpack_array(pack_array(cut))
    shorter = h[:300]
    assert cache.decode(pack_array(shorter)) == unpack_array(pack_array(shorter))
    assert cache.hits == 0


def test_two_sessions_that_begin_alike_never_mix():
    cache = PromptCache()
    common = _history(300)
    a, b = [*common, _msg(300, "a")], [*common, _msg(300, "b"), _msg(301, "b")]
    for h in (a, b, a, b, [*a, _msg(301, "a")]):
        assert cache.decode(pack_array(h)) == unpack_array(pack_array(h))


def test_kept_bytes_are_bounded_and_short_histories_not_kept():
    cache = PromptCache(max_bytes=200_000)
    for s in range(10):
        cache.decode(pack_array(_history(300, f"s{s}")))  # ~55 KB each
    assert cache._size <= 200_000 and len(cache) == 3
    cache.decode(pack_array(_history(10, "short")))
    assert len(cache) == 3


def test_the_callers_list_is_its_own():
    cache = PromptCache()
    h = _history(300)
    first = cache.decode(pack_array(h))
    first.append({"role": "user", "content": "appended by a caller"})
    assert cache.decode(pack_array([*h, _msg(300)])) == unpack_array(pack_array([*h, _msg(300)]))


def test_corrupt_new_messages_raise_corrupt_state():
    cache = PromptCache()
    h = _history(300)
    cache.decode(pack_array(h))
    with pytest.raises(CorruptState):
        cache.decode(pack_array(h) [:1] + b"\xdc\x01\x2d" + pack_array(h)[3:] + b"\xc1")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["append", "pop", "edit", "cut", "other"]), st.integers(1, 40)),
                min_size=1, max_size=25))
def test_decode_always_equals_a_fresh_decode(steps):
    cache = PromptCache(max_bytes=150_000, min_bytes=2_000)
    sessions = {"a": _history(120, "a"), "b": _history(120, "a")}  # b begins as a does
    made = 0
    for i, (op, k) in enumerate(steps):
        name = "ab"[i % 2]
        h = sessions[name]
        if op == "append":
            h += [_msg(len(h) + j, name) for j in range(k)]
        elif op == "pop":
            del h[max(1, len(h) - k):]
        elif op == "edit" and h:
            h[k % len(h)] = _msg(made, f"edit{made}")
            made += 1
        elif op == "cut":
            del h[:k]
        blob = pack_array(h)
        assert cache.decode(blob) == unpack_array(blob)
        assert cache._size <= cache.max_bytes


async def _decoded_in_one_turn(tmp_path, n: int, model: str = "repertory/null") -> int:
    """Messages decoded by the agent during one turn of a session holding ``n`` messages,
    after two turns (the host keeps the history packed, under a lineage, from the second)."""
    store = SQLiteStore(tmp_path / f"p{n}.db")
    agent = Agent("Lean", "You are terse.", model=model)
    pool = LocalAgentPool()
    pool.add(agent)
    host = HostCore(store, pool, Settings(store=f"sqlite:///{tmp_path}/p{n}.db"))
    ref = SessionRef(f"prompt-{n}")
    await host.set_history(ref, [unpack_array(pack_array([m]))[0] for m in _history(n)])

    def ask(text: str) -> TurnRequest:
        return TurnRequest(ref=ref, agent_key=agent.key, content=text, turn_id=uuid.uuid4().hex)

    await host.turn(ask("first"))
    await host.turn(ask("second"))
    cache = pool.cores[agent.key].prompts
    before = cache.decoded
    await host.turn(ask("third"))
    after = cache.decoded
    await host.close()
    await store.close()
    return after - before


@pytest.mark.parametrize("model", ["repertory/null", "repertory/demo"])
async def test_a_turn_decodes_as_many_messages_at_1000_as_at_100(tmp_path, model):
    short = await _decoded_in_one_turn(tmp_path, 100, model)
    long = await _decoded_in_one_turn(tmp_path, 1000, model)
    assert short == long == 2  # the last turn's question and reply (stored since)


def city_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


async def test_turns_with_tool_calls_through_litellm_leave_the_kept_messages_as_stored(tmp_path):
    # The decoded messages are shared by a session's turns: litellm and the tool loop must not
    # change them (to_openai copies what it hands the client, tool calls included).
    from openai_server import OpenAIServer

    with OpenAIServer() as srv:
        agent = Agent("Tools", "Use the tool.", model="openai/test-model", tools=[city_weather],
                      api_base=srv.base_url, api_key="sk-test")
        store = SQLiteStore(tmp_path / "tools.db")
        pool = LocalAgentPool()
        pool.add(agent)
        host = HostCore(store, pool, Settings(store=f"sqlite:///{tmp_path}/tools.db"))
        ref = SessionRef("prompt-tools")
        await host.set_history(ref, [unpack_array(pack_array([m]))[0] for m in _history(150)])
        cache = pool.cores[agent.key].prompts
        for i in range(4):
            reply = await host.turn(TurnRequest(ref=ref, agent_key=agent.key, content=f"weather {i}?",
                                                turn_id=uuid.uuid4().hex))
            assert reply.content == "The tool said: sunny in Paris"
            for body, n, msgs in cache._kept.values():
                assert msgs == unpack_array(array_head(n) + body)
            for lineage, (n, size, msgs) in cache._decoded.items():
                assert msgs == unpack_array(array_head(n) + cache._lineages[lineage][1][:size])
        # the first turn's prompt was sent whole, the second started the lineage, the next two
        # extended it
        assert cache.extended == 2 and len(cache._decoded) == 1
        history = await host.get_history(ref)
        # the first turn called the tool; the next three sent its call and result to the model
        assert sum(bool(m.get("tool_calls")) for m in history) == 1
        assert sum(m["role"] == "tool" for m in history) == 1
        await host.close()
        await store.close()
