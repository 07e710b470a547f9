"""Step-level durability on the default Ray runtime: SIGKILL of the host and of the agent
replica between two tool steps; the resent turn resumes from its journal (each side effect
once, no model step paid twice), and a history ending in an unanswered tool call is repaired
so that a provider that checks pairing (tests/openai_server.py) accepts the next prompt."""

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
import ray

import repertory
from openai_server import OpenAIServer
from repertory import Agent, Session
from repertory.agents.tool_calls import INTERRUPTED
from repertory.host.routing import host_index

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def rt(ray_cluster, tmp_path_factory):
    """One Ray runtime for the module (over a fresh SQLite file); each test uses its own agent
    name, so its replica runs its own tools."""
    folder = tmp_path_factory.mktemp("steps-ray")
    runtime = repertory.init(store=f"sqlite:///{folder / 'state.db'}", num_hosts=2,
                             namespace=f"steps{os.getpid()}-{folder.name}"[:60])
    runtime.folder = folder
    yield runtime
    repertory.shutdown()


def _two_steps(body):
    """The model: ask for ``first``, then ``second``, then answer with what they said."""
    messages = body["messages"]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    results = [m["content"] for m in messages[last_user:] if m["role"] == "tool"]
    if not body.get("tools"):
        return None
    if len(results) < 2:
        name = ("first", "second")[len(results)]
        return {"content": None, "tool_calls": [{"id": f"call_{name}", "type": "function",
                                                 "function": {"name": name, "arguments": "{}"}}]}
    return "done: " + ", ".join(results)


def _tools(folder: Path):
    def first() -> str:
        """Append a line to a file (a side effect)."""
        with open(folder / "first.log", "a") as f:
            f.write("side effect\n")
        return "wrote"

    def second() -> str:
        """Count the run; the first run hangs until its process is killed."""
        with open(folder / "second.log", "a") as f:
            f.write("run\n")
        if (folder / "second.log").read_text().count("run") == 1:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # killed here, with its host
                time.sleep(0.05)
        return "second ok"

    return [first, second]


def _pid(handle):
    return ray.get(handle.__ray_call__.remote(lambda self: os.getpid()), timeout=60)


def _wait_for(predicate, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _journaled(db, key):
    """How many steps the store's file holds for the session (read as another process would)."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM steps WHERE key = ?", (key,)).fetchone()[0]
    finally:
        conn.close()


def _turn_id(store, session):
    """The id of the turn in flight: the only one with a journal in the store's file."""
    import sqlite3

    conn = sqlite3.connect(store.path)
    try:
        row = conn.execute("SELECT turn_id FROM steps WHERE key = ? LIMIT 1", (session.ref.key,)).fetchone()
    finally:
        conn.close()
    return row[0] if row else ""


def test_an_imported_history_ending_in_a_tool_call_is_accepted_by_a_pairing_provider(rt):
    with OpenAIServer() as server:
        agent = Agent("Echo", model="openai/test-model", api_base=server.base_url, api_key="k")
        s = Session(session_id=f"imported-{uuid.uuid4().hex[:8]}", agent=agent)
        # another framework's history, cut off between a tool call and its result
        s.set_history([{"role": "user", "content": "weather?"},
                       {"role": "assistant", "content": None,
                        "tool_calls": [{"id": "call_x", "type": "function",
                                        "function": {"name": "get_weather", "arguments": "{}"}}]}])
        # the server refuses an unpaired call (400) as providers do; the recorded result reached it
        assert s.chat("anything else?") == f"The tool said: {INTERRUPTED}"
        hist = s.get_history()
        assert [(m["role"], m.get("tool_call_id"), m["content"]) for m in hist[2:]] == [
            ("tool", "call_x", INTERRUPTED), ("user", None, "anything else?"),
            ("assistant", None, f"The tool said: {INTERRUPTED}")]


def test_sigkill_of_the_agent_replica_alone_resumes_on_the_same_host(rt, tmp_path):
    """The host lives, the replica dies between two tool steps: the host goes on from the
    journal on the restarted replica, and the caller just gets its reply."""
    runtime = rt
    with OpenAIServer() as server:
        server.script = _two_steps
        agent = Agent("Stepper-replica", model="openai/test-model", api_base=server.base_url, api_key="k",
                      tools=_tools(tmp_path))
        s = Session(session_id=f"replica-{uuid.uuid4().hex[:8]}", agent=agent)
        replies: list = []
        worker = threading.Thread(target=lambda: replies.append(s.chat("go")))
        worker.start()
        _wait_for(lambda: (tmp_path / "second.log").exists(), "the second tool to start")
        _wait_for(lambda: _journaled(runtime.folder / "state.db", s.ref.key) == 3, "three journaled steps")
        replica = ray.get_actor(runtime.names.agent(agent.key, 0), namespace=runtime.settings.namespace)
        host_pid = {st["host"]: st["pid"] for st in runtime.stats()}
        os.kill(_pid(replica), signal.SIGKILL)
        worker.join(timeout=180)
        assert not worker.is_alive() and replies == ["done: wrote, second ok"]
        assert {st["host"]: st["pid"] for st in runtime.stats()} == host_pid  # no host restarted
        assert (tmp_path / "first.log").read_text() == "side effect\n"
        assert server.chat_calls == 3


def test_sigkill_between_two_tool_steps_resumes_from_the_journal(rt, tmp_path):
    """Last in the module: it ends with a restart of the runtime."""
    runtime = rt
    from repertory.stores import SQLiteStore
    from repertory._sync import run_sync

    with OpenAIServer() as server:
        server.script = _two_steps
        agent = Agent("Stepper-host", model="openai/test-model", api_base=server.base_url, api_key="k",
                      tools=_tools(tmp_path))
        s = Session(session_id=f"steps-{uuid.uuid4().hex[:8]}", agent=agent)
        replies: list = []
        worker = threading.Thread(target=lambda: replies.append(s.chat("go")))
        worker.start()
        _wait_for(lambda: (tmp_path / "second.log").exists(), "the second tool to start")
        probe = SQLiteStore(runtime.folder / "state.db")  # the runtime's file, read as another process would
        _wait_for(lambda: len(run_sync(probe.load_steps, s.ref.key, _turn_id(probe, s))) == 3,
                  "three journaled steps")
        host = runtime.hosts[host_index(s.ref.key, runtime.num_hosts)]
        replica = ray.get_actor(runtime.names.agent(agent.key, 0), namespace=runtime.settings.namespace)
        paid_before = server.chat_calls
        os.kill(_pid(replica), signal.SIGKILL)
        os.kill(_pid(host), signal.SIGKILL)
        worker.join(timeout=180)
        assert not worker.is_alive()
        assert replies == ["done: wrote, second ok"]
        assert (tmp_path / "first.log").read_text() == "side effect\n"  # the side effect, once
        assert paid_before == 2 and server.chat_calls == 3  # only the last model step after the resend
        assert (tmp_path / "second.log").read_text().count("run") == 2  # killed mid-run, run again
        assert run_sync(probe.load_steps, s.ref.key, _turn_id(probe, s)) == []  # dropped on commit
        run_sync(probe.close)
    roles = ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert [m["role"] for m in s.get_history()] == roles
    # what was acknowledged reads back from a new runtime on the same store
    store, ns = runtime.settings.store, runtime.settings.namespace
    repertory.shutdown()
    repertory.init(store=store, num_hosts=2, namespace=ns + "-again")
    again = Session(session_id=s.session_id)
    assert [m["role"] for m in again.get_history()] == roles
    assert again.get_history()[-1]["content"] == "done: wrote, second ok"
