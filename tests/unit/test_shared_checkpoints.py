"""Consistent multi-agent checkpoints on the local runtime: a checkpoint or version records the
session's shared state, restore brings both back, fork forks the shared state (or keeps it)."""

import pytest

import repertory
from repertory import Agent, InvalidInput, Session, SharedState
from repertory.shared.core import SharedStateCore, stored_shared_state
from repertory.stores import MemoryStore


def _session(session_id, shared):
    return Session(session_id=session_id, shared_state=shared,
                   agents={"research": Agent("Researcher", instructions="Research"),
                           "writer": Agent("Writer", instructions="Write")})


def test_restore_brings_the_shared_state_back_with_the_session(rt):
    shared = SharedState()
    s = _session("project_x", shared)
    s.run_agent("research", "Research quantum computing")
    shared.update({"notes": "qubits", "drafts": 1})
    cp = s.create_checkpoint("researched")
    s.run_agent("writer", "Write the article")
    shared.update({"notes": "rewritten", "article": "done"})
    s.restore_checkpoint(cp)
    assert len(s.get_history()) == 2
    assert shared.snapshot() == {"notes": "qubits", "drafts": 1}  # "article" is gone again
    v = s.save_version("before the rewrite")
    shared.set("notes", "v2")
    assert s.restore_version(v) and shared.get("notes") == "qubits"


def test_fork_forks_the_shared_state_unless_kept(rt):
    shared = SharedState()
    s = _session("project_y", shared)
    s.run_agent("research", "Research")
    shared.set("notes", "at checkpoint")
    cp = s.create_checkpoint()
    shared.set("notes", "now")
    fork = s.fork("project_y_fork")
    assert fork.shared_state.state_id != shared.state_id
    assert fork.shared_state.snapshot() == {"notes": "now"}
    fork.shared_state.set("notes", "fork only")
    assert shared.get("notes") == "now"  # isolated both ways
    shared.set("more", 1)
    assert "more" not in fork.shared_state.snapshot()
    at_cp = s.fork("project_y_at_cp", at=cp)
    assert at_cp.shared_state.snapshot() == {"notes": "at checkpoint"}  # the recorded copy
    kept = s.fork("project_y_kept", shared_state="keep")
    assert kept.shared_state.state_id == shared.state_id
    with pytest.raises(InvalidInput, match="'fork'.*'keep'"):
        s.fork("nope", shared_state="share")


def test_a_checkpoint_restores_its_shared_state_after_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    repertory.init(runtime="local", store=url)
    try:
        shared = SharedState()
        s = _session("project_z", shared)
        s.run_agent("research", "Research")
        shared.set("notes", "kept")
        cp = s.create_checkpoint()
        shared.set("notes", "later")
    finally:
        repertory.shutdown()
    repertory.init(runtime="local", store=url)
    try:
        again = Session(session_id="project_z")  # no shared_state given: the checkpoint names it
        again.restore_checkpoint(cp)
        assert SharedState(shared.state_id).snapshot() == {"notes": "kept"}
    finally:
        repertory.shutdown()


async def test_shared_state_restore_replaces_all_values_and_tells_watchers():
    store = MemoryStore()
    core = SharedStateCore(store, "s")
    await core.update("op1", {"a": 1, "b": 2})
    before = core.revision
    assert await core.restore("op2", {"a": 1, "c": 3}) == 2  # b deleted, c added
    assert await core.restore("op2", {"other": 1}) == 2  # a resend is answered, not applied
    assert core.values == {"a": 1, "c": 3} and core.revision > before
    assert await stored_shared_state(store, "s") == {"id": "s", "revision": core.revision, "values": {"a": 1, "c": 3}}
    assert await stored_shared_state(store, "never") == {"id": "never", "revision": 0, "values": {}}
    with pytest.raises(InvalidInput):
        await core.restore("op3", {"k": object()})


def test_automatic_checkpoints_record_the_shared_state_too(rt):
    shared = SharedState()
    s = Session(session_id="auto_cp", agent=Agent("Solo"), shared_state=shared, checkpoint_every=1)
    shared.set("step", 1)
    s.chat("one")  # checkpoint 1, after this turn: step 1
    shared.set("step", 2)
    s.chat("two")
    s.restore_checkpoint(1)
    assert shared.get("step") == 1 and len(s.get_history()) == 2
