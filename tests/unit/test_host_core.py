"""HostCore without Ray: mailbox order, activation, passivation, idempotent turns."""

import asyncio
import time
import uuid

import pytest

from repertory.agents.agent import Agent, AgentCore
from repertory.config import Settings
from repertory.errors import EmptyMessage, MessageTooLarge, ModelError
from repertory.host.core import HostCore
from repertory.host.metrics import HostMetrics
from repertory.agents.model_client import ModelReply
from repertory.runtimes.local import LocalAgentPool
from repertory.host.api import TurnRequest
from repertory.ids import SessionRef
from repertory.stores import MemoryStore, SQLiteStore


class SlowEcho:
    """Answers 'reply to <msg>' after a random short delay, to shuffle completion order."""

    def __init__(self, fail_on=None):
        self.calls = 0
        self.fail_on = fail_on

    async def complete(self, model, messages, *, tools=None, **options):
        self.calls += 1
        last = messages[-1]["content"]
        if last == self.fail_on:
            raise ModelError("boom")
        await asyncio.sleep(0.001 * (hash(last) % 5))
        return ModelReply({"role": "assistant", "content": f"reply to {last}"}, {"total_tokens": 1})

    async def stream(self, model, messages, *, tools=None, **options):
        reply = await self.complete(model, messages)
        for word in reply.message["content"].split(" "):
            yield word + " "
        yield reply


def make_host(store=None, client=None, **settings):
    agent = Agent("A")
    pool = LocalAgentPool()
    pool.cores[agent.key] = AgentCore(agent, client or SlowEcho())
    s = Settings(store="memory://", **settings)
    return HostCore(store or MemoryStore(), pool, s), agent


def req(agent, content, key="s1"):
    return TurnRequest(ref=SessionRef(key), agent_key=agent.key, content=content,
                       turn_id=uuid.uuid4().hex)


async def test_mailbox_is_serial_and_ordered():
    host, agent = make_host()
    await asyncio.gather(*[host.turn(req(agent, f"m{i}")) for i in range(50)])
    hist = await host.get_history(SessionRef("s1"))
    assert len(hist) == 100
    users = [m["content"] for m in hist[0::2]]
    assert users == [f"m{i}" for i in range(50)]  # arrival order
    assert all(a["content"] == f"reply to {u['content']}" for u, a in zip(hist[0::2], hist[1::2]))


