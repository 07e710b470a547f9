"""Consistent multi-agent checkpoints on the default Ray runtime, in the seed's multi-agent
shape: the researcher writes its notes to the shared state through its shared-state tool;
restore brings the notes back with the history, fork isolates them, and a checkpoint still
restores them from a new runtime on the same store."""

import json
import uuid

import pytest

import repertory
from openai_server import OpenAIServer
from repertory import Agent, Session, SharedState

pytestmark = pytest.mark.ray


def _note_taker(body):
    """The researcher: store the request as the notes (one tool call), then say so."""
    messages = body["messages"]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    if any(m["role"] == "tool" for m in messages[last_user:]):
        return "noted"
    if not any(t["function"]["name"] == "shared_state_set" for t in body.get("tools") or ()):
        return None
    args = {"key": "notes", "value": messages[last_user]["content"]}
    return {"content": None, "tool_calls": [{"id": "call_note", "type": "function",
                                             "function": {"name": "shared_state_set", "arguments": json.dumps(args)}}]}


def test_restore_and_fork_of_a_multi_agent_session_with_shared_state(runtime):
    with OpenAIServer() as server:
        server.script = _note_taker
        shared = SharedState()
        agents = {"research": Agent("Researcher", instructions="Research topics thoroughly",
                                    model="openai/test-model", api_base=server.base_url, api_key="k"),
                  "writer": Agent("Writer", instructions="Write based on research")}
        sid = f"project_x-{uuid.uuid4().hex[:6]}"
        s = Session(session_id=sid, agents=agents, shared_state=shared)
        s.run_agent("research", "Research quantum computing")
        assert shared.get("notes") == "Research quantum computing"  # written by the agent's tool
        cp = s.create_checkpoint("researched")
        s.run_agent("writer", "Write an article based on the research")
        s.run_agent("research", "Research error correction")
        assert shared.get("notes") == "Research error correction"
        s.restore_checkpoint(cp)
        assert shared.snapshot() == {"notes": "Research quantum computing"}
        assert [m["role"] for m in s.get_history()] == ["user", "assistant", "tool", "assistant"]

        fork = s.fork(f"{sid}-fork")
        assert fork.shared_state.state_id != shared.state_id
        fork.run_agent("research", "Research only in the fork")
        assert fork.shared_state.get("notes") == "Research only in the fork"
        assert shared.get("notes") == "Research quantum computing"  # isolated
        kept = s.fork(f"{sid}-kept", shared_state="keep")
        assert kept.shared_state.state_id == shared.state_id
        shared.set("notes", "changed after the checkpoint")

    # the checkpoint's copy restores from a new runtime on the same store, through a handle
    # that names no shared state (the checkpoint records which one)
    store, ns = runtime.settings.store, runtime.settings.namespace
    repertory.shutdown()
    repertory.init(store=store, num_hosts=2, namespace=ns + "-again")
    again = Session(session_id=sid)
    again.restore_checkpoint(cp)
    assert SharedState(shared.state_id).snapshot() == {"notes": "Research quantum computing"}
    assert len(again.get_history()) == 4
