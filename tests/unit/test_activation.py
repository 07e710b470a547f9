"""Single activation without Ray: HostCores on one real store, each holding activation leases
(host.activation), and a small router that follows SessionElsewhere as the Ray runtime does."""

import asyncio
import uuid

import pytest

from repertory.agents.agent import Agent, AgentCore
from repertory.config import Settings
from repertory.errors import RuntimeNotReady, SessionElsewhere
from repertory.host.activation import Activation, Holder, Redirects, lease_key
from repertory.host.api import TurnRequest
from repertory.host.core import HostCore
from repertory.ids import SessionRef
from repertory.runtimes.local import LocalAgentPool
from repertory.stores import SQLiteStore

from test_host_core import SlowEcho

CLUSTER = "127.0.0.1:6380"


class CountingStore(SQLiteStore):
    """A real SQLite store that counts lease calls (the cost of activation)."""

    def __init__(self, path):
        super().__init__(path)
        self.lease_calls = 0

    async def acquire_lease(self, key, owner, ttl):
        self.lease_calls += 1
        return await super().acquire_lease(key, owner, ttl)


def make(store, address, *, ttl=10.0, cluster=CLUSTER, agent=None):
    agent = agent or Agent("A")
    client = SlowEcho()
    pool = LocalAgentPool()
    pool.cores[agent.key] = AgentCore(agent, client)
    activation = Activation(store, Holder(cluster, address, uuid.uuid4().hex[:8]), ttl)
    host = HostCore(store, pool, Settings(store="memory://", lease_ttl=ttl), name=address, activation=activation)
    return host, agent, client


def turn(agent, content, key="s1"):
    return TurnRequest(ref=SessionRef(key), agent_key=agent.key, content=content, turn_id=uuid.uuid4().hex)


async def routed(hosts, first, call, patience=10.0):
    """Send ``call(host)`` to host ``first``, following redirects (what RayRuntime.invoke does)."""
    redirects = Redirects(patience)
    target = first
    while True:
        try:
            return await call(hosts[target])
        except SessionElsewhere as exc:
            name, pause = redirects.next(exc, reachable=exc.holder in hosts)
            await asyncio.sleep(pause)
            target = name or first


@pytest.fixture
async def store(tmp_path):
    s = CountingStore(tmp_path / "state.db")
    yield s
    await s.close()


async def test_two_hosts_asked_at_once_activate_the_session_once(store):
    a, agent, ca = make(store, "host-a")
    b, _, cb = make(store, "host-b", agent=agent)
    hosts = {"host-a": a, "host-b": b}
    n = 40
    # Every turn at once, half through each host (two drivers that disagree on the host set).
    replies = await asyncio.gather(*(routed(hosts, "host-a" if i % 2 else "host-b",
                                            lambda h, i=i: h.turn(turn(agent, f"m{i}"))) for i in range(n)))
    assert all(r.content.startswith("reply to") for r in replies)
    assert a.activations + b.activations == 1
    assert ca.calls + cb.calls == n  # no turn ran twice
    assert (a.activation.redirects + b.activation.redirects) >= n // 2 - 1
    history = await routed(hosts, "host-a", lambda h: h.get_history(SessionRef("s1")))
    users = [m["content"] for m in history[0::2]]
    assert sorted(users) == sorted(f"m{i}" for i in range(n)) and len(history) == 2 * n
    assert all(r["content"] == f"reply to {u['content']}" for u, r in zip(history[0::2], history[1::2]))
    assert a.repeated_model_calls + b.repeated_model_calls == 0
    await a.close(), await b.close()


async def test_passivation_hands_the_session_over_at_once(store):
    a, agent, _ = make(store, "host-a")
    b, _, _ = make(store, "host-b", agent=agent)
    await a.turn(turn(agent, "one"))
    with pytest.raises(SessionElsewhere) as info:
        await b.turn(turn(agent, "two"))
    assert info.value.holder == "host-a" and 0 < info.value.wait <= 10.0
    assert b.snapshot().redirects == 1 and b.stats()["redirects"] == 1  # counted where operators look
    assert a.passivate_moved(0, 1) == 0  # host 0 of 1 owns every session: nothing moves
    assert a.passivate_moved(1, 2) + a.passivate_moved(0, 2) == 1  # it moved to one of two hosts
    await a.activation.drain()
    await b.turn(turn(agent, "two"))  # no wait: the lease was given back
    assert [m["content"] for m in (await b.get_history(SessionRef("s1")))[0::2]] == ["one", "two"]
    await a.close(), await b.close()


