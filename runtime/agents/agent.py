"""Agents: a definition users create, and the core that runs one turn of it."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from repertory.config import default_model
from repertory.errors import AgentError, InvalidInput, ModelError
from repertory.agents.definition import definition_of
from repertory.agents.demo_model import DEMO_MODEL
from repertory.agents.model_client import NULL_MODEL, ModelClient, ModelReply, client_for
from repertory.agents.prompt_cache import LINEAGE_BYTES, PromptCache
from repertory.agents.tool_calls import unanswered_calls
from repertory.agents.tools import Tool, as_tool
from repertory.agents.window import ContextWindow, Fitted
from repertory.memory.recall import AgentMemory
from repertory.memory.settings import MemorySettings

__all__ = ["Agent", "AgentCore", "Step", "TurnOutput"]

T = TypeVar("T")
_NOTHING = object()


class Agent:
    """An agent definition: a name, instructions, a model and tools.

    ``model`` is any litellm model string; without one, ``$REPERTORY_MODEL`` or the offline
    demo model ``repertory/demo``. Extra keyword arguments (``temperature=``, ``api_base=``,
    ...) go to every model call. ``replicas`` is how many AgentActors serve this agent on a
    Ray runtime (default: one per node). ``memory`` (a :class:`~repertory.Memory`) gives the
    agent long-term memory in every session (``Session(persist_memory=False)`` turns it off).
    ``context_window`` (``history_window``: the last N messages), ``max_context_tokens``
    (default: the model's input size) and ``context_policy`` (``"drop"`` or ``"summarize"``)
    bound the prompt; a session's own settings win (:mod:`repertory.agents.window`).
    """

    def __init__(
        self,
        name: str = "Assistant",
        instructions: str = "",
        model: str | None = None,
        tools: Sequence[Callable[..., Any] | Tool] = (),
        memory: Any = None,
        *,
        replicas: int | None = None,
        max_tool_rounds: int = 8,
        history_window: int | None = None,
        context_window: int | None = None,
        max_context_tokens: int | None = None,
        context_policy: str | None = None,
        **llm_options: Any,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise AgentError("Agent name must be a non-empty string")
        self.name = name
        self.instructions = instructions or ""
        self.model = model or default_model()
        self.tools = [as_tool(t) for t in tools]
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise AgentError(f"Agent {name!r} has two tools with the same name: {names}")
        if memory is not None and not isinstance(memory, MemorySettings):
            raise InvalidInput(f"memory must be a repertory.Memory (or None), got {type(memory).__name__}")
        self.memory: MemorySettings | None = memory
        self.replicas = replicas
        self.max_tool_rounds = max_tool_rounds
        # context_window is the seed page's word for history_window: the last N messages.
        if context_window is not None and history_window is not None and context_window != history_window:
            raise InvalidInput("pass context_window or history_window (the same setting), not both")
        self.history_window = history_window if history_window is not None else context_window
        for what, n in (("context_window", self.history_window), ("max_context_tokens", max_context_tokens)):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise InvalidInput(f"{what} must be a positive int or None")
        if context_policy not in (None, "drop", "summarize"):
            raise InvalidInput(f"context_policy must be 'drop' or 'summarize', got {context_policy!r}")
        # Not part of the stored definition: a session stores its own (Session(max_context_tokens=...)).
        self.max_context_tokens = max_context_tokens
        self.context_policy = context_policy
        self.llm_options = llm_options
        # Set by the seed's ContextualSession recipe; added to the system prompt when present.
        self.context: dict[str, Any] | None = None
        self._memo: tuple[tuple, dict[str, Any]] | None = None

    def _shape(self) -> tuple:
        """What the key and the definition are made of. Attributes may be set and options,
        tools and memory settings changed in place: what is remembered is kept only while
        this compares equal (compared, not hashed: options may hold unhashable values)."""
        return (self.name, self.instructions, self.model, self.max_tool_rounds, self.history_window,
                self.max_context_tokens, self.context_policy, tuple(self.tools),
                repr(sorted(self.llm_options.items())) if self.llm_options else "",
                self.memory.fingerprint() if self.memory is not None else None)

    def remembered(self, name: str, make: Callable[[], T]) -> T:
        """``make()``, kept until the definition changes (a handle per request asks for the
        key and the definition on every turn; making them costs ~30 µs each)."""
        shape = self._shape()
        memo = getattr(self, "_memo", None)  # agents unpickled from an older release lack it
        if memo is None or memo[0] != shape:
            memo = self._memo = (shape, {})
        found = memo[1].get(name, _NOTHING)
        if found is _NOTHING:
            found = memo[1][name] = make()
        return found

    @property
    def key(self) -> str:
        """A stable identity for this definition: the same agent in two processes shares it."""
        return self.remembered("key", self._make_key)

    def _make_key(self) -> str:
        h = hashlib.sha256()
        for part in (self.name, self.instructions, self.model, repr(sorted(self.llm_options.items())),
                     str(self.max_tool_rounds), str(self.history_window)):
            h.update(part.encode())
            h.update(b"\0")
        for t in self.tools:
            h.update(f"{getattr(t.fn, '__module__', '')}.{getattr(t.fn, '__qualname__', t.name)}\0".encode())
        if self.memory is not None:  # without memory, keys stay what they were
            h.update(f"memory:{self.memory.fingerprint()}\0".encode())
        if self.max_context_tokens is not None or self.context_policy is not None:  # likewise
            h.update(f"context:{self.max_context_tokens}:{self.context_policy}\0".encode())
        slug = "".join(c if c.isalnum() else "-" for c in self.name.lower())[:32]
        return f"{slug}-{h.hexdigest()[:12]}"

    def to_dict(self) -> dict[str, Any]:
        """This agent as plain data, the form a session stores: secrets and options that are
        not plain data left out (named under ``withheld``), tools by import path where they
        have one. :func:`repertory.agents.spec.agent_from_definition` reads it back."""
        return copy.deepcopy(self.remembered("definition", lambda: definition_of(self)))

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r}, model={self.model!r}, tools={[t.name for t in self.tools]})"


@dataclass(slots=True)
class TurnOutput:
    """What an agent produced for one user message: messages to append and total usage."""

    messages: list[dict[str, Any]]
    usage: dict[str, int] = field(default_factory=dict)
    # Where the session's window now starts and its summary ({"start", "summary", "usage"}),
    # when this turn moved it (agents.window); None leaves the stored window as it is.
    window: dict[str, Any] | None = None

    @property
    def reply(self) -> str:
        return self.messages[-1].get("content") or "" if self.messages else ""


@dataclass(slots=True)
class Step:
    """One completed step of a turn, for the host to journal: a model reply that asked for
    tools, or one tool's result. ``seq`` numbers the turn's steps from 0."""

    seq: int
    message: dict[str, Any]


def _add_usage(total: dict[str, int], usage: dict[str, int]) -> None:
    for k, v in usage.items():
        total[k] = total.get(k, 0) + v


class AgentCore:
    """Runs an agent's turns: prompt, model call, tool loop. Knows nothing about Ray."""

    def __init__(self, agent: Agent, client: ModelClient | None = None,
                 shared_state: Callable[[str], Any] | None = None,
                 memory_stores: Callable[[dict[str, Any]], Any] | None = None,
                 prompt_cache_bytes: int = LINEAGE_BYTES) -> None:
        self.agent = agent
        self.client = client or client_for(agent.model)
        # How to reach a shared state's backend by id here (in an actor: by actor name), and a
        # memory store by its spec (on Ray, a chromadb folder through its one memory actor).
        self._open_shared = shared_state
        self._memory_stores = memory_stores
        self._tools = {t.name: t for t in agent.tools}
        self._schemas = [t.schema for t in agent.tools] or None
        self._memory: AgentMemory | None = None
        self.window = ContextWindow(agent.model, tokens=agent.max_context_tokens, policy=agent.context_policy,
                                    summarize=self._summary_call)
        # a session's next turn is sent and decodes only its new messages (Settings.prompt_cache_bytes)
        self.prompts = PromptCache(lineage_bytes=prompt_cache_bytes)

    async def _summary_call(self, prompt: list[dict]) -> ModelReply:
        return await self.client.complete(self.agent.model, prompt, **self.agent.llm_options)

    @property
    def memory(self) -> AgentMemory:
        """Long-term memory for turns that ask for it (opened on first use, in this process)."""
        if self._memory is None:
            a = self.agent
            self._memory = AgentMemory(a.memory, self.client, a.model, a.llm_options,
                                       use_model=a.model not in (DEMO_MODEL, NULL_MODEL), stores=self._memory_stores)
        return self._memory

    def close(self) -> None:
        """Close what this core opened (memory files); it reopens them if used again."""
        if self._memory is not None:
            self._memory.close()
            self._memory = None

    def prompt(self, history: list[dict], context: dict | None = None,
               shared: dict[str, Any] | None = None, memories: str | None = None,
               summary: str | None = None) -> list[dict]:
        """System instructions (with context, shared state, recalled memories and the summary
        of older turns), then the history (already fitted to the window)."""
        system = self._system(context, shared, memories)
        if summary:
            system = f"{system}\n\nSummary of the earlier conversation: {summary}" if system else \
                f"Summary of the earlier conversation: {summary}"
        return ([{"role": "system", "content": system}] if system else []) + list(history)

    def _system(self, context: dict | None, shared: dict[str, Any] | None, memories: str | None) -> str:
        a = self.agent
        system = a.instructions
        ctx = context if context is not None else a.context
        if ctx:
            system = f"{system}\n\nContext: {ctx}" if system else f"Context: {ctx}"
        if shared:
            system = f"{system}\n\nShared state: {shared}" if system else f"Shared state: {shared}"
        if memories:
            system = f"{system}\n\n{memories}" if system else memories
        return system

    async def _fitted(self, history: list[dict], window: dict | None, context: dict | None,
                      shared: dict[str, Any] | None, memories: str | None,
                      ) -> tuple[list[dict], Fitted | None, int | None]:
        """The prompt within the window's limits, what fitting it changed (None: nothing to
        fit) and the token limit of its tool rounds."""
        limits = self.window.limits(window)
        if window is None and limits[1] is None:  # no limit, nothing stored: the common null-model turn
            return self.prompt(history, context, shared, memories), None, None
        fitted = await self.window.fit(history, window, self._system(context, shared, memories), limits)
        return self.prompt(fitted.history, context, shared, memories, fitted.summary), fitted, limits[1]

    def _finish(self, out: TurnOutput, fitted: Fitted | None) -> TurnOutput:
        if fitted is not None and fitted.state is not None:
            out.window = {**fitted.state, "usage": fitted.usage}
            _add_usage(out.usage, fitted.usage)  # the summary call is part of the turn's cost
        return out

    def _stamp(self, message: dict[str, Any], usage: dict[str, int] | None = None,
               latency: float | None = None, cost: float | None = None) -> dict[str, Any]:
        message["timestamp"] = time.time()
        if message["role"] == "assistant":
            # What session analytics read: who answered, with which model, how fast, at what cost.
            message["name"] = self.agent.name
            message["model"] = self.agent.model
            if latency is not None:
                message["latency"] = latency
            if cost is not None:
                message["cost"] = cost
        if usage:
            message["usage"] = usage
        return message

    async def _setup(self, shared_state_id: str | None) -> tuple[dict[str, Tool], list[dict] | None, dict | None]:
        if shared_state_id is None:
            return self._tools, self._schemas, None
        if self._open_shared is None:
            raise AgentError(f"agent {self.agent.name!r} was given shared state {shared_state_id!r} but runs "
                             "where no shared state can be reached; run it through a runtime")
        from repertory.agents.shared_tools import shared_state_tools
        from repertory.shared.core import SharedStateCore

        backend = self._open_shared(shared_state_id)
        tools = {**self._tools, **{t.name: t for t in shared_state_tools(backend)}}
        snapshot = await backend.invoke(SharedStateCore.snapshot)
        return tools, [t.schema for t in tools.values()], snapshot["values"]

    async def _run_tools(self, reply: ModelReply, tools: dict[str, Tool]) -> list[dict[str, Any]]:
        return [await self._run_tool(call, tools) for call in reply.message.get("tool_calls") or []]

    async def _run_tool(self, call: dict[str, Any], tools: dict[str, Tool]) -> dict[str, Any]:
        fn = call.get("function", {})
        tool = tools.get(fn.get("name"))
        if tool is None:
            result = f"error: no tool named {fn.get('name')!r}; available: {sorted(tools)}"
        else:
            result = await tool.call(fn.get("arguments") or "{}")
        return self._stamp({"role": "tool", "tool_call_id": call.get("id"), "name": fn.get("name"),
                            "content": result})

    async def stream(self, history: bytes | list[dict], context: dict | None = None,
                     shared_state_id: str | None = None, *, deltas: bool = True,
                     memory: dict | None = None, window: dict | None = None,
                     steps: bool = False, resume: list[dict] | None = None,
                     ) -> AsyncIterator[str | Step | TurnOutput]:
        """Answer the last message of ``history`` (the user's), calling tools as asked.

        ``history`` is a list of messages or, from a host, one msgpack array of them.
        Yields text deltas as they come (with ``deltas``) and the :class:`TurnOutput` last.
        ``memory`` (plain data, :func:`repertory.memory.settings.turn_memory`) turns long-term
        memory on: recalled into the system prompt, and the user's facts stored after the reply.
        ``window``: the session's window settings and state (:mod:`repertory.agents.window`).
        With ``steps``, each completed step is yielded as a :class:`Step` before the turn goes
        on (the host journals it); ``resume`` is a journal's messages: the turn continues
        after them (tool calls without a journaled result run; no model step is redone).
        """
        history = self.prompts.decode(history)
        tools, schemas, shared = await self._setup(shared_state_id)
        extraction: asyncio.Task | None = None
        memories = None
        try:
            if memory is not None:
                said = next((m.get("content") for m in reversed(history) if m.get("role") == "user"), None)
                said = said if isinstance(said, str) else ""
                extraction = self.memory.start_extraction(said)  # overlaps the turn's own model call
                memories = await self.memory.recall(memory, said)
            prompt, fitted, budget = await self._fitted(history, window, context, shared, memories)
            if not deltas and not steps and not resume:
                out = await self._complete(prompt, tools, schemas, budget)
                yield self._finish(await self._remembered(out, extraction, memory), fitted)
                return
            async for item in self._rounds(prompt, tools, schemas, budget, deltas=deltas, steps=steps,
                                           resume=resume):
                if isinstance(item, TurnOutput):
                    item = self._finish(await self._remembered(item, extraction, memory), fitted)
                yield item
        finally:
            if extraction is not None and not extraction.done():
                extraction.cancel()

    async def _remembered(self, out: TurnOutput, extraction: asyncio.Task | None,
                          memory: dict | None) -> TurnOutput:
        if extraction is not None:
            candidates, usage = await extraction
            _add_usage(out.usage, usage)
            await self.memory.remember(memory, candidates)  # type: ignore[arg-type]
        return out

    async def _complete(self, prompt: list[dict], tools: dict[str, Tool], schemas: list[dict] | None,
                        budget: int | None = None) -> TurnOutput:
        """The rounds of a turn without deltas: one model call per round."""
        a = self.agent
        produced: list[dict[str, Any]] = []
        total: dict[str, int] = {}
        for _ in range(a.max_tool_rounds + 1):
            if budget is not None and produced:  # tool results stay within the limit
                prompt = self.window.trim(prompt, produced, budget)
            started = time.perf_counter()
            reply = await self.client.complete(a.model, prompt + produced, tools=schemas, **a.llm_options)
            out = await self._round_done(reply, produced, total, tools, time.perf_counter() - started)
            if out is not None:
                return out
        raise self._too_many_rounds()

    async def _rounds(self, prompt: list[dict], tools: dict[str, Tool], schemas: list[dict] | None,
                      budget: int | None = None, *, deltas: bool = True, steps: bool = False,
                      resume: list[dict] | None = None) -> AsyncIterator[str | Step | TurnOutput]:
        """The rounds of a turn, streamed: text deltas (with ``deltas``), each completed step
        (with ``steps``), then the output. ``resume``: the steps a journal kept (see :meth:`stream`)."""
        a = self.agent
        produced: list[dict[str, Any]] = [dict(m) for m in resume or ()]
        total: dict[str, int] = {}
        for m in produced:
            _add_usage(total, m.get("usage") or {})
        # A journaled model step whose tools did not all report: run the missing ones first.
        for call in unanswered_calls(produced):
            produced.append(await self._run_tool(call, tools))
            if steps:
                yield Step(len(produced) - 1, produced[-1])
        done = sum(1 for m in produced if m.get("role") == "assistant")
        for _ in range(a.max_tool_rounds + 1 - done):
            if budget is not None and produced:
                prompt = self.window.trim(prompt, produced, budget)
            reply: ModelReply | None = None
            started = time.perf_counter()
            if deltas:
                async for item in self.client.stream(a.model, prompt + produced, tools=schemas, **a.llm_options):
                    if isinstance(item, str):
                        yield item
                    else:
                        reply = item
            else:
                reply = await self.client.complete(a.model, prompt + produced, tools=schemas, **a.llm_options)
            if reply is None:
                raise ModelError(f"model {a.model!r} ended its stream without a final message")
            _add_usage(total, reply.usage)
            produced.append(self._stamp(reply.message, reply.usage, time.perf_counter() - started, reply.cost))
            if not reply.message.get("tool_calls"):
                yield TurnOutput(produced, total)
                return
            if steps:
                yield Step(len(produced) - 1, produced[-1])
            for call in reply.message["tool_calls"]:
                produced.append(await self._run_tool(call, tools))
                if steps:
                    yield Step(len(produced) - 1, produced[-1])
        raise self._too_many_rounds()

    async def _round_done(self, reply: ModelReply, produced: list[dict[str, Any]], total: dict[str, int],
                          tools: dict[str, Tool], latency: float) -> TurnOutput | None:
        """Record a model reply; the turn's output if it asked for no tools, else run them."""
        _add_usage(total, reply.usage)
        produced.append(self._stamp(reply.message, reply.usage, latency, reply.cost))
        if not reply.message.get("tool_calls"):
            return TurnOutput(produced, total)
        produced.extend(await self._run_tools(reply, tools))
        return None

    def _too_many_rounds(self) -> AgentError:
        return AgentError(
            f"agent {self.agent.name!r} still asked for tools after {self.agent.max_tool_rounds} rounds; "
            "raise max_tool_rounds or check the tools' results"
        )

    async def run(self, history: bytes | list[dict], context: dict | None = None,
                  shared_state_id: str | None = None, memory: dict | None = None,
                  window: dict | None = None) -> TurnOutput:
        """Like :meth:`stream` without deltas: one model call per round, the output at the end."""
        if memory is None:  # no generator to create and finalise: the common turn
            history = self.prompts.decode(history)
            tools, schemas, shared = await self._setup(shared_state_id)
            prompt, fitted, budget = await self._fitted(history, window, context, shared, None)
            out = await self._complete(prompt, tools, schemas, budget)
            return self._finish(out, fitted) if fitted is not None else out
        async for item in self.stream(history, context, shared_state_id, deltas=False, memory=memory,
                                      window=window):
            if isinstance(item, TurnOutput):
                return item
        raise ModelError(f"agent {self.agent.name!r} produced no output")
