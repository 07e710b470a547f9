"""Every writing operation is applied once per operation id (issue 16 item 8).

A resend (same op id) to the same host, or to a fresh host that reloads the session from the
store (the host died after the write), is answered, not applied again: on the memory,
SQLite and Redis stores. The Ray kill tests are in tests/integration/test_contract_ray.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from redis_server import TEST_DB_URL as REDIS_URL
from redis_server import drop_redis_keys
from repertory import Session
from repertory.agents.agent import Agent, AgentCore
from repertory.config import Settings
from repertory.host.api import TurnRequest
from repertory.host.core import HostCore
from repertory.ids import SessionRef
from repertory.runtimes.local import LocalAgentPool, LocalRuntime
from repertory.state.session_state import RECENT_OPS
from test_host_core import SlowEcho

REF = SessionRef("s1")
HISTORY = [{"role": r, "content": f"{r} {i}"} for i in range(3) for r in ("user", "assistant")]


@pytest.fixture
def store(backend):
    return backend


def host_on(store) -> HostCore:
    """A host as a restarted actor has it: nothing resident, everything read from the store."""
    agent = Agent("A")
    pool = LocalAgentPool()
    pool.cores[agent.key] = AgentCore(agent, SlowEcho())
    return HostCore(store, pool, Settings(store="memory://"), name=f"host-{uuid.uuid4().hex[:6]}")


async def _snapshot(host: HostCore) -> dict[str, Any]:
    state = await host.get_state(REF)
    cps = await host.list_checkpoints(REF, "checkpoint") + await host.list_checkpoints(REF, "version")
    return {"state": {k: v for k, v in state.items() if k != "updated_at"}, "checkpoints": cps}


# Each case: (set-up on a fresh session, the operation under an op id, a check of its result).
Op = Callable[[HostCore, str], Awaitable[Any]]


async def _setup(host: HostCore) -> None:
    await host.set_history(REF, HISTORY)
    await host.create_checkpoint(REF, "start", "checkpoint", None)
    await host.create_checkpoint(REF, "v", "version", None)


CASES: dict[str, tuple[Op, Callable[[Any], bool]]] = {
    "set_history": (lambda h, o: h.set_history(REF, HISTORY[:2], o), lambda r: isinstance(r, int)),
    "set_state": (lambda h, o: h.set_state(REF, {"turns": 9, "user_data": {"a": 1}}, o), lambda r: isinstance(r, int)),
    "update_fields": (lambda h, o: h.update_fields(REF, "user_data", {"n": 1}, False, o), lambda r: r == {"n": 1}),
    "update_item": (lambda h, o: h.update_item(REF, "metadata", "results", {"x": 1}, "append", o),
                    lambda r: r == [{"x": 1}]),
    "update_workflow": (lambda h, o: h.update_workflow(REF, "wf", {"t": "done"}, "done", o),
                        lambda r: r["tasks"] == {"t": "done"} and r["status"] == "done"),
    "set_ttl": (lambda h, o: h.set_ttl(REF, 500.0, o), lambda r: r is None),
    "add_rating": (lambda h, o: h.add_rating(REF, 0.8, "good", o), lambda r: r == 1),
    "create_checkpoint": (lambda h, o: h.create_checkpoint(REF, "mine", "checkpoint", None, o),
                          lambda r: r["cp_id"] == "c2" and r["label"] == "mine"),
    "save_version": (lambda h, o: h.create_checkpoint(REF, "v1", "version", None, o), lambda r: r["cp_id"] == "v1"),
    "restore_checkpoint": (lambda h, o: h.restore_checkpoint(REF, 1, "checkpoint", o), lambda r: isinstance(r, int)),
    "pop_turn": (lambda h, o: h.pop_turn(REF, o), lambda r: [m["content"] for m in r] == ["user 2", "assistant 2"]),
    "truncate": (lambda h, o: h.truncate(REF, 1, o), lambda r: len(r) == 5 and r[0]["content"] == "assistant 0"),
    "edit_message": (lambda h, o: h.edit_message(REF, -1, "edited", o), lambda r: r == [HISTORY[-1]]),
    "import_session": (None, lambda r: isinstance(r, int)),  # built per test (needs an export)
}


async def _import_op(host: HostCore) -> Op:
    doc = await host.export_session(REF, True)
    await host.delete(REF)

    async def op(h: HostCore, op_id: str) -> int:
        # overwrite=False: applied twice, the second would fail with "already exists"
        return await h.import_session(REF, doc, False, op_id)

    return op


@pytest.mark.parametrize("restart", [False, True], ids=["same-host", "restarted-host"])
@pytest.mark.parametrize("name", list(CASES))
async def test_a_resent_operation_is_applied_once(store, name, restart):
    host = host_on(store)
    await _setup(host)
    op, ok = CASES[name]
    if op is None:
        op = await _import_op(host)
    op_id = uuid.uuid4().hex
    first = await op(host, op_id)
    assert ok(first)
    after = await _snapshot(host)
    revision = after["state"]["revision"]
    if restart:
        host = host_on(store)  # the reply was lost with the host; the resend reaches a new one
    again = await op(host, op_id)
    assert ok(again) and again == first
    assert await _snapshot(host) == after  # nothing applied: same state, revision, checkpoints
    assert (await host.get_state(REF))["revision"] == revision
    # A new id is a new operation (for the ones whose second application shows).
    if name in ("update_item", "pop_turn", "create_checkpoint"):
        await op(host, uuid.uuid4().hex)
        assert await _snapshot(host) != after


async def test_operation_ids_are_bounded_and_the_oldest_go_first(store):
    host = host_on(store)
    ids = [uuid.uuid4().hex for _ in range(RECENT_OPS + 5)]
    for i, op_id in enumerate(ids):
        await host.update_item(REF, "metadata", "results", i, "append", op_id)
    state = await store.load(REF.key)
    from repertory.state.session_state import SessionState

    recent = SessionState.from_record(state).meta["recent_ops"]
    assert [r[0] for r in recent] == ids[-RECENT_OPS:]
    await host.update_item(REF, "metadata", "results", "again", "append", ids[-1])  # remembered: answered
    await host.update_item(REF, "metadata", "results", "again", "append", ids[0])  # forgotten: applied
    assert (await host.read_fields(REF))["metadata"]["results"][-2:] == [RECENT_OPS + 4, "again"]


async def test_recorded_operations_survive_export_import_and_restores(store):
    host = host_on(store)
    await _setup(host)
    pop_id, add_id = uuid.uuid4().hex, uuid.uuid4().hex
    popped = await host.pop_turn(REF, pop_id)
    await host.update_item(REF, "metadata", "results", 1, "append", add_id)
    # A restore brings back old content, not old operation records: both stay answered.
    await host.restore_checkpoint(REF, 1, "checkpoint", uuid.uuid4().hex)
    assert await host.pop_turn(REF, pop_id) == popped
    assert len(await host.get_history(REF)) == 6  # the restored history, nothing popped again
    # Export and import elsewhere (another store key): the records come along and answer.
    doc = await host.export_session(REF, True)
    other = SessionRef("copy")
    fresh = host_on(store)
    await fresh.import_session(other, doc, False, uuid.uuid4().hex)
    fresh = host_on(store)  # reload from the store
    assert await fresh.pop_turn(other, pop_id) == popped
    assert len(await fresh.get_history(other)) == 6


async def test_a_checkpoint_a_recorded_edit_points_to_is_not_pruned(store):
    host = host_on(store)
    await host.set_history(REF, HISTORY)
    pop_id = uuid.uuid4().hex
    popped = await host.pop_turn(REF, pop_id)  # checkpoint c1 holds what it removed
    for _ in range(3):
        await host.create_checkpoint(REF, "auto", "checkpoint", 1, uuid.uuid4().hex)
    assert [c["cp_id"] for c in await host.list_checkpoints(REF, "checkpoint")] == ["c1", "c4"]
    assert await host_on(store).pop_turn(REF, pop_id) == popped


async def test_history_edits_still_drop_recent_turn_ids(store):
    """Item 9: a resent turn after an edit that rewrote the history runs again (its id is gone),
    while a resent edit is still answered."""
    host = host_on(store)
    agent_key = next(iter(host.agents.cores))
    turn = TurnRequest(ref=REF, agent_key=agent_key, content="hello", turn_id="t1")
    await host.turn(turn)
    pop_id = uuid.uuid4().hex
    assert [m["content"] for m in await host.pop_turn(REF, pop_id)] == ["hello", "reply to hello"]
    assert (await host.turn(turn)).replayed is False  # its exchange is gone: asked again
    assert len(await host.get_history(REF)) == 2
    assert [m["content"] for m in await host.pop_turn(REF, pop_id)] == ["hello", "reply to hello"]
    assert len(await host.get_history(REF)) == 2  # the resent pop removed nothing
    assert (await host.turn(turn)).replayed is True


class ResendingRuntime(LocalRuntime):
    """The local runtime, sending every call twice (as the Ray runtime resends one whose
    host died after applying it) and answering with the second reply."""

    async def invoke(self, ref, op, *args):
        await super().invoke(ref, op, *args)
        return await super().invoke(ref, op, *args)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_the_runtime_makes_one_op_id_per_call_and_resends_it(backend, tmp_path):
    prefix = f"rptest-{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path}/s.db" if backend == "sqlite" else f"{REDIS_URL}?prefix={prefix}"
    rt = ResendingRuntime(Settings(store=url))
    try:
        s = Session("twice", runtime=rt)
        s.set_history(HISTORY)
        s.add_result("objective", 1)
        s.add_result("objective", 2)
        assert [r["results"] for r in s.metadata["results"]] == [1, 2]
        assert [m["content"] for m in s.pop_turn()] == ["user 2", "assistant 2"]
        assert len(s.get_history()) == 4
        cp = s.create_checkpoint("once")
        assert [c["id"] for c in s.list_checkpoints()] == [1, cp]  # c1: before pop_turn
        before = s.get_state()["revision"]
        s.update_user_data(n=1)
        s.save_version("v")
        assert s.get_state()["revision"] == before + 2  # one write each, though each was sent twice
        assert s.delete() is True  # the resend is answered, not a second delete
        assert not s.exists()
    finally:
        rt.shutdown()
        if backend == "redis":
            import asyncio

            asyncio.run(drop_redis_keys(prefix))
