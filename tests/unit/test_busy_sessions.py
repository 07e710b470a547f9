"""Busy-session policies (issue 15 item 1) on the local runtime, and the plain logic under them.

Two callers on one session: the first turn is slow (the local OpenAI-compatible server waits
before its answer, or between the chunks of a streamed one), the second arrives while it runs.
Real SQLite and Redis; each value acknowledged is read back after a restart.
"""

from __future__ import annotations

import asyncio

import pytest

import repertory
from contract_helpers import restart_local, wait_for
from openai_server import OpenAIServer
from repertory import Agent, InvalidInput, Session
from repertory.errors import SessionBusy, TurnInterrupted
from repertory.host.busy import INTERRUPTED_MARK, RunningTurn, check_on_busy, interrupted_reply

LONG = "one two three four five six seven eight nine ten eleven twelve"


@pytest.fixture
def server():
    with OpenAIServer() as srv:
        yield srv


def slow_agent(server: OpenAIServer) -> Agent:
    return Agent("Slow", model="openai/test-model", api_base=server.base_url, api_key="k", num_retries=0)


def contents(history: list[dict]) -> list[str]:
    return [m["content"] for m in history]


# -- plain logic ------------------------------------------------------------------------------
def test_on_busy_values_are_checked():
    assert check_on_busy("rollback") == "rollback"
    with pytest.raises(InvalidInput, match="on_busy must be one of"):
        check_on_busy("drop")


def test_interrupted_reply_marks_the_partial_text():
    msg = interrupted_reply("Hello wor", 1.0)
    assert msg == {"role": "assistant", "content": f"Hello wor {INTERRUPTED_MARK}", "interrupted": True,
                   "timestamp": 1.0}
    assert interrupted_reply("", 1.0)["content"] == INTERRUPTED_MARK


async def test_a_running_turn_is_cancelled_until_its_model_call_finished():
    turn = RunningTurn("t1", "hi")
    assert turn.cancel("rollback") is True and turn.cancelled == "rollback"
    assert turn.cancel("interrupt") is True and turn.cancelled == "rollback"  # the first policy stays
    late = RunningTurn("t2", "hi")
    late.phase = "committing"
    assert late.cancel("interrupt") is False and late.cancelled is None


async def test_followers_read_the_reply_from_any_offset_live():
    turn = RunningTurn("t1", "hi")
    turn.add("Hello ")
    got: list[tuple[str, int]] = []

    async def follow(offset: int) -> None:
        async for item in turn.follow(offset):
            got.append(item)

    task = asyncio.ensure_future(follow(3))
    await asyncio.sleep(0)
    turn.add("world")
    turn.finish("reply")
    await task
    assert got == [("lo ", 6), ("world", 11)]  # from inside the first chunk, then live
    assert turn.outcome() == "reply"


# -- two callers on one session (local runtime; SQLite and Redis) -------------------------------
async def test_enqueue_runs_both_turns_in_arrival_order(local, server):
    server.delay = 0.3
    s = Session("enq", agent=slow_agent(server))
    first = asyncio.ensure_future(s.achat("m1"))
    await asyncio.to_thread(wait_for, lambda: len(server.requests) >= 1, what="m1's model call", timeout=120)
    assert await s.achat("m2", on_busy="enqueue") == "echo: m2"
    assert await first == "echo: m1"
    assert contents(await s.aget_history()) == ["m1", "echo: m1", "m2", "echo: m2"]


async def test_reject_raises_session_busy_at_once_and_writes_nothing(local, server):
    s = Session("rej", agent=slow_agent(server), on_busy="reject")
    assert await s.achat("m0") == "echo: m0"  # an idle session is not busy
    server.delay = 2.0
    first = asyncio.ensure_future(s.achat("m1"))
    await asyncio.to_thread(wait_for, lambda: len(server.requests) >= 2, what="m1's model call", timeout=120)
    with pytest.raises(SessionBusy, match="processing another message"):
        await s.achat("m2")
    assert not first.done()  # refused at once, while m1 still runs
    assert await first == "echo: m1"
    assert len(server.requests) == 2
    restart_local(local)
    assert contents(Session("rej").get_history()) == ["m0", "echo: m0", "m1", "echo: m1"]


