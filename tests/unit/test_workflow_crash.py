"""A process killed during a 5-task workflow: the re-run resumes at the first unfinished task."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import repertory
from openai_server import OpenAIServer
from repertory import Agent, Session, Task, Workflow

SCRIPT = textwrap.dedent("""
    import sys
    import repertory
    from repertory import Agent, Session, Task, Workflow
    store, base = sys.argv[1], sys.argv[2]
    repertory.init(runtime="local", store=store)
    w = Agent(name="W", model="openai/test-model", api_base=base, api_key="k")
    tasks = [Task(f"step {i}", agent=w, name=f"t{i}", depends_on=[f"t{i-1}"] if i else []) for i in range(5)]
    Workflow(tasks, session=Session(session_id="crashing-wf"), name="five").run()
""")


def tasks(w):
    return [Task(f"step {i}", agent=w, name=f"t{i}", depends_on=[f"t{i-1}"] if i else []) for i in range(5)]


def test_kill_during_workflow_then_resume(tmp_path):
    store = f"sqlite:///{tmp_path / 'wf.db'}"
    with OpenAIServer() as server:
        server.delay = 0.3
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, store, server.base_url],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while len(server.requests) < 3 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
            assert len(server.requests) >= 3, proc.stderr.read() if proc.poll() is not None else "timeout"
            os.kill(proc.pid, signal.SIGKILL)  # t0 and t1 are recorded, t2 is in flight
        finally:
            proc.wait(timeout=30)
        before = len(server.requests)
        server.delay = 0.0
        repertory.init(runtime="local", store=store)
        try:
            w = Agent(name="W", model="openai/test-model", api_base=server.base_url, api_key="k")
            s = Session(session_id="crashing-wf")
            done = {n for n, e in s.metadata["workflows"]["five"]["tasks"].items() if e["status"] == "done"}
            assert done == {"t0", "t1"}
            results = Workflow(tasks(w), session=s, name="five").run()
            assert len(server.requests) - before == 3  # t2, t3, t4 only
            assert results.status == "completed" and list(results) == [f"t{i}" for i in range(5)]
        finally:
            repertory.shutdown()
