"""SharedState actors and multi-agent sessions on real Ray."""

import asyncio
import os
import signal
import threading

import pytest
import ray

import repertory
from openai_server import OpenAIServer
from repertory import Agent, Session, SharedState

pytestmark = pytest.mark.ray


def _actor_pid(state_id, runtime):
    h = ray.get_actor(runtime.names.shared_state(state_id), namespace=runtime.settings.namespace)
    return ray.get(h.__ray_call__.remote(lambda self: os.getpid()), timeout=30)


async def test_50_agents_x_100_increments_exact(runtime):
    s = SharedState("hits")

    async def agent(i):
        for _ in range(100):
            await s.aincrement("n")

    await asyncio.gather(*[agent(i) for i in range(50)])
    assert await s.aget("n") == 5000


def test_cas_race_from_threads_has_one_winner(runtime):
    s = SharedState("leader")
    s.get("warm")
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(s.compare_and_set("leader", None, i)))
               for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1 and s.get("leader") in range(20)


def test_survives_actor_kill_and_runtime_restart(runtime):
    s = SharedState("tough")
    for _ in range(10):
        s.increment("n")
    os.kill(_actor_pid("tough", runtime), signal.SIGKILL)
    assert s.increment("n") == 11  # restarted, reloaded from the store
    repertory.shutdown()
    repertory.init(store=runtime.settings.store, num_hosts=2, namespace=runtime.settings.namespace)
    assert SharedState("tough").get("n") == 11


def test_watch_over_ray(runtime):
    s = SharedState("news")
    s.set("x", 0)
    start = s.revision()
    got = []

    def watch():  # from a known revision: no change is missed, whenever it subscribes
        for change in s.watch(["x"], after=start):
            got.append(change["changes"]["x"])
            if len(got) == 3:
                return

    t = threading.Thread(target=watch)
    t.start()
    for i in range(1, 4):
        s.set("x", i)
    t.join(timeout=30)
    assert got == [1, 2, 3]


@pytest.fixture
def slow_server():
    with OpenAIServer() as srv:
        srv.delay = 1.0
        yield srv


async def test_agents_of_one_session_run_in_parallel(runtime, slow_server):
    opts = dict(model="openai/test-model", api_base=slow_server.base_url, api_key="k")
    s = Session(session_id="parallel", agents={"a": Agent(name="A", **opts), "b": Agent(name="B", **opts)})
    import time

    slow_server.delay = 0.0
    await asyncio.gather(s.arun_agent("a", "warm up"), s.arun_agent("b", "warm up"))  # litellm import
    await s.aclear()
    slow_server.delay = 1.0
    t0 = time.monotonic()
    ra, rb = await asyncio.gather(s.arun_agent("a", "one"), s.arun_agent("b", "two"))
    took = time.monotonic() - t0
    assert (ra, rb) == ("echo: one", "echo: two")
    assert took < 1.8  # two 1 s model calls overlapped
    hist = await s.aget_history()
    pairs = [(hist[i]["agent"], hist[i + 1]["agent"]) for i in range(0, 4, 2)]
    assert sorted(pairs) == [("a", "a"), ("b", "b")]  # each exchange appended whole


def test_agent_uses_shared_state_tool(runtime):
    with OpenAIServer() as srv:
        shared = SharedState("weather-board")
        shared.set("Paris", "sunny")
        agent = Agent(name="Reader", model="openai/test-model", api_base=srv.base_url, api_key="k")
        s = Session(agents={"reader": agent}, shared_state=shared)
        assert s.run_agent("reader", "What's the weather in Paris?") == "The tool said: sunny"
        tool_names = [t["function"]["name"] for t in srv.requests[0]["tools"]]
        assert tool_names == ["shared_state_get", "shared_state_set", "shared_state_append"]
        assert "Shared state:" in srv.requests[0]["messages"][0]["content"]


def test_diamond_workflow_on_ray_runs_b_and_c_in_parallel(runtime):
    from repertory import Task, Workflow

    with OpenAIServer() as srv:
        w = Agent(name="Worker", model="openai/test-model", api_base=srv.base_url, api_key="k", replicas=2)
        Workflow([Task("warm up", agent=w)]).run()
        srv.delay = 0.6
        events = []
        a = Task("step a", agent=w, name="a")
        b = Task("step b", agent=w, name="b", depends_on=[a])
        c = Task("step c", agent=w, name="c", depends_on=[a])
        d = Task("step d", agent=w, name="d", depends_on=[b, c])
        results = Workflow([a, b, c, d], on_event=events.append).run()
        t = {(e["event"], e["task"]): e["time"] for e in events}
        assert t[("task_started", "c")] < t[("task_finished", "b")]
        assert t[("task_started", "b")] < t[("task_finished", "c")]
        assert "step b" in results["d"] and "step c" in results["d"]
