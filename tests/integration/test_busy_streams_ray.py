"""Busy-session policies and resumable streams (issue 15 items 1 and 3) on the default Ray
runtime and through the HTTP server: two callers on one session, a stream cut after three
chunks, a host killed with SIGKILL. One runtime (SQLite) and one server for the module; the
last test restarts the runtime and reads every acknowledged history back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import httpx
import pytest

import repertory
from contract_helpers import wait_for
from openai_server import OpenAIServer
from repertory import Agent, Session, tokens
from repertory.errors import SessionBusy, StreamNotResumable, TurnInterrupted
from repertory.host.busy import INTERRUPTED_MARK
from repertory.host.routing import host_index
from repertory.server import ServerConfig, serve_in_thread
from repertory.tokens import Keyring

pytestmark = pytest.mark.ray

LONG = "one two three four five six seven eight nine ten eleven twelve"
WHOLE = f"echo: {LONG}"
SECRET = "test-secret-" + "b" * 24
RING = Keyring({"k1": SECRET})
STORED: dict[str, list[str]] = {}  # session id -> the history it acknowledged, read back after the restart


@pytest.fixture(scope="module")
def model():
    with OpenAIServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def busy_rt(ray_cluster, tmp_path_factory, model):
    """The default runtime (Ray, no runtime argument) over SQLite, with an HTTP server over it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('busy') / 'state.db'}"
    namespace = f"busy{os.getpid()}-{uuid.uuid4().hex[:6]}"
    repertory.init(store=url, num_hosts=2, namespace=namespace)
    server = serve_in_thread(ServerConfig(port=0, secret_keys=RING, agents={"slow": slow_agent(model)}))
    server.restart = lambda: (repertory.shutdown(), repertory.init(store=url, num_hosts=2, namespace=namespace))
    yield server
    server.stop()
    repertory.shutdown()


@pytest.fixture(autouse=True)
def quick_model(model):
    model.delay = model.chunk_delay = 0.0
    yield


def slow_agent(model: OpenAIServer) -> Agent:
    return Agent("Slow", model="openai/test-model", api_base=model.base_url, api_key="k", num_retries=0)


def sid() -> str:
    return f"b-{uuid.uuid4().hex[:10]}"


def contents(history: list[dict]) -> list[str]:
    return [m["content"] for m in history]


async def read(agen, n: int | None = None) -> list:
    out: list = []
    try:
        async for chunk in agen:
            out.append(chunk)
            if n is not None and len(out) >= n:
                break
    finally:
        await agen.aclose()
    return out


def requests_for(model: OpenAIServer, text: str) -> int:
    """Model calls for the user message ``text`` (the last message of their prompt)."""
    return sum(1 for r in list(model.requests) if (r.get("messages") or [{}])[-1].get("content") == text)


# -- the four policies, two callers each, on Ray ------------------------------------------------
async def test_enqueue_and_reject_on_ray(busy_rt, model):
    model.delay = 1.5
    s = Session(sid(), agent=slow_agent(model))
    first = asyncio.ensure_future(s.achat("m1"))
    await asyncio.to_thread(wait_for, lambda: requests_for(model, "m1") >= 1, what="m1's model call", timeout=120)
    with pytest.raises(SessionBusy):
        await s.achat("m2", on_busy="reject")
    assert not first.done()
    model.delay = 0.0
    assert await s.achat("m3") == "echo: m3"  # enqueue (the default): after m1
    assert await first == "echo: m1"
    STORED[s.session_id] = contents(await s.aget_history())
    assert STORED[s.session_id] == ["m1", "echo: m1", "m3", "echo: m3"]


async def test_interrupt_on_ray_cancels_the_agent_actors_model_call(busy_rt, model):
    model.chunk_delay = 0.3  # ~4 s for the whole answer: the interrupt lands well before its end
    s = Session(sid(), agent=slow_agent(model), on_busy="interrupt")
    aborted = model.aborted_streams
    received: list[str] = []

    async def first() -> None:
        async for chunk in s.astream(LONG, turn_id=f"{s.session_id}-t1"):
            received.append(chunk)

    task = asyncio.ensure_future(first())
    await asyncio.to_thread(wait_for, lambda: len(received) >= 3, what="three chunks", timeout=120)
    assert await s.achat("m2") == "echo: m2"
    with pytest.raises(TurnInterrupted):
        await task
    # The AgentActor's call was cancelled: it hung up on the model server mid-answer.
    await asyncio.to_thread(wait_for, lambda: model.aborted_streams > aborted, what="the model call to stop",
                            timeout=120)
    history = await s.aget_history()
    assert history[1]["interrupted"] is True and history[1]["content"].endswith(INTERRUPTED_MARK)
    assert contents(history)[::2] == [LONG, "m2"] and history[3]["content"] == "echo: m2"
    with pytest.raises(TurnInterrupted):  # a resend never runs it
        await s.achat(LONG, turn_id=f"{s.session_id}-t1")
    STORED[s.session_id] = contents(history)


async def test_rollback_on_ray_leaves_no_trace_of_the_cancelled_turn(busy_rt, model):
    model.delay = 3.0  # the rollback lands well within it
    s = Session(sid(), agent=slow_agent(model))
    first = asyncio.ensure_future(s.achat("r1", turn_id=f"{s.session_id}-t1"))
    await asyncio.to_thread(wait_for, lambda: requests_for(model, "r1") >= 1, what="r1's model call", timeout=120)
    model.delay = 0.0
    assert await s.achat("m2", on_busy="rollback") == "echo: m2"
    with pytest.raises(TurnInterrupted, match="rolled back"):
        await first
    STORED[s.session_id] = contents(await s.aget_history())
    assert STORED[s.session_id] == ["m2", "echo: m2"]