async def test_interrupt_records_the_partial_turn_and_runs_the_new_message_after_it(local, server):
    server.chunk_delay = 0.3  # ~4 s for the whole answer: the interrupt lands well before its end
    s = Session("intr", agent=slow_agent(server))
    received: list[str] = []

    async def read_stream() -> None:
        async for chunk in s.astream(LONG, turn_id="t-first"):
            received.append(chunk)

    first = asyncio.ensure_future(read_stream())
    await asyncio.to_thread(wait_for, lambda: len(received) >= 3, what="three chunks of the first turn", timeout=120)
    assert await s.achat("m2", on_busy="interrupt") == "echo: m2"
    with pytest.raises(TurnInterrupted, match="interrupted by a later message"):
        await first
    # The model call stopped: the client hung up on the model server mid-answer.
    await asyncio.to_thread(wait_for, lambda: server.aborted_streams >= 1, what="the model call to stop", timeout=120)
    history = await s.aget_history()
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    partial = history[1]
    assert partial["interrupted"] is True and partial["content"].endswith(INTERRUPTED_MARK)
    streamed = partial["content"].removesuffix(INTERRUPTED_MARK).rstrip()
    assert "".join(received).startswith(streamed) or streamed.startswith("".join(received).rstrip())
    assert len(streamed) < len("echo: " + LONG)  # the model call stopped before the end
    # The new message's prompt held the interrupted turn, marker included.
    prompt = server.requests[-1]["messages"]
    assert [m["content"] for m in prompt[-3:]] == [LONG, partial["content"], "m2"]
    # A resend of the interrupted turn answers the same error; it never runs again.
    with pytest.raises(TurnInterrupted):
        await s.achat(LONG, turn_id="t-first")
    assert len(server.requests) == 2
    restart_local(local)
    assert Session("intr").get_history() == history


async def test_rollback_removes_the_running_turn_entirely(local, server):
    s = Session("roll", agent=slow_agent(server))
    assert await s.achat("m0") == "echo: m0"
    server.delay = 2.0  # the rollback lands well within it
    first = asyncio.ensure_future(s.achat("m1", turn_id="t-roll"))
    await asyncio.to_thread(wait_for, lambda: len(server.requests) >= 2, what="m1's model call", timeout=120)
    server.delay = 0.0
    assert await s.achat("m2", on_busy="rollback") == "echo: m2"
    with pytest.raises(TurnInterrupted, match="rolled back"):
        await first
    assert contents(await s.aget_history()) == ["m0", "echo: m0", "m2", "echo: m2"]
    assert [m["content"] for m in server.requests[-1]["messages"]][-3:] == ["m0", "echo: m0", "m2"]
    with pytest.raises(TurnInterrupted):
        await s.achat("m1", turn_id="t-roll")
    restart_local(local)
    s2 = Session("roll")
    assert contents(s2.get_history()) == ["m0", "echo: m0", "m2", "echo: m2"]
    with pytest.raises(TurnInterrupted):  # the record of the cancelled id survives the restart
        s2.chat("m1", turn_id="t-roll")


async def test_interrupt_also_cancels_turns_waiting_behind_the_running_one(local, server):
    server.delay = 3.0  # m2 queues and m3 arrives well within it
    s = Session("queue", agent=slow_agent(server))
    first = asyncio.ensure_future(s.achat("m1"))
    await asyncio.to_thread(wait_for, lambda: len(server.requests) >= 1, what="m1's model call", timeout=120)
    second = asyncio.ensure_future(s.achat("m2"))  # waits behind m1
    await asyncio.to_thread(wait_for, lambda: repertory.get_runtime().stats()[0]["turns_in_mailboxes"] == 2,
                            what="m2 to wait in the mailbox", timeout=120)
    server.delay = 0.0
    assert await s.achat("m3", on_busy="interrupt") == "echo: m3"
    for turn in (first, second):
        with pytest.raises(TurnInterrupted):
            await turn
    assert contents(await s.aget_history()) == ["m1", INTERRUPTED_MARK, "m2", INTERRUPTED_MARK, "m3", "echo: m3"]
    assert len(server.requests) == 2  # m2 never called the model


def test_bad_on_busy_is_refused_before_anything_is_sent(local):
    with pytest.raises(InvalidInput, match="on_busy"):
        Session("bad", agent=Agent("Demo", model=repertory.DEMO_MODEL), on_busy="later")
    s = Session("bad", agent=Agent("Demo", model=repertory.DEMO_MODEL))
    with pytest.raises(InvalidInput, match="on_busy"):
        s.chat("hi", on_busy="later")
    with pytest.raises(InvalidInput, match="on_busy"):
        s.on_busy = "later"
    assert s.on_busy == "enqueue"
    assert not s.exists()
