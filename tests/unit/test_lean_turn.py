"""A turn's work does not grow with the history beyond what the model reads (issue 12, item 2).

Counted, not timed: how many texts the demo model (and its word-counting window) analyses in
one turn, at a history of 10 and of 1,000 messages; and whether litellm copies the prompt
for its logging after each call.
"""

import uuid

import pytest

from repertory.agents import demo_model
from repertory.agents.agent import Agent
from repertory.agents.model_client import load_litellm
from repertory.config import Settings
from repertory.host.api import TurnRequest
from repertory.host.core import HostCore
from repertory.ids import SessionRef
from repertory.runtimes.local import LocalAgentPool
from repertory.stores import SQLiteStore


def _history(n: int, tag: str) -> list[dict]:
    out = []
    for i in range(n // 2):
        out += [{"role": "user", "content": f"Note {tag} {i}: the {tag} report says light rain at {i}."},
                {"role": "assistant", "content": f"[demo model] Noted {tag} {i}."}]
    return out


async def _session(tmp_path, tag: str, n: int, model: str):
    """A host over a fresh SQLite file, one agent in-process, a session holding ``n`` messages,
    and ``ask(text)``: a turn request for it."""
    store = SQLiteStore(tmp_path / f"{tag}.db")
    agent = Agent("Lean", "You are terse.", model=model)
    pool = LocalAgentPool()
    pool.add(agent)
    host = HostCore(store, pool, Settings(store=f"sqlite:///{tmp_path / tag}.db", idle_timeout=0))
    ref = SessionRef(f"lean-{tag}")
    await host.set_history(ref, _history(n, tag))

    def ask(text: str) -> TurnRequest:
        return TurnRequest(ref=ref, agent_key=agent.key, content=text, turn_id=uuid.uuid4().hex)

    return store, pool, host, agent, ref, ask


async def _words_in_one_turn(tmp_path, n: int, monkeypatch) -> tuple[int, str]:
    """Texts split into words during one question turn of a session holding ``n`` messages,
    after a first turn (which reads every message once)."""
    tag = f"h{n}"
    store, _, host, _, _, ask = await _session(tmp_path, tag, n, "repertory/demo")
    for cached in (demo_model.word_count, getattr(demo_model, "_statements", None)):
        getattr(cached, "cache_clear", lambda: None)()  # each session starts with nothing analysed

    await host.turn(ask(f"What does the {tag} report say about rain?"))
    calls = 0
    words = demo_model._words

    def counted(text: str) -> list[str]:
        nonlocal calls
        calls += 1
        return words(text)

    monkeypatch.setattr(demo_model, "_words", counted)
    reply = await host.turn(ask("What did the report say at 3?"))
    monkeypatch.setattr(demo_model, "_words", words)
    await host.close()
    await store.close()
    return calls, reply.content


async def test_demo_turn_reads_old_messages_once(tmp_path, monkeypatch):
    short, short_reply = await _words_in_one_turn(tmp_path, 10, monkeypatch)
    long, long_reply = await _words_in_one_turn(tmp_path, 1000, monkeypatch)
    # The answer still comes from the whole history (a statement among the first ones) ...
    assert "at 3." in long_reply and "at 3." in short_reply
    # ... but only this turn's new texts are split into words: as many at 1,000 messages as at 10.
    assert long == short
    assert long < 20


async def test_litellm_does_not_copy_the_prompt_for_logging():
    load_litellm()
    from litellm.litellm_core_utils import logging_utils

    prompt = [{"role": "user", "content": f"message {i} " * 40} for i in range(2000)]
    # litellm walks and copies the whole prompt here after every call unless told not to.
    assert await logging_utils.truncate_base64_in_messages_async(prompt) is prompt


@pytest.mark.parametrize("n", [10, 1000])
def test_statements_keep_their_order_and_keywords(n):
    msgs = _history(n, "x") + [{"role": "user", "content": "What did the x report say at 1?"}]
    assert "at 1." in demo_model.demo_answer(msgs).text


async def _blobs_packed_in_one_turn(tmp_path, n: int, monkeypatch) -> tuple[int, int]:
    """Stored messages the host repacks for the prompt of one turn of a session holding ``n``
    messages, after two turns (the packed history is kept from the second), and messages the
    agent decodes for it."""
    from repertory.state import session_state

    store, pool, host, agent, _, ask = await _session(tmp_path, f"p{n}", n, "repertory/null")
    await host.turn(ask("first"))
    await host.turn(ask("second"))
    packed = 0
    for name in ("pack_array", "strip_headers"):
        real = getattr(session_state, name, None)
        if real is None:
            continue

        def counted(blobs, real=real):
            nonlocal packed
            packed += len(blobs)
            return real(blobs)

        monkeypatch.setattr(session_state, name, counted)
    prompts = pool.cores[agent.key].prompts
    decoded = prompts.decoded
    await host.turn(ask("third"))
    monkeypatch.undo()
    await host.close()
    await store.close()
    return packed, prompts.decoded - decoded


async def test_the_host_packs_only_what_the_history_gained(tmp_path, monkeypatch):
    # The prompt is the whole history, but the host repacks only the messages added since its
    # last turn (the last exchange and the new message; the repair check reads the last one):
    # as many at 2,000 messages as at 500. Short histories (a few KB) are repacked whole.
    # The agent, in this process, decodes only those two and the turn's own message.
    assert await _blobs_packed_in_one_turn(tmp_path, 2000, monkeypatch) == \
        await _blobs_packed_in_one_turn(tmp_path, 500, monkeypatch) == (4, 2)
