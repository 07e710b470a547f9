"""Turn chains (repertory.host.chains): many sessions' turns in one call, each session's in order."""

import asyncio
import uuid

from test_host_core import SlowEcho, make_host

from repertory.agents.model_client import ModelReply
from repertory.errors import MessageTooLarge, ModelError, ServerError
from repertory.host import wire
from repertory.host.api import TurnRequest
from repertory.host.chains import decode_results, run_chains, serve_chains
from repertory.ids import SessionRef
from repertory.stores import SQLiteStore


def chain(agent, key, *contents):
    return [TurnRequest(ref=SessionRef(key), agent_key=agent.key, content=c, turn_id=uuid.uuid4().hex)
            for c in contents]


class Sleepy(SlowEcho):
    async def complete(self, model, messages, *, tools=None, **options):
        if messages[-1]["content"].startswith("slow"):
            await asyncio.sleep(5)
        return ModelReply({"role": "assistant", "content": f"reply to {messages[-1]['content']}"}, {})


async def test_each_chain_in_order_all_chains_at_once(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    host, agent = make_host(store)
    chains = [chain(agent, f"s{k}", *(f"m{i} of {k}" for i in range(4))) for k in range(20)]
    results = await run_chains(host, chains, None)
    assert [len(r.replies) for r in results] == [4] * 20 and all(r.error is None for r in results)
    assert [r.n_messages for r in results[3].replies] == [2, 4, 6, 8]
    assert results[3].replies[2].content == "reply to m2 of 3"
    hist = await host.get_history(SessionRef("s3"))
    assert [m["content"] for m in hist if m["role"] == "user"] == [f"m{i} of 3" for i in range(4)]
    # a resent chain (the same turn ids) is answered from the store, not run again
    again = await run_chains(host, [chains[3]], None)
    assert all(r.replayed for r in again[0].replies) and len(await host.get_history(SessionRef("s3"))) == 8
    await host.close()
    await store.close()


async def test_a_chain_stops_at_its_first_error_and_keeps_what_went_before(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    host, agent = make_host(store, SlowEcho(fail_on="bad"))
    results = await run_chains(host, [chain(agent, "a", "one", "bad", "three"), chain(agent, "b", "fine")], None)
    assert [r.content for r in results[0].replies] == ["reply to one"]
    assert isinstance(results[0].error, ModelError) and results[1].error is None
    hist = await host.get_history(SessionRef("a"))
    assert [m["content"] for m in hist] == ["one", "reply to one"]  # "three" never ran
    await host.close()
    await store.close()


async def test_timeout_bounds_each_chain(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    host, agent = make_host(store, Sleepy())
    await run_chains(host, [chain(agent, "a", "warm"), chain(agent, "b", "warm")], None)  # stores open, schema made
    # 2 s: ample for a quick turn on a loaded machine, far short of the slow one's 5 s
    results = await asyncio.wait_for(run_chains(host, [chain(agent, "a", "quick", "slow one"),
                                                       chain(agent, "b", "quick too")], 2.0), 10)
    assert [r.content for r in results[0].replies] == ["reply to quick"]
    assert isinstance(results[0].error, TimeoutError)
    assert results[1].error is None and len(results[1].replies) == 1
    await host.close()
    await store.close()


async def test_results_cross_the_wire_with_their_errors(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    host, agent = make_host(store, Sleepy(), max_message_bytes=1000)
    chains = [chain(agent, "a", "hello"), chain(agent, "b", "x" * 5000), chain(agent, "c", "ok", "slow")]
    out = decode_results(await serve_chains(host, wire.encode([chains, 2.0])))  # ample for the quick turns
    assert out[0].error is None and out[0].replies[0].content == "reply to hello"
    assert type(out[1].error) is MessageTooLarge and "1000" in str(out[1].error) and out[1].replies == []
    assert type(out[2].error) is TimeoutError and len(out[2].replies) == 1
    assert not isinstance(out[2].error, ServerError)
    await host.close()
    await store.close()
