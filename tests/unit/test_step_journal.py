"""Step-level durability without Ray: a turn with tool calls journals each step, and the same
turn resent after its host died resumes from the journal (HostCore over real SQLite files)."""

import asyncio
import json
import uuid

import pytest

from repertory.agents.agent import Agent, AgentCore, Step, TurnOutput
from repertory.agents.model_client import ModelReply
from repertory.agents.tool_calls import INTERRUPTED, interrupted_results, repair_history, unanswered_calls
from repertory.config import Settings
from repertory.errors import ModelError
from repertory.host.api import TurnRequest
from repertory.host.core import HostCore
from repertory.ids import SessionRef
from repertory.runtimes.local import LocalAgentPool
from repertory.stores import SQLiteStore


def _call(i, name):
    return {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": "{}"}}


class TwoToolModel:
    """Asks for ``first`` then ``second``, then answers with what they said; counts its calls
    and refuses an unpaired tool call, as providers do."""

    def __init__(self):
        self.calls = 0

    async def complete(self, model, messages, *, tools=None, **options):
        if unanswered_calls(messages) or any(unanswered_calls(messages[:i + 1]) and m["role"] == "user"
                                             for i, m in enumerate(messages)):
            raise ModelError("unpaired tool call")
        self.calls += 1
        since_user = messages[max(i for i, m in enumerate(messages) if m["role"] == "user"):]
        results = [m["content"] for m in since_user if m["role"] == "tool"]
        usage = {"total_tokens": 10}
        if len(results) == 0:
            return ModelReply({"role": "assistant", "content": None, "tool_calls": [_call(1, "first")]}, usage)
        if len(results) == 1:
            return ModelReply({"role": "assistant", "content": None, "tool_calls": [_call(2, "second")]}, usage)
        return ModelReply({"role": "assistant", "content": "done: " + ", ".join(results)}, usage)

    async def stream(self, model, messages, *, tools=None, **options):
        reply = await self.complete(model, messages, tools=tools)
        if reply.message.get("content"):
            yield reply.message["content"]
        yield reply


class PairingEcho(TwoToolModel):
    """Echoes the last user message; refuses an unpaired tool call like TwoToolModel."""

    async def complete(self, model, messages, *, tools=None, **options):
        await super().complete(model, messages, tools=tools)  # the pairing check
        return ModelReply({"role": "assistant", "content": "echo: " + messages[-1]["content"]}, {})


class Tools:
    """``first`` appends a line to a file; ``second`` blocks (the host dies there) until released."""

    def __init__(self, path):
        self.path = path
        self.first_runs = 0
        self.second_runs = 0
        self.in_second = asyncio.Event()
        self.release = asyncio.Event()

    def agent(self):
        async def first() -> str:
            """Append a line."""
            self.first_runs += 1
            with open(self.path, "a") as f:
                f.write("side effect\n")
            return "wrote"

        async def second() -> str:
            """Wait for the release."""
            self.second_runs += 1
            self.in_second.set()
            await self.release.wait()
            return "second ok"

        return Agent("Tooly", tools=[first, second])


def _host(store, agent, model):
    pool = LocalAgentPool()
    pool.cores[agent.key] = AgentCore(agent, model)
    return HostCore(store, pool, Settings(store="memory://"))


def _req(agent, turn_id, content="go", journal=True):
    return TurnRequest(ref=SessionRef("s1"), agent_key=agent.key, content=content, turn_id=turn_id, journal=journal)


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_turn_resent_after_its_host_died_resumes_from_its_last_step(tmp_path, url, streamed):
    """On SQLite and Redis (the ``url`` fixture: a fresh file, or a private key prefix)."""
    from repertory.stores.factory import open_store

    tools, model = Tools(tmp_path / "effects.txt"), TwoToolModel()
    agent = tools.agent()
    store = open_store(url)
    turn_id = uuid.uuid4().hex

    async def run(host):
        if not streamed:
            return (await host.turn(_req(agent, turn_id))).content
        chunks = [c async for c in host.stream_turn(_req(agent, turn_id))]
        return chunks[-1].content

    dying = _host(store, agent, model)
    first = asyncio.create_task(run(dying))
    await tools.in_second.wait()  # the host "dies" while the second tool runs
    first.cancel()
    # A streamed turn runs in the host's own task (it goes on when its reader leaves): the
    # host's death ends it too.
    await dying.close()
    with pytest.raises(asyncio.CancelledError):
        await first
    journal = await store.load_steps("s1", turn_id)
    assert len(journal) == 3  # model step, first's result, model step asking for second
    assert (model.calls, tools.first_runs, tools.second_runs) == (2, 1, 1)

    store2 = open_store(url)  # a new host process on the same store
    tools.release.set()
    assert await run(_host(store2, agent, model)) == "done: wrote, second ok"
    assert (tmp_path / "effects.txt").read_text() == "side effect\n"  # once
    assert tools.first_runs == 1  # not run again
    assert model.calls == 3  # two steps from the journal, only the last paid now
    hist = await _host(store2, agent, model).get_history(SessionRef("s1"))
    assert [m["role"] for m in hist] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert await store2.load_steps("s1", turn_id) == []  # dropped when the turn committed
    await store.close()
    await store2.close()


async def test_a_committed_turn_leaves_no_journal_and_unjournaled_turns_write_none(tmp_path):
    tools, model = Tools(tmp_path / "effects.txt"), TwoToolModel()
    tools.release.set()
    agent = tools.agent()
    store = SQLiteStore(tmp_path / "state.db")
    host = _host(store, agent, model)
    journaled: list = []
    real_put = store.put_step

    async def counting_put(*args):
        journaled.append(args[2])
        await real_put(*args)

    store.put_step = counting_put  # observe the writes of the real store
    assert (await host.turn(_req(agent, "t1"))).content == "done: wrote, second ok"
    assert journaled == [0, 1, 2, 3] and await store.load_steps("s1", "t1") == []
    journaled.clear()
    assert (await host.turn(_req(agent, "t2", journal=False))).content == "done: wrote, second ok"
    assert journaled == []  # journal_steps off: nothing written per step
    await store.close()


async def test_agent_core_resumes_after_the_journaled_steps():
    ran = []

    async def first() -> str:
        """First."""
        ran.append("first")
        return "wrote"

    async def second() -> str:
        """Second."""
        ran.append("second")
        return "second ok"

    model = TwoToolModel()
    core = AgentCore(Agent("T", tools=[first, second]), model)
    history = [{"role": "user", "content": "go"}]
    # the journal ends with a model step whose tool never reported: the tool runs, not the model
    journal = [{"role": "assistant", "content": None, "tool_calls": [_call(1, "first")], "usage": {"total_tokens": 10}}]
    items = [i async for i in core.stream(history, steps=True, deltas=False, resume=journal)]
    steps = [i for i in items if isinstance(i, Step)]
    out = items[-1]
    assert isinstance(out, TurnOutput) and out.reply == "done: wrote, second ok"
    assert ran == ["first", "second"] and model.calls == 2
    assert [s.seq for s in steps] == [1, 2, 3]  # numbered after the journal's
    assert out.usage["total_tokens"] == 30  # the journaled step's usage counts in the turn


def test_repair_answers_every_unanswered_call_with_the_documented_wording():
    calls = [_call(1, "a"), _call(2, "b")]
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": calls},
               {"role": "tool", "tool_call_id": "call_1", "content": "A"},
               {"role": "user", "content": "again"}, {"role": "assistant", "content": None,
                                                      "tool_calls": [_call(3, "a")]}]
    fixed = repair_history(history)
    assert [(m["role"], m.get("tool_call_id"), m["content"]) for m in fixed[2:]] == [
        ("tool", "call_1", "A"), ("tool", "call_2", INTERRUPTED), ("user", None, "again"),
        ("assistant", None, None), ("tool", "call_3", INTERRUPTED)]
    assert [m["tool_call_id"] for m in interrupted_results(history)] == ["call_3"]
    assert repair_history(fixed) == fixed and interrupted_results(fixed) == []
    assert json.dumps(fixed)  # plain data


