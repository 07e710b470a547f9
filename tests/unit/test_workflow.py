"""Tasks and workflows on the local runtime, against a local OpenAI-compatible server."""


import pytest

import repertory
from openai_server import OpenAIServer
from repertory import Agent, Session, Task, Workflow, WorkflowError
from repertory.workflow import plan


@pytest.fixture
def server():
    with OpenAIServer() as srv:
        yield srv


def agent(server, name="Worker"):
    return Agent(name=name, model="openai/test-model", api_base=server.base_url, api_key="k")


def test_graph_validation():
    a = Task("a")
    with pytest.raises(WorkflowError, match="not in the workflow"):
        plan([a, Task("b", depends_on=["nope"])])
    with pytest.raises(WorkflowError, match="cycle"):
        plan([Task("x", name="x", depends_on=["y"]), Task("y", name="y", depends_on=["x"])])
    with pytest.raises(WorkflowError, match="unique"):
        plan([Task("x", name="x"), Task("y", name="x")])
    tasks = plan([Task("one"), Task("two", depends_on=["task_1"])])
    assert [t.name for t in tasks] == ["task_1", "task_2"]


def test_diamond_runs_b_and_c_in_parallel(rt, server):
    w = agent(server)
    rt.ensure_agent(w)
    events = []
    a = Task("step a", agent=w, name="a")
    b = Task("step b", agent=w, name="b", depends_on=[a])
    c = Task("step c", agent=w, name="c", depends_on=[a])
    d = Task("step d", agent=w, name="d", depends_on=[b, c])
    server.delay = 0.0
    Workflow([Task("warm", agent=w)]).run()  # import litellm before timing
    server.delay = 0.5
    results = Workflow([a, b, c, d], on_event=events.append).run()
    assert results.status == "completed" and list(results) == ["a", "b", "c", "d"]
    assert "step b" in results["d"] and "step c" in results["d"]  # d saw both results
    t = {(e["event"], e["task"]): e["time"] for e in events}
    assert t[("task_started", "c")] < t[("task_finished", "b")]  # b and c overlapped
    assert t[("task_started", "b")] < t[("task_finished", "c")]
    assert t[("task_started", "d")] >= max(t[("task_finished", "b")], t[("task_finished", "c")])


def test_session_records_progress_and_resume_skips_finished(rt, server):
    w = agent(server)
    s = Session(session_id="wf-session")
    tasks = lambda: [Task(f"step {i}", agent=w, name=f"s{i}", depends_on=[f"s{i-1}"] if i else []) for i in range(3)]
    Workflow(tasks(), session=s, name="pipeline").run()
    calls = len(server.requests)
    again = Workflow(tasks(), session=s, name="pipeline").run()
    assert len(server.requests) == calls and list(again) == ["s0", "s1", "s2"]
    assert s.metadata["workflows"]["pipeline"]["status"] == "completed"


def test_failed_task_is_retried_on_rerun(rt, server):
    w = Agent(name="Flaky", model="openai/test-model", api_base=server.base_url, api_key="k", num_retries=0)
    s = Session(session_id="wf-fail")
    tasks = lambda: [Task("first", agent=w, name="first"), Task("second", agent=w, name="second", depends_on=["first"])]
    wf = Workflow(tasks(), session=s, name="flaky")
    # "first" finishes in an earlier run of the same workflow; then the server fails "second"
    wf_first = Workflow(tasks()[:1], session=s, name="flaky").run()
    assert "first" in wf_first
    server.fail_next = 5
    with pytest.raises(WorkflowError) as exc:
        wf.run()
    assert "second" in exc.value.errors and exc.value.results["first"] == wf_first["first"]
    server.fail_next = 0
    n = len(server.requests)
    done = Workflow(tasks(), session=s, name="flaky").run()
    assert len(server.requests) == n + 1 and done.status == "completed"


def test_human_approval_pauses_durably(rt, server):
    w = agent(server)
    s = Session(session_id="wf-approval")

    def tasks():
        return [Task("draft", agent=w, name="draft"),
                Task("publish", agent=w, name="publish", depends_on=["draft"], requires_approval=True),
                Task("announce", agent=w, name="announce", depends_on=["publish"]),
                Task("archive", agent=w, name="archive")]

    first = Workflow(tasks(), session=s, name="release").run()
    assert first.status == "awaiting_approval" and first.pending == ["publish"]
    assert set(first) == {"draft", "archive"}
    # another process (here: another Workflow object) sees and approves it
    other = Workflow(tasks(), session=Session(session_id="wf-approval"), name="release")
    assert [p["task"] for p in other.pending_approvals()] == ["publish"]
    other.approve("publish", note="looks good")
    done = Workflow(tasks(), session=s, name="release").run()
    assert done.status == "completed" and list(done) == ["draft", "publish", "announce", "archive"]


def test_rejection_skips_dependents(rt, server):
    w = agent(server)
    s = Session(session_id="wf-reject")
    tasks = lambda: [Task("risky", agent=w, name="risky", requires_approval=True),
                     Task("after", agent=w, name="after", depends_on=["risky"])]
    Workflow(tasks(), session=s, name="r").run()
    wf = Workflow(tasks(), session=s, name="r")
    wf.reject("risky", "too risky")
    res = wf.run()
    assert res.status == "rejected" and res.rejected == {"risky": "too risky"} and dict(res) == {}
    with pytest.raises(repertory.InvalidInput):
        wf.approve("after")
    with pytest.raises(WorkflowError, match="need a session"):
        Workflow(tasks())
