"""agent_placement="host" on the default Ray runtime: the agent's turns (model call and tools)
run in the process of the host that holds the session, not in an AgentActor; the seed's
multi-agent example runs as written with the placement set by environment; a host killed
mid-run fetches the definition again and answers the resent turn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import ray

import repertory
from openai_server import OpenAIServer
from repertory import Agent, Session
from repertory._sync import run_sync
from repertory.logs import bound_request_id
from repertory.host.routing import host_index

pytestmark = pytest.mark.ray

ROOT = Path(__file__).parents[2]


def _where_tool():
    # defined in a function so that Ray pickles it by value (workers cannot import test modules)
    def where() -> str:
        """The process this tool runs in."""
        return str(os.getpid())

    return where


def _ask_where(body):
    """The model: call the tool once, then answer with what it said."""
    messages = body["messages"]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    results = [m["content"] for m in messages[last_user:] if m["role"] == "tool"]
    if not results:
        return {"content": None, "tool_calls": [{"id": "call_where", "type": "function",
                                                 "function": {"name": "where", "arguments": "{}"}}]}
    return f"pid {results[0]}"


def _pid(handle) -> int:
    return ray.get(handle.__ray_call__.remote(lambda self: os.getpid()), timeout=60)


@pytest.fixture
def placed(ray_cluster, tmp_path, request):
    rt = repertory.init(store=f"sqlite:///{tmp_path / 'state.db'}", num_hosts=2, agent_placement=request.param,
                        namespace=f"pl{os.getpid()}-{tmp_path.name}"[:60])
    yield rt
    repertory.shutdown()


@pytest.mark.parametrize("placed", ["host", "actor"], indirect=True)
def test_tools_run_in_the_host_of_the_session_only_with_host_placement(placed):
    with OpenAIServer() as server:
        server.script = _ask_where
        agent = Agent("Where", model="openai/test-model", api_base=server.base_url, api_key="k", tools=[_where_tool()])
        s = Session(session_id=f"where-{uuid.uuid4().hex[:8]}", agent=agent)
        reply = s.chat("where do you run?")
        streamed = "".join(s.stream("and when streaming?"))
    hosts = {st["host"]: st["pid"] for st in placed.stats()}
    own_host = hosts[f"host-{host_index(s.ref.key, placed.num_hosts)}"]
    replica = _pid(ray.get_actor(placed.names.agent(agent.key, 0), namespace=placed.settings.namespace))
    expected = own_host if placed.settings.agent_placement == "host" else replica
    assert reply == f"pid {expected}" and streamed == f"pid {expected}"
    history = s.get_history()
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"] * 2


@pytest.mark.parametrize("placed", ["host"], indirect=True)
def test_a_killed_host_fetches_the_definition_again_and_answers(placed):
    agent = Agent("Null", model="repertory/null")
    s = Session(session_id="placed-kill", agent=agent)
    assert s.chat("one")
    host = ray.get_actor(placed.names.host(host_index(s.ref.key, placed.num_hosts)),
                         namespace=placed.settings.namespace)
    os.kill(_pid(host), signal.SIGKILL)
    assert s.chat("two")  # the restarted host has no agent core yet: it fetches the definition
    assert [m["content"] for m in s.get_history() if m["role"] == "user"] == ["one", "two"]


def test_seed_multi_agent_example_with_host_placement_from_the_environment(ray_cluster, tmp_path):
    # It joins this test worker's Ray (test_contract_ray runs the same example on a Ray of its own).
    (tmp_path / "sessions").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("REPERTORY_MODEL", "RAY_ADDRESS")}
    env.update(REPERTORY_HOME=str(tmp_path / "home"), REPERTORY_AGENT_PLACEMENT="host",
               RAY_ADDRESS=ray.get_runtime_context().gcs_address)
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "seed_multi_agent.py")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _has_litellm(handle) -> bool:
    return ray.get(handle.__ray_call__.remote(lambda self: "litellm" in sys.modules), timeout=60)


@pytest.mark.parametrize("placed", ["host", "actor"], indirect=True)
def test_replicas_import_litellm_only_when_they_run_the_turns(placed):
    # With agents in the hosts, the replicas only hand out the definition: importing litellm
    # there cost each agent ~3 s of CPU and ~200 MB at start, for nothing.
    agent = Agent("Demo", model=repertory.DEMO_MODEL)
    s = Session(session_id=f"imports-{uuid.uuid4().hex[:8]}", agent=agent)
    assert s.chat("hello").startswith("[demo model]")
    replica = ray.get_actor(placed.names.agent(agent.key, 0), namespace=placed.settings.namespace)
    in_replicas = placed.settings.agent_placement == "actor"
    assert _has_litellm(replica) == in_replicas
    # A call from the driver to a replica (Runtime.run_agent) still runs there, importing it then.
    out = run_sync(placed.run_agent, agent, [{"role": "user", "content": "hi"}])
    assert out.messages[-1]["content"].startswith("[demo model]")
    assert _has_litellm(replica)


def _failing_tool():
    def where() -> str:
        """Fails."""
        raise RuntimeError("where-exploded")

    return where


def _logged(pid: int, event: str) -> list[dict]:
    """The JSON log lines of ``event`` that the Ray worker ``pid`` wrote to its stderr file."""
    import glob
    import json

    logs = ray._private.worker._global_node.get_logs_dir_path()
    found = []
    for path in glob.glob(f"{logs}/worker-*-{pid}.err"):
        for line in open(path, encoding="utf-8", errors="replace"):
            if line.startswith("{") and f'"{event}"' in line:
                found.append(json.loads(line))
    return found


@pytest.mark.parametrize("placed", ["actor"], indirect=True)
def test_the_replicas_lines_of_a_turn_carry_its_session_turn_and_request_ids(placed):
    # A failing tool is logged by the replica that ran it, in its own process: without the
    # turn's ids an operator could not tell which session or request it was.
    with OpenAIServer() as server:
        server.script = _ask_where
        agent = Agent("Failing", model="openai/test-model", api_base=server.base_url, api_key="k",
                      tools=[_failing_tool()])
        s = Session(session_id=f"fail-{uuid.uuid4().hex[:8]}", agent=agent)
        with bound_request_id("req-tool-1"):
            assert "where-exploded" in s.chat("where do you run?", turn_id="turn-tool-1")
    replica = _pid(ray.get_actor(placed.names.agent(agent.key, 0), namespace=placed.settings.namespace))
    deadline = time.monotonic() + 30
    while not (lines := _logged(replica, "tool_failed")):  # Ray writes worker output as it comes
        assert time.monotonic() < deadline, "the replica logged no tool_failed line"
        time.sleep(0.2)
    assert {"session": s.ref.key, "turn_id": "turn-tool-1", "request_id": "req-tool-1"}.items() <= lines[0].items()
