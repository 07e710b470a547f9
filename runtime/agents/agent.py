"""Agents: a definition users create, and the core that runs one turn of it."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from repertory.config import default_model
from repertory.errors import AgentError, InvalidInput, ModelError
from repertory.agents.definition import definition_of
from repertory.agents.demo_model import DEMO_MODEL
from repertory.agents.model_client import NULL_MODEL, ModelClient, ModelReply, client_for
from repertory.agents.tools import Tool, as_tool
from repertory.memory.recall import AgentMemory
from repertory.memory.settings import MemorySettings

__all__ = ["Agent", "AgentCore", "TurnOutput"]


class Agent:
    """An agent definition: a name, instructions, a model and tools.

    ``model`` is any litellm model string; without one, ``$REPERTORY_MODEL`` or the offline
    demo model ``repertory/demo``. Extra keyword arguments (``temperature=``, ``api_base=``,
    ...) go to every model call. ``replicas`` is how many AgentActors serve this agent on a
    Ray runtime (default: one per node). ``memory`` (a :class:`~repertory.Memory`) gives the
    agent long-term memory in every session (``Session(persist_memory=False)`` turns it off).
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
        self.history_window = history_window
        self.llm_options = llm_options
        # Set by the seed's ContextualSession recipe; added to the system prompt when present.
        self.context: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        """A stable identity for this definition: the same agent in two processes shares it."""
        h = hashlib.sha256()
        for part in (self.name, self.instructions, self.model, repr(sorted(self.llm_options.items())),
                     str(self.max_tool_rounds), str(self.history_window)):
            h.update(part.encode())
            h.update(b"\0")
        for t in self.tools:
            h.update(f"{getattr(t.fn, '__module__', '')}.{getattr(t.fn, '__qualname__', t.name)}\0".encode())
        if self.memory is not None:  # without memory, keys stay what they were
            h.update(f"memory:{self.memory.fingerprint()}\0".encode())
        slug = "".join(c if c.isalnum() else "-" for c in self.name.lower())[:32]
        return f"{slug}-{h.hexdigest()[:12]}"

    def to_dict(self) -> dict[str, Any]:
        """This agent as plain data, the form a session stores: secrets and options that are
        not plain data left out (named under ``withheld``), tools by import path where they
        have one. :func:`repertory.agents.spec.agent_from_definition` reads it back."""
        return definition_of(self)

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r}, model={self.model!r}, tools={[t.name for t in self.tools]})"


@dataclass(slots=True)
class TurnOutput:
    """What an agent produced for one user message: messages to append and total usage."""

    messages: list[dict[str, Any]]
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def reply(self) -> str:
        return self.messages[-1].get("content") or "" if self.messages else ""


def _decoded(history: bytes | list[dict]) -> list[dict]:
    if isinstance(history, (bytes, bytearray)):
        from repertory.stores.codec import unpack_array

        return unpack_array(history)
    return history


def _add_usage(total: dict[str, int], usage: dict[str, int]) -> None:
    for k, v in usage.items():
        total[k] = total.get(k, 0) + v


