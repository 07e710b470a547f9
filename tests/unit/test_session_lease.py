"""Issue 16 item 10: two runtimes writing one session never pay a model call twice silently.

Two runtimes on one store (separate processes in production; here two LocalRuntimes, each
with its own store connection) race on one session. The first compare-and-set conflict
hands the session over through a store-side lease; from then on each runtime waits for the
other's turn instead of running its model on a stale history. Every repeated model call is
counted in the session's metrics, which read back after a restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from contract_helpers import Store
from openai_server import OpenAIServer
from repertory import Agent, Session
from repertory.config import Settings
from repertory.runtimes.local import LocalRuntime

N_TURNS = 40


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    s = Store(request.param, tmp_path)
    yield s
    s.drop()


@pytest.fixture
def server():
    with OpenAIServer() as srv:
        srv.delay = 0.01  # a model call takes time, so turns of the two runtimes overlap
        yield srv


def _runtimes(store: Store, n: int = 2) -> list[LocalRuntime]:
    return [LocalRuntime(Settings(store=store.url)) for _ in range(n)]


def test_two_runtimes_on_one_session_pay_each_model_call_once(store, server):
    agent = Agent("Echo", model="openai/test-model", api_base=server.base_url, api_key="k")
    a, b = _runtimes(store)
    try:
        sa = Session("contended", agent=agent, runtime=a)
        sb = Session("contended", agent=agent, runtime=b)

        async def burst():
            return await asyncio.gather(*[(sa if i % 2 else sb).achat(f"m{i}") for i in range(N_TURNS)])

        replies = asyncio.run(burst())  # no ConcurrentUpdate: a runtime waits for the other's turn
        assert replies == [f"echo: m{i}" for i in range(N_TURNS)]
    finally:
        a.shutdown()
        b.shutdown()
    (c,) = _runtimes(store, 1)
    try:
        state = Session("contended", agent=agent, runtime=c).get_state()
    finally:
        c.shutdown()
    users = [m["content"] for m in state["history"] if m["role"] == "user"]
    assert sorted(users) == sorted(f"m{i}" for i in range(N_TURNS))  # each turn once
    metrics = state["metrics"]
    # Every model call is either a turn's or counted as repeated.
    assert len(server.requests) == N_TURNS + metrics["repeated_model_calls"]
    # At most the one call per runtime that found the other runtime there first.
    assert metrics["repeated_model_calls"] <= 2, metrics
    assert metrics["lease_waits"] > 0, metrics  # the runtimes did take turns


def test_a_runtime_that_died_holding_the_lease_delays_a_turn_by_one_lease_at_most(store):
    import repertory
    from repertory.stores.factory import open_store

    async def ghost_takes_the_lease():
        st = open_store(store.url)
        try:
            assert await st.acquire_lease("ghosted", "a runtime that died", 1.0) == 0.0
        finally:
            await st.close()

    (rt,) = _runtimes(store, 1)
    try:
        s = Session("ghosted", agent=Agent("Demo", model=repertory.DEMO_MODEL), runtime=rt)
        s.chat("Before.")
        asyncio.run(ghost_takes_the_lease())
        assert "After." in s.chat("After.")  # refused once, then waited for the lease to lapse
        stats = rt.stats()
    finally:
        rt.shutdown()
    (c,) = _runtimes(store, 1)
    try:
        state = Session("ghosted", runtime=c).get_state()
    finally:
        c.shutdown()
    assert [m["content"] for m in state["history"] if m["role"] == "user"] == ["Before.", "After."]
    metrics = state["metrics"]
    assert metrics["repeated_model_calls"] == 1 and metrics["cas_retries"] == 1, metrics
    assert metrics["lease_waits"] >= 1, metrics
    assert sum(h["repeated_model_calls"] for h in stats) == 1
