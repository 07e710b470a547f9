"""The core runtime on real Ray and a real SQLite file."""

import asyncio
import threading

import pytest
import ray

import repertory
from repertory import Agent, EmptyMessage, InvalidSessionId, MessageTooLarge, Session

pytestmark = pytest.mark.ray


def test_seed_basic_usage_and_restart(runtime, tmp_path):
    agent = Agent(name="Assistant", instructions="You are a helpful assistant with memory")
    session = Session(session_id="alice-1", agent=agent)
    session.chat("My name is Alice")
    assert "Alice" in session.chat("What's my name?")
    again = Session(session_id="alice-1", agent=agent)
    assert len(again.get_history()) == 4
    repertory.shutdown()
    repertory.init(store=runtime.settings.store, num_hosts=3, namespace=runtime.settings.namespace)
    after = Session(session_id="alice-1", agent=agent)
    assert "Alice" in after.chat("Do you remember my name?")
    assert len(after.get_history()) == 6


def test_user_scoped_sessions_do_not_collide(runtime):
    a = Session(session_id="same", user_id="alice")
    b = Session(session_id="same", user_id="bob")
    a.chat("My name is Alice")
    b.chat("My name is Bob")
    assert "Alice" in a.chat("What's my name?") and "Bob" not in a.chat("What's my name?")
    assert len(b.get_history()) == 2


async def test_100_concurrent_chats_on_one_session(runtime):
    s = Session(session_id="busy")
    results: list[str] = []

    async def sender(i):
        results.append(await s.achat(f"message {i}"))

    def thread_sender(start):
        for i in range(start, start + 10):
            results.append(s.chat(f"message {i}"))

    threads = [threading.Thread(target=thread_sender, args=(t,)) for t in (80, 90)]
    for t in threads:
        t.start()
    await asyncio.gather(*[sender(i) for i in range(80)])
    await asyncio.to_thread(lambda: [t.join() for t in threads])
    hist = await s.aget_history()
    assert len(hist) == 200
    users = [m for m in hist[0::2]]
    replies = [m for m in hist[1::2]]
    assert all(u["role"] == "user" for u in users) and all(r["role"] == "assistant" for r in replies)
    for u, r in zip(users, replies):
        assert u["content"] in r["content"]  # each reply follows its own message
    assert sorted(u["content"] for u in users) == sorted(f"message {i}" for i in range(100))


async def test_200_sessions_across_hosts_with_passivation(runtime):
    sessions = [Session(session_id=f"many-{i}") for i in range(200)]
    for rnd in range(3):
        await asyncio.gather(*[s.achat(f"round {rnd} for {s.session_id}") for s in sessions])
    stats = runtime.stats()
    assert all(st["resident"] <= 50 for st in stats)
    assert sum(st["passivations"] for st in stats) > 0
    assert sum(1 for st in stats if st["activations"] > 0) == 2  # both hosts used
    histories = await asyncio.gather(*[s.aget_history() for s in sessions])
    for s, h in zip(sessions, histories):
        assert [m["content"] for m in h[0::2]] == [f"round {r} for {s.session_id}" for r in range(3)]


def test_killed_host_comes_back_with_full_history(runtime):
    s = Session(session_id="survivor")
    s.chat("My name is Alice")
    stats_before = {st["host"]: st["pid"] for st in runtime.stats()}
    from repertory.host.routing import host_index

    idx = host_index("survivor", runtime.num_hosts)
    ray.kill(runtime.hosts[idx], no_restart=False)
    assert "Alice" in s.chat("What's my name?")
    assert len(s.get_history()) == 4
    stats_after = {st["host"]: st["pid"] for st in runtime.stats()}
    assert stats_after[f"host-{idx}"] != stats_before[f"host-{idx}"]


def test_dedicated_placement(runtime):
    s = Session(session_id="vip", placement="dedicated")
    s.chat("My name is Alice")
    assert "Alice" in s.chat("What's my name?")
    assert any(st["host"].startswith("session-") for st in runtime.stats())
    assert len(Session(session_id="vip", placement="dedicated").get_history()) == 4
    # The state is in the store, so the shared hosts see the same session.
    assert len(Session(session_id="vip").get_history()) == 4


async def test_dedicated_placement_concurrent(runtime):
    s = Session(session_id="vip-busy", placement="dedicated")
    await asyncio.gather(*[s.achat(f"m{i}") for i in range(30)])
    hist = await s.aget_history()
    assert len(hist) == 60 and all(r["content"].endswith(f"\u201c{u['content']}\u201d.")
                                   for u, r in zip(hist[0::2], hist[1::2]))


def test_streaming_matches_stored_reply(runtime):
    s = Session(session_id="streamer")
    s.chat("My name is Alice")
    chunks = list(s.stream("What's my name?"))
    assert len(chunks) > 3
    assert "".join(chunks) == s.get_history()[-1]["content"]


async def test_async_streaming(runtime):
    s = Session(session_id="astreamer")
    chunks = [c async for c in s.astream("Hello there friend")]
    assert "".join(chunks) == (await s.aget_history())[-1]["content"]


def test_bad_input_writes_nothing(runtime):
    with pytest.raises(InvalidSessionId):
        Session(session_id="bad id with spaces")
    s = Session(session_id="careful")
    with pytest.raises(EmptyMessage):
        s.chat("  \n")
    with pytest.raises(MessageTooLarge):
        s.chat("x" * (runtime.settings.max_message_bytes + 1))
    assert s.get_history() == [] and not s.exists()


def test_sync_chat_inside_running_loop(runtime):
    s = Session(session_id="in-loop")

    async def main():
        return s.chat("My name is Alice")  # sync call while a loop runs in this thread

    assert "Alice" in asyncio.run(main())


def test_dead_agent_replica_is_replaced_and_call_retried(runtime):
    import os
    import signal
    import threading
    import time

    from openai_server import OpenAIServer

    with OpenAIServer() as srv:
        agent = Agent(name="Fragile", model="openai/test-model", api_base=srv.base_url, api_key="k", replicas=2)
        s = Session(session_id="fragile", agent=agent)
        assert s.chat("warm up") == "echo: warm up"
        srv.delay = 1.0
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("reply", s.chat("survive this")))
        t.start()
        deadline = time.monotonic() + 60  # the model call is in flight on one replica: kill every replica
        while len(srv.requests) < 2 and t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(srv.requests) == 2, srv.requests
        for i in range(2):
            h = ray.get_actor(runtime.names.agent(agent.key, i), namespace=runtime.settings.namespace)
            os.kill(ray.get(h.__ray_call__.remote(lambda self: os.getpid())), signal.SIGKILL)
        srv.delay = 0.0
        t.join(timeout=120)
        assert result.get("reply") == "echo: survive this"
        users = [m["content"] for m in s.get_history() if m["role"] == "user"]
        assert users == ["warm up", "survive this"]


def test_session_handle_survives_runtime_restart(runtime):
    s = Session(session_id="long-lived")
    s.chat("My name is Alice")
    repertory.shutdown()
    repertory.init(store=runtime.settings.store, num_hosts=2, namespace=runtime.settings.namespace)
    assert "Alice" in s.chat("What's my name?")  # the same handle, on the new runtime
