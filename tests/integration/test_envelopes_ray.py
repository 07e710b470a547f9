"""Envelopes on the default Ray runtime: a gather of many sessions' turns travels in envelopes,
every reply reaches its own caller, every history is exact, and a host killed while envelopes
are in flight loses no turn and applies none twice."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from repertory import Agent, Session
from repertory.host.routing import host_index

pytestmark = pytest.mark.ray


async def test_gather_of_many_sessions_in_envelopes(runtime):
    agent = Agent("Demo", model="repertory/demo")
    names = [f"Zed{i:03d}q" for i in range(120)]
    sessions = [Session(session_id=f"env-{i}", agent=agent, runtime=runtime) for i in range(len(names))]
    await sessions[0].achat("warm up")  # agent actors started outside the gather
    before = runtime._envelopes.enveloped

    await asyncio.gather(*(s.achat(f"My name is {n}") for s, n in zip(sessions[1:], names[1:])))
    replies = await asyncio.gather(*(s.achat("What's my name?") for s in sessions[1:]))

    # Each reply came back to its own caller: the demo model quotes the name told to its session.
    for reply, name in zip(replies, names[1:]):
        assert name in reply and all(other not in reply for other in names[1:] if other != name)
    histories = await asyncio.gather(*(s.aget_history() for s in sessions[1:]))
    for history, name in zip(histories, names[1:]):
        assert [m["role"] for m in history] == ["user", "assistant"] * 2
        assert [m["content"] for m in history if m["role"] == "user"] == [f"My name is {name}", "What's my name?"]
    assert runtime._envelopes.enveloped - before > len(names)  # most of the 238 turns travelled in envelopes


async def _rounds(sessions, rounds, answered):
    for r in range(rounds):
        replies = await asyncio.gather(*(s.achat(f"{s.session_id} turn {r}") for s in sessions))
        assert all(replies)
        answered.append(r)


async def test_host_killed_mid_envelope_every_turn_answered_once(runtime):
    agent = Agent("Null", model="repertory/null")
    ids = [f"kill-{i}" for i in range(400)]
    ids = [k for k in ids if host_index(k, runtime.num_hosts) == 0][:60]  # all on host-0
    sessions = [Session(session_id=k, agent=agent, runtime=runtime) for k in ids]
    rounds, answered = 30, []
    worker = asyncio.ensure_future(_rounds(sessions, rounds, answered))

    kills, mid_envelope = 0, 0
    deadline = time.monotonic() + 120
    while kills < 2 and not worker.done():
        assert time.monotonic() < deadline, f"no progress ({len(answered)} rounds answered)"
        if len(answered) < 3 + 8 * kills:  # let the restarted host take turns again first
            await asyncio.sleep(0.005)
            continue
        pid = {st["host"]: st["pid"] for st in await asyncio.to_thread(runtime.stats)}["host-0"]
        while not runtime._envelopes.sending and not worker.done():
            await asyncio.sleep(0)
        mid_envelope += bool(runtime._envelopes.sending)
        os.kill(pid, signal.SIGKILL)
        kills += 1
    await asyncio.wait_for(worker, 180)

    assert kills == 2 and mid_envelope >= 1 and answered == list(range(rounds))
    histories = await asyncio.gather(*(s.aget_history() for s in sessions))
    for sid, history in zip(ids, histories):
        # every turn once, in order, each answered: nothing lost, nothing applied twice
        assert [m["content"] for m in history if m["role"] == "user"] == [f"{sid} turn {r}" for r in range(rounds)]
        assert [m["role"] for m in history] == ["user", "assistant"] * rounds
