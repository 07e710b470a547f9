"""Resumable streams (issue 15 item 3) on the local runtime, and the event-id logic under them.

A reader that stops after three chunks and resumes from the last event id gets the same text
as one that never stopped: live from the running turn, or from the stored reply once the turn
is acknowledged (after a restart too). Real SQLite and Redis.
"""

from __future__ import annotations

import asyncio

import pytest

import repertory
from contract_helpers import restart_local, wait_for
from openai_server import OpenAIServer
from repertory import Agent, InvalidInput, Session
from repertory.errors import StreamNotResumable
from repertory.streams import StreamChunk, event_id, parse_event_id, rechunk

DEMO = Agent("Demo", model=repertory.DEMO_MODEL)
LONG = "one two three four five six seven eight nine ten eleven twelve"


@pytest.fixture
def server():
    with OpenAIServer() as srv:
        yield srv


# -- plain logic ------------------------------------------------------------------------------
def test_event_ids_name_the_turn_and_the_offset():
    assert parse_event_id(event_id("a:b", 12)) == ("a:b", 12)  # a turn id may hold colons
    for bad in ("", "t1", "t1:", ":3", "t1:-1", "t1:x", 7, "t1:\u0663"):
        with pytest.raises(InvalidInput, match="not a stream event id"):
            parse_event_id(bad)


def test_rechunk_is_deterministic_and_counts_offsets():
    pieces = list(rechunk("ab cd e", 10))
    assert pieces == [("ab ", 13), ("cd ", 16), ("e", 17)]
    assert list(rechunk("", 3)) == []
    chunk = StreamChunk("ab ", "t:3")
    assert chunk == "ab " and isinstance(chunk, str) and chunk.event_id == "t:3"


# -- local runtime ------------------------------------------------------------------------------
async def _read(agen, n: int | None = None) -> list[StreamChunk]:
    """The first ``n`` chunks (all without ``n``); the stream is closed after them."""
    out: list[StreamChunk] = []
    try:
        async for chunk in agen:
            out.append(chunk)
            if n is not None and len(out) >= n:
                break
    finally:
        await agen.aclose()
    return out


async def test_chunks_carry_monotonic_event_ids(local):
    s = Session("ids", agent=DEMO)
    chunks = await _read(s.astream("My name is Alice and I like tea.", turn_id="t1"))
    assert len(chunks) > 3
    at = 0
    for c in chunks:
        at += len(c)
        assert c.event_id == f"t1:{at}"


async def test_a_stream_resumed_after_three_chunks_gives_the_same_text_live(local, server):
    server.chunk_delay = 0.05
    agent = Agent("Slow", model="openai/test-model", api_base=server.base_url, api_key="k", num_retries=0)
    whole = "".join(await _read(Session("whole", agent=agent).astream(LONG)))
    s = Session("cut", agent=agent)
    first = await _read(s.astream(LONG, turn_id="t-cut"), 3)  # the reader goes away
    rest = await _read(s.astream(LONG, resume_from=first[-1].event_id))
    assert "".join(first) + "".join(rest) == whole == f"echo: {LONG}"
    assert rest[-1].event_id == f"t-cut:{len(whole)}"
    assert len(server.requests) == 2  # the resume ran nothing: one model call per session
    restart_local(local)
    assert [m["content"] for m in Session("cut").get_history()] == [LONG, whole]


async def test_a_reader_that_leaves_does_not_cancel_the_turn(local, server):
    server.chunk_delay = 0.05
    agent = Agent("Slow", model="openai/test-model", api_base=server.base_url, api_key="k", num_retries=0)
    s = Session("left", agent=agent)
    await _read(s.astream(LONG), 2)
    await asyncio.to_thread(wait_for, lambda: len(Session("left").get_history()) == 2, what="the turn to be stored",
                            timeout=120)
    restart_local(local)
    assert Session("left").get_history()[1]["content"] == f"echo: {LONG}"


async def test_an_acknowledged_stream_is_replayed_from_the_store_after_a_restart(local):
    s = Session("stored", agent=DEMO)
    message = "Remember that the meeting moved to Thursday at noon in room four."
    chunks = await _read(s.astream(message, turn_id="t-stored"))
    whole = "".join(chunks)
    restart_local(local)
    s2 = Session("stored", agent=DEMO)
    rest = await _read(s2.astream(message, resume_from=chunks[2].event_id))
    assert "".join(chunks[:3]) + "".join(rest) == whole
    assert rest[-1].event_id == chunks[-1].event_id
    # Deterministic: the same ids on every replay, and the sync API resumes the same way.
    again = list(s2.stream(message, resume_from=chunks[2].event_id))
    assert [c.event_id for c in again] == [c.event_id for c in rest]
    assert len(s2.get_history()) == 2  # nothing ran again


async def test_resuming_a_turn_that_is_neither_running_nor_stored_says_what_to_do(local):
    s = Session("lost", agent=DEMO)
    with pytest.raises(StreamNotResumable, match="same turn id and no event id"):
        await _read(s.astream("Hello.", resume_from="never-ran:5"))
    with pytest.raises(InvalidInput, match="not turn_id"):
        await _read(s.astream("Hello.", turn_id="a", resume_from="b:3"))
    with pytest.raises(InvalidInput, match="not a stream event id"):
        await _read(s.astream("Hello.", resume_from="garbage"))
    assert not await s.aexists()  # nothing was written