class AgentCore:
    """Runs an agent's turns: prompt, model call, tool loop. Knows nothing about Ray."""

    def __init__(self, agent: Agent, client: ModelClient | None = None,
                 shared_state: Callable[[str], Any] | None = None,
                 memory_stores: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.agent = agent
        self.client = client or client_for(agent.model)
        # How to reach a shared state's backend by id here (in an actor: by actor name), and a
        # memory store by its spec (on Ray, a chromadb folder through its one memory actor).
        self._open_shared = shared_state
        self._memory_stores = memory_stores
        self._tools = {t.name: t for t in agent.tools}
        self._schemas = [t.schema for t in agent.tools] or None
        self._memory: AgentMemory | None = None

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
               shared: dict[str, Any] | None = None, memories: str | None = None) -> list[dict]:
        """System instructions (with context, shared state and recalled memories), then the
        history (the host has already cut it to the agent's ``history_window``)."""
        a = self.agent
        system = a.instructions
        ctx = context if context is not None else a.context
        if ctx:
            system = f"{system}\n\nContext: {ctx}" if system else f"Context: {ctx}"
        if shared:
            system = f"{system}\n\nShared state: {shared}" if system else f"Shared state: {shared}"
        if memories:
            system = f"{system}\n\n{memories}" if system else memories
        return ([{"role": "system", "content": system}] if system else []) + list(history)

    def _stamp(self, message: dict[str, Any], usage: dict[str, int] | None = None) -> dict[str, Any]:
        message["timestamp"] = time.time()
        if message["role"] == "assistant":
            message["name"] = self.agent.name
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
        out = []
        for call in reply.message.get("tool_calls") or []:
            fn = call.get("function", {})
            tool = tools.get(fn.get("name"))
            if tool is None:
                result = f"error: no tool named {fn.get('name')!r}; available: {sorted(tools)}"
            else:
                result = await tool.call(fn.get("arguments") or "{}")
            out.append(self._stamp({"role": "tool", "tool_call_id": call.get("id"),
                                    "name": fn.get("name"), "content": result}))
        return out

    async def stream(self, history: bytes | list[dict], context: dict | None = None,
                     shared_state_id: str | None = None, *, deltas: bool = True,
                     memory: dict | None = None) -> AsyncIterator[str | TurnOutput]:
        """Answer the last message of ``history`` (the user's), calling tools as asked.

        ``history`` is a list of messages or, from a host, one msgpack array of them.
        Yields text deltas as they come (with ``deltas``) and the :class:`TurnOutput` last.
        ``memory`` (plain data, :func:`repertory.memory.settings.turn_memory`) turns long-term
        memory on: recalled into the system prompt, and the user's facts stored after the reply.
        """
        history = _decoded(history)
        tools, schemas, shared = await self._setup(shared_state_id)
        extraction: asyncio.Task | None = None
        memories = None
        try:
            if memory is not None:
                said = next((m.get("content") for m in reversed(history) if m.get("role") == "user"), None)
                said = said if isinstance(said, str) else ""
                extraction = self.memory.start_extraction(said)  # overlaps the turn's own model call
                memories = await self.memory.recall(memory, said)
            prompt = self.prompt(history, context, shared, memories)
            if not deltas:
                yield await self._remembered(await self._complete(prompt, tools, schemas), extraction, memory)
                return
            async for item in self._rounds(prompt, tools, schemas):
                if isinstance(item, TurnOutput):
                    item = await self._remembered(item, extraction, memory)
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

    async def _complete(self, prompt: list[dict], tools: dict[str, Tool], schemas: list[dict] | None) -> TurnOutput:
        """The rounds of a turn without deltas: one model call per round."""
        a = self.agent
        produced: list[dict[str, Any]] = []
        total: dict[str, int] = {}
        for _ in range(a.max_tool_rounds + 1):
            reply = await self.client.complete(a.model, prompt + produced, tools=schemas, **a.llm_options)
            out = await self._round_done(reply, produced, total, tools)
            if out is not None:
                return out
        raise self._too_many_rounds()

    async def _rounds(self, prompt: list[dict], tools: dict[str, Tool],
                      schemas: list[dict] | None) -> AsyncIterator[str | TurnOutput]:
        """The rounds of a turn, streamed: text deltas, then the output."""
        a = self.agent
        produced: list[dict[str, Any]] = []
        total: dict[str, int] = {}
        for _ in range(a.max_tool_rounds + 1):
            reply: ModelReply | None = None
            async for item in self.client.stream(a.model, prompt + produced, tools=schemas, **a.llm_options):
                if isinstance(item, str):
                    yield item
                else:
                    reply = item
            if reply is None:
                raise ModelError(f"model {a.model!r} ended its stream without a final message")
            out = await self._round_done(reply, produced, total, tools)
            if out is not None:
                yield out
                return
        raise self._too_many_rounds()

    async def _round_done(self, reply: ModelReply, produced: list[dict[str, Any]], total: dict[str, int],
                          tools: dict[str, Tool]) -> TurnOutput | None:
        """Record a model reply; the turn's output if it asked for no tools, else run them."""
        _add_usage(total, reply.usage)
        produced.append(self._stamp(reply.message, reply.usage))
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
                  shared_state_id: str | None = None, memory: dict | None = None) -> TurnOutput:
        """Like :meth:`stream` without deltas: one model call per round, the output at the end."""
        if memory is None:  # no generator to create and finalise: the common turn
            history = _decoded(history)
            tools, schemas, shared = await self._setup(shared_state_id)
            return await self._complete(self.prompt(history, context, shared), tools, schemas)
        async for item in self.stream(history, context, shared_state_id, deltas=False, memory=memory):
            if isinstance(item, TurnOutput):
                return item
        raise ModelError(f"agent {self.agent.name!r} produced no output")