async def test_a_stored_history_ending_in_a_tool_call_is_repaired_by_the_next_turn(tmp_path):
    from repertory.stores import StateWrite

    model = PairingEcho()
    agent = Agent("Plain")
    store = SQLiteStore(tmp_path / "state.db")
    host = _host(store, agent, model)
    await host.turn(_req(agent, "t0", content="hello", journal=False))
    # another framework appends a tool call and dies before its result
    rec = await store.load("s1")
    from repertory.stores.codec import MsgpackCodec

    dangling = MsgpackCodec().encode({"role": "assistant", "content": None, "tool_calls": [_call(9, "lost")]})
    await store.commit(StateWrite("s1", rec.revision, rec.meta, [dangling], base_count=len(rec.messages)))
    host = _host(store, agent, model)
    # TwoToolModel refuses an unpaired call: the turn goes through only with the repair
    reply = await host.turn(_req(agent, "t1", content="next", journal=False))
    hist = await host.get_history(SessionRef("s1"))
    assert [(m["role"], m.get("content")) for m in hist[3:5]] == [("tool", INTERRUPTED), ("user", "next")]
    assert hist[3]["tool_call_id"] == "call_9" and reply.content
    await store.close()


class ReplicaDiesOnce(LocalAgentPool):
    """The pool of a replica that dies after the turn's third step, the first time."""

    def __init__(self):
        super().__init__()
        self.died = False

    async def stream(self, *args, **kwargs):
        from repertory.errors import AgentReplicaLost

        seen = 0
        async for item in super().stream(*args, **kwargs):
            yield item
            seen += isinstance(item, Step)
            if seen == 3 and not self.died:
                self.died = True
                raise AgentReplicaLost("replica died")


async def test_the_host_resumes_from_the_journal_when_only_the_replica_died(tmp_path):
    tools, model = Tools(tmp_path / "effects.txt"), TwoToolModel()
    tools.release.set()
    agent = tools.agent()
    store = SQLiteStore(tmp_path / "state.db")
    pool = ReplicaDiesOnce()
    pool.cores[agent.key] = AgentCore(agent, model)
    host = HostCore(store, pool, Settings(store="memory://"))
    assert (await host.turn(_req(agent, "t1"))).content == "done: wrote, second ok"
    assert pool.died and model.calls == 3 and tools.first_runs == 1
    # second's step was journaled before the replica died: it ran once
    assert tools.second_runs == 1
    await store.close()


def test_set_history_records_results_for_unanswered_calls(rt):
    from repertory import Session

    s = Session(session_id="imported", agent=Agent("Plain"))
    s.set_history([{"role": "user", "content": "weather?"},
                   {"role": "assistant", "content": None, "tool_calls": [_call(1, "get_weather")]},
                   {"role": "user", "content": "never mind"}])
    hist = s.get_history()
    assert [(m["role"], m.get("tool_call_id"), m["content"]) for m in hist] == [
        ("user", None, "weather?"), ("assistant", None, None), ("tool", "call_1", INTERRUPTED),
        ("user", None, "never mind")]
