"""RepertorySession (an OpenAI Agents SDK session on repertory's stores): the same answers as
the SDK's own SQLiteSession for any sequence of calls (hypothesis), compare-and-set, TTL,
read-back from a new handle, refusals that store nothing, and a Runner.run through a local
OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

pytest.importorskip("agents")

from agents import SQLiteSession  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from repertory.errors import ConcurrentUpdate, InvalidInput  # noqa: E402
from repertory.interop.openai_agents import RepertorySession  # noqa: E402


# -- differential: the SDK's SQLiteSession is the reference -------------------------------
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_item = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]), "content": _text})
_ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.lists(_item, max_size=4)),
    st.tuples(st.just("get"), st.one_of(st.none(), st.integers(-2, 6))),
    st.tuples(st.just("pop"), st.none()),
    st.tuples(st.just("clear"), st.none()),
), max_size=25)


async def _apply(session, ops) -> list:
    out = []
    for op, arg in ops:
        if op == "add":
            out.append(await session.add_items(arg))
        elif op == "get":
            out.append(await session.get_items(arg))
        elif op == "pop":
            out.append(await session.pop_item())
        else:
            out.append(await session.clear_session())
    out.append(await session.get_items())
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_same_answers_as_the_sdks_sqlite_session(url, ops):
    async def run():
        sid = uuid.uuid4().hex
        reference = SQLiteSession(sid)
        ours = RepertorySession(sid, url)
        try:
            assert await _apply(ours, ops) == await _apply(reference, ops)
        finally:
            reference.close()
            await ours.aclose()
    asyncio.run(run())


# -- repertory's own guarantees -----------------------------------------------------------
async def test_items_read_back_from_a_new_handle(url):
    a = RepertorySession("s1", url, ttl=3600)
    await a.add_items([{"role": "user", "content": "héllo"}, {"role": "assistant", "content": "hi"}])
    await a.aclose()
    b = RepertorySession("s1", url, ttl=3600)
    try:
        assert await b.get_items() == [{"role": "user", "content": "héllo"}, {"role": "assistant", "content": "hi"}]
        assert await b.get_items(limit=1) == [{"role": "assistant", "content": "hi"}]
        assert await RepertorySession("s2", b.store).get_items() == []  # sessions are separate
    finally:
        await b.aclose()


async def test_compare_and_set(url):
    s = RepertorySession("cas", url)
    try:
        assert await s.revision() == 0
        await s.add_items([{"role": "user", "content": "a"}], if_revision=0)
        rev = await s.revision()
        assert rev > 0
        with pytest.raises(ConcurrentUpdate, match="retry"):
            await s.add_items([{"role": "user", "content": "b"}], if_revision=0)
        await s.add_items([{"role": "user", "content": "b"}], if_revision=rev)
        with pytest.raises(ConcurrentUpdate):
            await s.pop_item(if_revision=rev)
        assert await s.pop_item(if_revision=rev + 1) == {"role": "user", "content": "b"}
        with pytest.raises(ConcurrentUpdate):
            await s.clear_session(if_revision=rev)
        assert await s.get_items() == [{"role": "user", "content": "a"}]
        await s.clear_session(if_revision=rev + 2)
        assert await s.revision() == 0 and await s.get_items() == []
        await s.add_items([{"role": "user", "content": "again"}])
        assert await s.revision() != rev  # a new start does not reuse the old revisions
    finally:
        await s.aclose()


async def test_concurrent_compare_and_set_lets_one_writer_win(url):
    s = RepertorySession("race", url)
    try:
        async def attempt(i):
            try:
                await s.add_items([{"role": "user", "content": str(i)}], if_revision=0)
                return True
            except ConcurrentUpdate:
                return False
        assert sum(await asyncio.gather(*(attempt(i) for i in range(8)))) == 1
        assert len(await s.get_items()) == 1
    finally:
        await s.aclose()


async def test_a_value_that_is_not_json_is_refused_and_nothing_is_stored(url):
    s = RepertorySession("bad", url)
    try:
        await s.add_items([{"role": "user", "content": "kept"}])
        with pytest.raises(InvalidInput, match="nothing was stored"):
            await s.add_items([{"role": "user", "content": "ok"}, {"role": "user", "content": object()}])
        assert await s.get_items() == [{"role": "user", "content": "kept"}]
    finally:
        await s.aclose()


async def test_ttl_expires_the_session(url):
    s = RepertorySession("short", url, ttl=0.3)
    try:
        await s.add_items([{"role": "user", "content": "soon gone"}])
        assert len(await s.get_items()) == 1
        await asyncio.sleep(0.6)
        assert await s.get_items() == [] and await s.revision() == 0
        await s.add_items([{"role": "user", "content": "new"}])  # an expired session starts afresh
        assert await s.get_items() == [{"role": "user", "content": "new"}]
        await asyncio.sleep(0.6)
        if s.store.url.startswith("sqlite"):
            assert s.sweep_expired() == 1
    finally:
        await s.aclose()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(InvalidInput):
        RepertorySession("", f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(InvalidInput, match="ttl"):
        RepertorySession("x", f"sqlite:///{tmp_path / 's.db'}", ttl=-1)
    with pytest.raises(InvalidInput, match="SQLite or Redis"):
        RepertorySession("x", "memory://")


# -- the SDK's own runner, through a local OpenAI-compatible server ------------------------
async def test_runner_run_keeps_the_conversation_in_the_session(url):
    from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
    from openai import AsyncOpenAI
    from openai_server import OpenAIServer

    set_tracing_disabled(True)
    with OpenAIServer() as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="test-key")
        agent = Agent(name="Echo", instructions="Answer briefly.",
                      model=OpenAIChatCompletionsModel(model="echo-model", openai_client=client))
        session = RepertorySession("runner", url)
        try:
            first = await Runner.run(agent, "My name is Alice", session=session)
            assert first.final_output == "echo: My name is Alice"
            second = await Runner.run(agent, "What is my name?", session=session)
            assert second.final_output == "echo: What is my name?"
            # the second request carried the first exchange: the session gave it back
            sent = [m.get("content") for m in server.requests[-1]["messages"]]
            assert "My name is Alice" in sent and "echo: My name is Alice" in str(sent)
        finally:
            await session.aclose()
            await client.close()
    again = RepertorySession("runner", url)
    try:
        items = await again.get_items()
        assert [i.get("role") for i in items if "role" in i][:2] == ["user", "assistant"]
        assert len(items) == 4
    finally:
        await again.aclose()


async def test_an_unreachable_redis_is_a_typed_error():
    from repertory.errors import StoreUnavailable

    s = RepertorySession("x", "redis://127.0.0.1:1/0")
    try:
        with pytest.raises(StoreUnavailable, match="did not answer"):
            await s.add_items([{"role": "user", "content": "lost?"}])
        with pytest.raises(StoreUnavailable):
            await s.get_items()
    finally:
        await s.aclose()


async def test_reads_refresh_the_ttl(url):
    s = RepertorySession("kept", url, ttl=1.0)
    try:
        await s.add_items([{"role": "user", "content": "still here"}])
        for _ in range(4):  # 1.6 s in all: alive only because reads refresh it
            await asyncio.sleep(0.4)
            assert len(await s.get_items()) == 1
    finally:
        await s.aclose()
