"""Tasks and workflows: a graph of agent calls, run in parallel where the graph allows.

With a session, a workflow records each finished task in the session's state, so running it
again after a crash resumes from the first unfinished task; tasks marked
``requires_approval`` wait, durably, for :meth:`Workflow.approve` or :meth:`Workflow.reject`
(from any process). The graph logic (:func:`plan`) is pure; I/O is in :meth:`Workflow.arun`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from repertory._sync import run_sync
from repertory.agents.agent import Agent
from repertory.errors import InvalidInput, RepertoryError, WorkflowError

if TYPE_CHECKING:
    from repertory.session.handle import Session

__all__ = ["Task", "Workflow", "WorkflowResults", "plan"]

DONE, PENDING, APPROVED, REJECTED, FAILED = "done", "pending_approval", "approved", "rejected", "failed"


class Task:
    """One step: an agent, a description, and the tasks whose results it needs."""

    def __init__(self, description: str, agent: Agent | None = None, context: Any = None,
                 depends_on: Sequence[Task | str] = (), name: str | None = None,
                 expected_output: str | None = None, requires_approval: bool = False) -> None:
        if not isinstance(description, str) or not description.strip():
            raise InvalidInput("a Task needs a non-empty description")
        if agent is not None and not isinstance(agent, Agent):
            raise InvalidInput(f"Task agent must be a repertory.Agent, got {type(agent).__name__}")
        self.description = description
        self.agent = agent
        self.context = context
        self.depends_on = list(depends_on)
        self.name = name
        self.expected_output = expected_output
        self.requires_approval = requires_approval

    def __repr__(self) -> str:
        return f"Task(name={self.name!r}, depends_on={self.dependency_names()})"

    def dependency_names(self) -> list[str | None]:
        return [d.name if isinstance(d, Task) else d for d in self.depends_on]

    def prompt(self, results: dict[str, str], session_context: dict | None) -> str:
        parts = [self.description]
        if self.expected_output:
            parts.append(f"Expected output: {self.expected_output}")
        if self.context is not None:
            parts.append(f"Context: {self.context}")
        if session_context:
            parts.append(f"Session context: {session_context}")
        deps = [n for n in self.dependency_names() if n is not None]
        if deps:
            parts.append("Results of earlier tasks:\n" + "\n".join(f"- {n}: {results[n]}" for n in deps))
        return "\n\n".join(parts)


class WorkflowResults(dict):
    """Task name -> output. ``status`` is "completed" or "awaiting_approval"; ``pending`` lists waiting tasks."""

    def __init__(self, results: dict[str, str], status: str, pending: list[str] | None = None,
                 rejected: dict[str, str] | None = None) -> None:
        super().__init__(results)
        self.status = status
        self.pending = pending or []
        self.rejected = rejected or {}


def plan(tasks: Sequence[Task]) -> list[Task]:
    """Name unnamed tasks ``task_1``, ``task_2``... by position and check the graph; returns the tasks."""
    if not tasks:
        raise WorkflowError("a workflow needs at least one task")
    for i, t in enumerate(tasks, start=1):
        if not isinstance(t, Task):
            raise WorkflowError(f"workflow item {i} is a {type(t).__name__}, not a Task")
        if t.name is None:
            t.name = f"task_{i}"
    names = [t.name for t in tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise WorkflowError(f"task names must be unique; repeated: {dupes}")
    known = set(names)
    for t in tasks:
        for dep in t.dependency_names():
            if dep not in known:
                raise WorkflowError(f"task {t.name!r} depends on {dep!r}, which is not in the workflow; "
                                    f"tasks are {names}")
    # Kahn's algorithm: whatever cannot be ordered sits on a cycle.
    indegree = {t.name: len(t.depends_on) for t in tasks}
    users: dict[str, list[str]] = {n: [] for n in names}
    for t in tasks:
        for dep in t.dependency_names():
            users[dep].append(t.name)
    ready = [n for n, d in indegree.items() if d == 0]
    seen = 0
    while ready:
        n = ready.pop()
        seen += 1
        for u in users[n]:
            indegree[u] -= 1
            if indegree[u] == 0:
                ready.append(u)
    if seen != len(tasks):
        raise WorkflowError(f"the workflow has a cycle among {sorted(n for n, d in indegree.items() if d > 0)}")
    return list(tasks)


class Workflow:
    """Runs tasks as a graph; see the module docstring."""

    def __init__(self, tasks: Sequence[Task], session: Session | None = None, *,
                 max_concurrency: int = 16, name: str | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.tasks = {t.name: t for t in plan(tasks)}
        self.session = session
        self.max_concurrency = max_concurrency
        self.on_event = on_event
        self.name = name or self._default_name()
        if session is None and any(t.requires_approval for t in self.tasks.values()):
            raise WorkflowError("tasks with requires_approval need a session to wait in: Workflow(..., session=s)")

    def _default_name(self) -> str:
        h = hashlib.sha256()
        for t in self.tasks.values():
            h.update(f"{t.name}\0{t.description}\0{t.agent.key if t.agent else ''}\0".encode())
        return f"wf-{h.hexdigest()[:12]}"

    def _emit(self, event: str, task: str | None = None, **extra: Any) -> None:
        if self.on_event is not None:
            self.on_event({"event": event, "workflow": self.name, "task": task, "time": time.time(), **extra})

    # -- durable progress ---------------------------------------------------------------
    async def _progress(self) -> dict[str, dict[str, Any]]:
        if self.session is None:
            return {}
        fields = await self.session.runtime.read_fields(self.session.ref)
        return fields["metadata"].get("workflows", {}).get(self.name, {}).get("tasks", {})

    async def _record(self, entries: dict[str, Any], status: str | None = None) -> None:
        if self.session is not None:
            # Each entry names its task's dependencies, so what is stored draws the task graph.
            entries = {n: {**e, "depends_on": [d for d in self.tasks[n].dependency_names() if d is not None]}
                       if n in self.tasks else e for n, e in entries.items()}
            await self.session.runtime.update_workflow(self.session.ref, self.name, entries, status)

    async def apending_approvals(self) -> list[dict[str, Any]]:
        """Tasks waiting for approval: name, description, since."""
        return [{"task": n, "description": self.tasks[n].description, "since": e.get("time")}
                for n, e in (await self._progress()).items() if e.get("status") == PENDING and n in self.tasks]

    def pending_approvals(self) -> list[dict[str, Any]]:
        return run_sync(self.apending_approvals)

    async def _decide(self, task: Task | str, status: str, text: str | None) -> None:
        name = task.name if isinstance(task, Task) else task
        if name not in self.tasks:
            raise InvalidInput(f"no task {name!r} in workflow {self.name!r}; tasks are {sorted(self.tasks)}")
        if self.session is None or not self.tasks[name].requires_approval:
            raise InvalidInput(f"task {name!r} does not require approval")
        await self._record({name: {"status": status, "note": text, "time": time.time()}})

    async def aapprove(self, task: Task | str, note: str | None = None) -> None:
        """Let a waiting task run on the next ``run()``."""
        await self._decide(task, APPROVED, note)

    def approve(self, task: Task | str, note: str | None = None) -> None:
        run_sync(self.aapprove, task, note)

    async def areject(self, task: Task | str, reason: str) -> None:
        """Refuse a waiting task; the tasks that depend on it will not run."""
        await self._decide(task, REJECTED, reason)

    def reject(self, task: Task | str, reason: str) -> None:
        run_sync(self.areject, task, reason)

    # -- running ------------------------------------------------------------------------
    async def arun(self) -> WorkflowResults:
        """Run every task whose dependencies are met, in parallel; returns results by task name."""
        from repertory.runtimes.current import get_runtime

        runtime = self.session.runtime if self.session is not None else get_runtime()
        progress = await self._progress()
        results = {n: e["output"] for n, e in progress.items() if e.get("status") == DONE and n in self.tasks}
        decisions = {n: e for n, e in progress.items() if e.get("status") in (APPROVED, REJECTED, PENDING)}
        for n in results:
            self._emit("task_skipped", n, reason="finished in an earlier run")
        session_context = await self.session.aget_context() if self.session is not None else None
        errors: dict[str, str] = {}
        blocked: set[str] = set()  # waiting, rejected, failed, or behind one of those
        sem = asyncio.Semaphore(self.max_concurrency)
        done_events = {n: asyncio.Event() for n in self.tasks}
        for n in results:
            done_events[n].set()

        async def run_task(name: str) -> None:
            task = self.tasks[name]
            deps = [d for d in task.dependency_names() if d is not None]
            for d in deps:
                await done_events[d].wait()
            try:
                if any(d in blocked for d in deps):
                    blocked.add(name)
                    return
                if task.requires_approval:
                    decision = decisions.get(name, {}).get("status")
                    if decision != APPROVED:
                        blocked.add(name)
                        if decision is None:
                            await self._record({name: {"status": PENDING, "time": time.time()}})
                            self._emit("awaiting_approval", name)
                        return
                async with sem:
                    self._emit("task_started", name)
                    started = time.time()
                    agent = task.agent or (await self.session.aget_agent() if self.session is not None else Agent())
                    # Root tasks see the session's context, unless the caller gave one (the seed
                    # page passes session.get_context() itself).
                    own = deps or task.context is not None
                    prompt = task.prompt(results, None if own else session_context)
                    try:
                        out = await runtime.run_agent(agent, [{"role": "user", "content": prompt}])
                    except RepertoryError as exc:
                        errors[name] = f"{type(exc).__name__}: {exc}"
                        blocked.add(name)
                        await self._record({name: {"status": FAILED, "error": errors[name], "started": started,
                                                   "time": time.time()}})
                        self._emit("task_failed", name, error=errors[name])
                        return
                    results[name] = out.reply
                    await self._record({name: {"status": DONE, "output": out.reply, "started": started,
                                                 "time": time.time()}})
                    self._emit("task_finished", name)
            finally:
                done_events[name].set()

        await asyncio.gather(*[run_task(n) for n in self.tasks if n not in results])
        pending = sorted(n for n in blocked if self.tasks[n].requires_approval
                         and decisions.get(n, {}).get("status") != REJECTED and n not in errors)
        rejected = {n: e.get("note") or "" for n, e in decisions.items() if e.get("status") == REJECTED}
        if errors:
            await self._record({}, status=FAILED)
            raise WorkflowError(f"workflow {self.name!r}: {len(errors)} task(s) failed: {errors}; "
                                "run it again to retry them (finished tasks are kept)",
                                results=dict(results), errors=errors)
        status = "awaiting_approval" if pending else ("rejected" if rejected else "completed")
        await self._record({}, status=status)
        self._emit("workflow_" + status)
        return WorkflowResults({n: results[n] for n in self.tasks if n in results}, status, pending, rejected)

    def run(self) -> WorkflowResults:
        """Sync :meth:`arun`."""
        return run_sync(self.arun)