async def test_passivation_under_cap_keeps_history(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    host, agent = make_host(store, max_resident=5)
    for rnd in range(3):
        await asyncio.gather(*[host.turn(req(agent, f"r{rnd}", key=f"k{i}")) for i in range(30)])
    assert host.stats()["resident"] <= 5
    assert host.passivations >= 25 * 3 - 5
    for i in range(30):
        hist = await host.get_history(SessionRef(f"k{i}"))
        assert [m["content"] for m in hist[0::2]] == ["r0", "r1", "r2"]
    await store.close()


async def test_idle_passivation():
    host, agent = make_host(idle_timeout=0.05)
    await host.turn(req(agent, "hello"))
    assert host.stats()["resident"] == 1
    deadline = time.monotonic() + 10
    while host.stats()["resident"] and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert host.stats()["resident"] == 0
    assert len(await host.get_history(SessionRef("s1"))) == 2  # reactivated from the store
    await host.close()


async def test_retried_turn_is_not_applied_twice():
    client = SlowEcho()
    host, agent = make_host(client=client)
    r = req(agent, "once")
    first = await host.turn(r)
    again = await host.turn(r)
    assert again.replayed and again.content == first.content
    assert client.calls == 1 and len(await host.get_history(SessionRef("s1"))) == 2


async def test_failed_turn_writes_nothing():
    host, agent = make_host(client=SlowEcho(fail_on="bad"))
    await host.turn(req(agent, "good"))
    with pytest.raises(ModelError):
        await host.turn(req(agent, "bad"))
    assert [m["content"] for m in await host.get_history(SessionRef("s1"))] == ["good", "reply to good"]


async def test_bad_messages_are_rejected():
    host, agent = make_host(max_message_bytes=10)
    with pytest.raises(EmptyMessage):
        await host.turn(req(agent, "   "))
    with pytest.raises(MessageTooLarge, match="max_message_bytes"):
        await host.turn(req(agent, "x" * 11))
    assert await host.get_history(SessionRef("s1")) == []


async def test_stream_turn_matches_stored_reply():
    host, agent = make_host()
    chunks = [c async for c in host.stream_turn(req(agent, "stream me"))]
    final = chunks.pop()
    assert "".join(chunks).strip() == final.content
    assert (await host.get_history(SessionRef("s1")))[-1]["content"] == final.content


async def test_lost_compare_and_set_is_retried_on_fresh_state():
    store = MemoryStore()
    host_a, agent = make_host(store)
    host_b, _ = make_host(store)
    host_b.agents = host_a.agents
    await host_a.turn(req(agent, "from a"))
    await host_b.turn(req(agent, "from b"))  # b is now ahead of a's resident copy
    await host_a.turn(req(agent, "a again"))  # a loses the CAS, reloads, redoes the turn
    hist = await host_a.get_history(SessionRef("s1"))
    assert [m["content"] for m in hist[0::2]] == ["from a", "from b", "a again"]


class _Syncs(HostMetrics):
    def __init__(self) -> None:
        self.published: list[tuple[int, int]] = []

    def sync(self, counts, resident: int, in_progress: int) -> None:
        self.published.append((counts.activations, resident))


async def test_counts_publish_after_every_turn_or_at_most_every_metrics_every_seconds():
    host, agent = make_host()
    host.metrics = metrics = _Syncs()
    await host.turn(req(agent, "one", key="a"))
    await host.turn(req(agent, "two", key="b"))
    assert metrics.published == [(1, 1), (2, 2)]  # the default: after every turn (local runtime)
    host.metrics_every = 3600.0  # as a Ray host sets it: its timer publishes the rest
    for i in range(5):
        await host.turn(req(agent, f"more {i}", key=f"c{i}"))
    assert len(metrics.published) == 2  # none within the interval of the last publication
    host.sync_metrics()  # what the host's timer calls
    assert metrics.published[-1] == (7, 7)


class CountingTouches(SQLiteStore):
    """A real SQLite store that counts its expiry refreshes."""

    touches = 0

    async def touch(self, key, expires_at):
        self.touches += 1
        return await super().touch(key, expires_at)


async def test_activation_refreshes_the_expiry_only_when_a_tenth_of_the_ttl_has_passed(tmp_path):
    # Every activation of a session with a TTL used to refresh its expiry: a second round trip
    # after the load (on Redis, a script). The stored expiry is a whole TTL after the last
    # write or refresh, so a session written or refreshed within the last tenth of its TTL
    # needs none yet.
    store = CountingTouches(tmp_path / "s.db")
    host, agent = make_host(store)
    ref = SessionRef("ttl")
    await host.turn(TurnRequest(ref=ref, agent_key=agent.key, content="hi", turn_id="t1", ttl=3600.0))
    assert host.passivate_idle(0) == 1
    assert len(await host.get_history(ref)) == 2  # activated from the store
    assert store.touches == 0
    # Its last refresh 400 s ago (over 360 s, a tenth of the TTL): activation refreshes it.
    assert await store.touch(ref.key, time.time() + 3600 - 400)
    store.touches = 0
    assert host.passivate_idle(0) == 1
    assert len(await host.get_history(ref)) == 2
    assert store.touches == 1
    rec = await store.load(ref.key)
    assert rec.expires_at > time.time() + 3590  # refreshed to a whole TTL from now
    # Read back after a restart: the session and its expiry.
    await host.close()
    await store.close()
    again = SQLiteStore(tmp_path / "s.db")
    rec = await again.load(ref.key)
    assert rec is not None and rec.expires_at > time.time() + 3580
    await again.close()