# -- resumable streams on Ray --------------------------------------------------------------------
async def test_stream_resumed_after_three_chunks_on_ray(busy_rt, model):
    model.chunk_delay = 0.05
    s = Session(sid(), agent=slow_agent(model))
    calls = requests_for(model, LONG)
    first = await read(s.astream(LONG, turn_id=f"{s.session_id}-t"), 3)
    rest = await read(s.astream(LONG, resume_from=first[-1].event_id))
    assert "".join(first + rest) == WHOLE
    assert requests_for(model, LONG) == calls + 1  # the resume called no model
    STORED[s.session_id] = [LONG, WHOLE]
    assert contents(await s.aget_history()) == STORED[s.session_id]


def _kill_host(session_id: str) -> None:
    rt = repertory.get_runtime()
    idx = host_index(session_id, rt.num_hosts)
    os.kill({st["host"]: st["pid"] for st in rt.stats()}[f"host-{idx}"], signal.SIGKILL)


async def test_acknowledged_stream_is_replayed_after_its_host_is_killed(busy_rt, model):
    s = Session(sid(), agent=slow_agent(model))
    calls = requests_for(model, LONG)
    chunks = await read(s.astream(LONG, turn_id=f"{s.session_id}-t"))
    assert "".join(chunks) == WHOLE
    await asyncio.to_thread(_kill_host, s.session_id)
    rest = await read(s.astream(LONG, resume_from=chunks[2].event_id))
    assert "".join(chunks[:3] + rest) == WHOLE
    assert rest[-1].event_id == chunks[-1].event_id
    assert requests_for(model, LONG) == calls + 1
    STORED[s.session_id] = [LONG, WHOLE]


async def test_a_stream_whose_host_dies_before_the_ack_is_run_again_on_resend(busy_rt, model):
    model.chunk_delay = 0.3
    s = Session(sid(), agent=slow_agent(model))
    turn_id = f"{s.session_id}-t"
    first = await read(s.astream(LONG, turn_id=turn_id), 2)
    await asyncio.to_thread(_kill_host, s.session_id)  # the turn was not written yet
    model.chunk_delay = 0.0
    with pytest.raises(StreamNotResumable):
        await read(s.astream(LONG, resume_from=first[-1].event_id))
    assert "".join(await read(s.astream(LONG, turn_id=turn_id))) == WHOLE
    STORED[s.session_id] = [LONG, WHOLE]
    assert contents(await s.aget_history()) == STORED[s.session_id]


# -- through the HTTP server ---------------------------------------------------------------------
def remote(server, session_id: str, **kw) -> Session:
    return Session(agent_url=server.url, session_id=session_id,
                   token=tokens.issue(session_id, secret=RING), **kw)


async def test_policies_through_the_server(busy_rt, model):
    session_id = sid()
    a, b = remote(busy_rt, session_id), remote(busy_rt, session_id, on_busy="reject")
    model.chunk_delay = 0.3
    received: list[str] = []

    async def first() -> None:
        async for chunk in a.astream(LONG):
            received.append(chunk)

    task = asyncio.ensure_future(first())
    await asyncio.to_thread(wait_for, lambda: len(received) >= 3, what="three chunks over SSE", timeout=120)
    with pytest.raises(SessionBusy):  # HTTP 409 with code SessionBusy
        await b.achat("m2")
    assert await b.achat("m3", on_busy="interrupt") == "echo: m3"
    with pytest.raises(TurnInterrupted):  # an SSE error event
        await task
    history = await a.aget_history()
    assert history[1]["interrupted"] is True and contents(history)[2:] == ["m3", "echo: m3"]
    STORED[session_id] = contents(history)
    await a.aclose()
    await b.aclose()


async def test_sse_carries_event_ids_and_honours_last_event_id(busy_rt, model):
    session_id = sid()
    token = tokens.issue(session_id, secret=RING)
    body = {"message": LONG, "turn_id": f"{session_id}-t"}
    async with httpx.AsyncClient(base_url=busy_rt.url, headers={"Authorization": f"Bearer {token}"}) as http:
        whole = (await http.post(f"/sessions/{session_id}/stream", json=body)).text
        ids = [line[4:] for line in whole.splitlines() if line.startswith("id: ")]
        assert ids[0] == f"{session_id}-t:6" and ids[-1] == f"{session_id}-t:{len(WHOLE)}"
        resumed = await http.post(f"/sessions/{session_id}/stream", json=body, headers={"Last-Event-ID": ids[2]})
        assert resumed.status_code == 200
        assert f"id: {ids[3]}\n" in resumed.text and f"id: {ids[2]}\n" not in resumed.text
    s = remote(busy_rt, session_id)
    rest = await read(s.astream(LONG, resume_from=ids[2]))
    assert "".join(rest) == WHOLE[len("echo: one two "):] and rest[-1].event_id == ids[-1]
    await s.aclose()
    STORED[session_id] = [LONG, WHOLE]


# -- everything acknowledged reads back after a restart -----------------------------------------
def test_every_history_reads_back_after_a_restart(busy_rt):
    assert STORED, "run with the tests above"
    busy_rt.restart()
    for session_id, history in STORED.items():
        assert contents(Session(session_id).get_history()) == history, session_id