async def test_a_dead_holder_loses_the_lease_after_its_ttl_or_at_once_to_its_replacement(store):
    a, agent, _ = make(store, "host-a", ttl=0.4)
    await a.turn(turn(agent, "one"))  # then host-a dies: no close, no release
    b, _, _ = make(store, "host-b", ttl=0.4, agent=agent)
    # Nobody answers for host-a: b gets the session once the lease lapses.
    await routed({"host-b": b}, "host-b", lambda h: h.turn(turn(agent, "two")))
    await b.close()  # releases
    a2, _, _ = make(store, "host-a", ttl=30.0, agent=agent)
    await a2.turn(turn(agent, "three"))
    # host-a restarted with the same name: it takes its dead incarnation's lease at once.
    a3, _, _ = make(store, "host-a", ttl=30.0, agent=agent)
    await a3.turn(turn(agent, "four"))
    assert a3.activation.takeovers == 1 and a3.snapshot().takeovers == 1
    assert [m["content"] for m in (await a3.get_history(SessionRef("s1")))[0::2]] == ["one", "two", "three", "four"]
    await a3.close()


async def test_uncontended_turns_pay_no_lease_round_trip(store):
    a, agent, _ = make(store, "host-a")
    for i in range(20):
        await a.turn(turn(agent, f"m{i}"))
    assert store.lease_calls == 1  # the activation only
    await a.close()


async def test_a_lapsed_lease_reloads_what_another_host_wrote(store):
    a, agent, _ = make(store, "host-a", ttl=0.2)
    b, _, _ = make(store, "host-b", ttl=0.2, agent=agent)
    await a.turn(turn(agent, "one"))
    await asyncio.sleep(0.3)  # a stays resident, idle; its lease lapses
    await b.turn(turn(agent, "two"))
    await asyncio.sleep(0.3)
    await a.turn(turn(agent, "three"))
    assert a.repeated_model_calls == 0 and a.cas_retries == 0  # read afresh, not found stale at commit
    assert [m["content"] for m in (await a.get_history(SessionRef("s1")))[0::2]] == ["one", "two", "three"]
    await a.close(), await b.close()


async def test_a_holder_in_another_cluster_is_not_followed(store):
    a, agent, _ = make(store, "host-0", cluster="10.0.0.1:6379")
    b, _, _ = make(store, "host-0", cluster="10.0.0.2:6379", agent=agent)  # same name, other cluster
    await a.turn(turn(agent, "one"))
    await b.turn(turn(agent, "two"))  # no redirect: compare-and-set and leases as before
    await a.turn(turn(agent, "three"))
    assert [m["content"] for m in (await b.get_history(SessionRef("s1")))[0::2]] == ["one", "two", "three"]
    assert await store.lease_holder(lease_key("s1")) == a.activation.owner
    await a.close(), await b.close()


def test_redirects_follow_the_holder_then_wait_then_give_up():
    now = [0.0]
    r = Redirects(5.0, hops=2, clock=lambda: now[0])
    exc = SessionElsewhere("elsewhere", holder="host-x", wait=3.0)
    assert r.next(exc, reachable=True) == ("host-x", 0.0)
    assert r.next(exc, reachable=True) == ("host-x", 0.0)
    target, pause = r.next(exc, reachable=True)  # a loop: back to its own host, after a pause
    assert target is None and 0 < pause <= 3.0
    assert r.next(exc, reachable=False)[0] is None
    now[0] = 6.0
    with pytest.raises(RuntimeNotReady, match="host-x"):
        r.next(exc, reachable=True)


def test_holder_round_trips_and_lease_keys_cannot_be_session_ids():
    h = Holder("10.0.0.1:6379", "host-abc-3", "f00")
    assert Holder.parse(h.owner()) == h
    assert Holder.parse("host-3-abcdef") is None  # a contended-session owner, not an activation
    assert lease_key("u:s1") == "u:s1/activation"


async def test_a_session_activated_again_while_its_release_is_under_way_keeps_its_lease(store):
    a, agent, _ = make(store, "host-a")
    b, _, _ = make(store, "host-b", agent=agent)
    await a.turn(turn(agent, "one"))
    a.passivate_idle(0.0)  # the release runs in the background...
    await a.turn(turn(agent, "two"))  # ...and this activation waits for it, then takes the lease
    await asyncio.sleep(0.05)
    assert await store.lease_holder(lease_key("s1")) == a.activation.owner
    with pytest.raises(SessionElsewhere):
        await b.turn(turn(agent, "three"))
    await a.close(), await b.close()
