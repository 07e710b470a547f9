"""Batch job lines, checked into :class:`Job`s (see :mod:`repertory.batch.runner` for the format)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from repertory.agents.agent import Agent
from repertory.agents.spec import load_agents
from repertory.errors import InvalidInput, InvalidSessionId, WorkflowError
from repertory.ids import validate_session_id, validate_user_id
from repertory.workflow import Task, plan

__all__ = ["JOB_FIELDS", "TASK_FIELDS", "Job", "default_session_id", "job_id", "parse_job", "pick_agent",
           "pick_default", "resolve_agents"]

JOB_FIELDS = frozenset({"id", "session_id", "user_id", "agent", "messages", "workflow", "input"})
TASK_FIELDS = frozenset({"name", "description", "agent", "depends_on", "expected_output"})


@dataclass(slots=True)
class Job:
    """A checked batch job: an agent job (``messages``) or a workflow job (``tasks``)."""

    id: str
    line: int
    session_id: str
    user_id: str | None
    agent: Agent | None
    messages: list[str] = field(default_factory=list)
    tasks: list[Task] | None = None  # a workflow job


def job_id(obj: Any) -> str | None:
    """The job id of a parsed line as text (numbers allowed), or None if it has none."""
    jid = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(jid, bool) or not isinstance(jid, (str, int)) or jid == "":
        return None
    return str(jid)


def pick_agent(name: Any, agents: dict[str, Agent], what: str) -> Agent:
    """``agents[name]``, or InvalidInput naming ``what`` asked for it and the known names."""
    if not isinstance(name, str):
        raise InvalidInput(f"{what} 'agent' must be an agent's name, got {name!r:.60}")
    try:
        return agents[name]
    except KeyError:
        known = f"the agents given are {sorted(agents)}" if agents else "no agents were given (--agents FILE)"
        raise InvalidInput(f"{what}: unknown agent {name!r}; {known}") from None


def default_session_id(jid: str) -> str:
    """``batch-<id>``, or ``batch-<digest>`` for an id that is not a valid session id."""
    try:
        return validate_session_id(f"batch-{jid}")
    except InvalidSessionId:  # spaces, or too long: a stable digest instead
        return f"batch-{hashlib.sha256(jid.encode()).hexdigest()[:32]}"


def parse_job(obj: Any, line: int, agents: dict[str, Agent], default: Agent | None) -> Job:
    """A validated job, or InvalidInput saying what is wrong with the line."""
    if isinstance(obj, Exception):
        raise obj
    if not isinstance(obj, dict):
        raise InvalidInput(f"line {line}: a job is a JSON object, got {type(obj).__name__}")
    jid = job_id(obj)
    if jid is None:
        raise InvalidInput(f"line {line}: a job needs an 'id' (text or a number), unique in the batch")
    unknown = sorted(set(obj) - JOB_FIELDS)
    if unknown:
        raise InvalidInput(f"line {line}: unknown field(s) {unknown}; job fields are {sorted(JOB_FIELDS)}")
    if ("messages" in obj) == ("workflow" in obj):
        raise InvalidInput(f"line {line}: give 'messages' (an agent job) or 'workflow', exactly one")
    user_id = validate_user_id(obj.get("user_id"))
    sid = obj.get("session_id")
    session_id = default_session_id(jid) if sid is None else validate_session_id(sid)
    agent = default if obj.get("agent") is None else pick_agent(obj["agent"], agents, f"line {line}")
    if "messages" in obj:
        messages = obj["messages"]
        messages = [messages] if isinstance(messages, str) else messages
        if not isinstance(messages, list) or not messages or not all(isinstance(m, str) for m in messages):
            raise InvalidInput(f"line {line}: 'messages' must be a non-empty list of texts")
        if "input" in obj:
            raise InvalidInput(f"line {line}: 'input' is for workflow jobs; send it as a message instead")
        if agent is None:
            raise InvalidInput(f"line {line}: no agent; name one with 'agent' or set a default agent")
        return Job(jid, line, session_id, user_id, agent, messages)
    wf = obj["workflow"]
    specs = wf.get("tasks") if isinstance(wf, dict) else None
    if not isinstance(specs, list) or not specs or set(wf) - {"name", "tasks"}:
        raise InvalidInput(f"line {line}: 'workflow' must be {{\"name\": ..., \"tasks\": [...]}} "
                           "with at least one task")
    tasks = []
    for i, t in enumerate(specs, 1):
        what = f"line {line} task {i}"
        if not isinstance(t, dict) or set(t) - TASK_FIELDS:
            raise InvalidInput(f"{what}: a task is an object with fields {sorted(TASK_FIELDS)}")
        deps = t.get("depends_on") or []
        deps = [deps] if isinstance(deps, str) else deps
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise InvalidInput(f"{what}: 'depends_on' must be a list of task names")
        for key in ("name", "expected_output"):
            if t.get(key) is not None and not isinstance(t[key], str):
                raise InvalidInput(f"{what}: {key!r} must be text")
        task_agent = agent if t.get("agent") is None else pick_agent(t["agent"], agents, what)
        if task_agent is None:
            raise InvalidInput(f"{what}: no agent; name one on the task or the job, or set a default agent")
        try:
            tasks.append(Task(t.get("description"), agent=task_agent, context=obj.get("input"),
                              depends_on=deps, name=t.get("name"), expected_output=t.get("expected_output")))
        except InvalidInput as exc:
            raise InvalidInput(f"{what}: {exc}") from None
    try:
        plan(tasks)
    except WorkflowError as exc:
        raise InvalidInput(f"line {line}: {exc}") from None
    return Job(jid, line, session_id, user_id, agent or tasks[0].agent, tasks=tasks)


def resolve_agents(agents: dict[str, Agent] | str | os.PathLike[str] | None) -> dict[str, Agent]:
    """Agents by name from a dict or an agents file (None: no agents)."""
    if agents is None:
        return {}
    if isinstance(agents, (str, os.PathLike)):
        return load_agents(agents)
    if not isinstance(agents, dict) or not all(isinstance(k, str) and isinstance(v, Agent) for k, v in agents.items()):
        raise InvalidInput("agents must be a dict of name -> repertory.Agent, or the path of an agents file")
    return dict(agents)


def pick_default(default_agent: Agent | str | None, agents: dict[str, Agent]) -> Agent | None:
    """The agent of jobs that name none: the one given, else the only agent, else (no agents) an assistant."""
    if isinstance(default_agent, Agent):
        return default_agent
    if isinstance(default_agent, str):
        return pick_agent(default_agent, agents, "default_agent")
    if default_agent is not None:
        raise InvalidInput("default_agent must be an agent's name or a repertory.Agent")
    if len(agents) == 1:
        return next(iter(agents.values()))
    return None if agents else Agent("Assistant", "You are a helpful assistant.")
