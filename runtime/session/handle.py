"""The Session handle: what users hold. It keeps only ids and placement; state is in the store."""

from __future__ import annotations

import asyncio
import copy
import functools
import uuid
from collections.abc import AsyncIterator, Iterator
from types import EllipsisType
from typing import Any

from repertory._sync import iterate_sync, run_sync
from repertory.agents.agent import Agent
from repertory.runtimes.current import get_runtime
from repertory.errors import AccessDenied, InvalidInput
from repertory.host.api import TurnReply, TurnRequest
from repertory.host.busy import BusyPolicy, check_on_busy
from repertory.ids import SessionRef, new_session_id
from repertory.logs import request_id
from repertory.agents.spec import agent_from_definition
from repertory.memory.settings import turn_memory
from repertory.state.context import PROMPT_CONTEXTS
from repertory.state.schema import CONTEXT_POLICIES, check_agent_definitions, check_context_settings, check_ttl
from repertory.runtimes.base import Runtime
from repertory.session.analytics import AnalyticsMixin
from repertory.session.branches import BranchesMixin
from repertory.session.user_data import UserDataMixin
from repertory.shared.handle import SharedState
from repertory.state.session_state import check_message
from repertory.streams import StreamChunk, event_id, parse_event_id
from repertory.tokens import DEFAULT_TTL, issue, verify

__all__ = ["Session"]


def _default_agent() -> Agent:
    return Agent("Assistant", "You are a helpful assistant.")


class Session(BranchesMixin, UserDataMixin, AnalyticsMixin):
    """A persistent conversation with an agent.

    ``Session(session_id=None, agent=None, user_id=None)``: the id defaults to a uuid4; the
    same id (and user) continues the same conversation from any process, after restarts.
    Every method has an async twin prefixed with ``a`` (``achat``, ``aget_history``, ...);
    the sync ones work with or without a running event loop.
    ``placement="dedicated"`` runs this session in its own Ray actor instead of a pooled host.
    ``persist_memory=True`` gives the session long-term memory (the agent's ``Memory``, else
    the default one in the runtime's database): facts the user states are remembered for the
    user (or this session, without a user) and recalled in later sessions. ``False`` turns an
    agent's memory off here; ``None`` (the default) follows the agent.

    The prompt holds the newest messages that fit: ``context_window`` (messages),
    ``max_context_tokens`` (default: the agent's, else the model's input size) and
    ``context_policy`` (``"drop"`` or ``"summarize"`` what no longer fits) are stored with the
    session; ``prompt_context`` says what the system prompt learns about the session.

    The session stores its agent definitions (``Agent.to_dict()``: no secrets, tools by
    import path) with every turn of a handle given ``agent=`` or ``agents=``; a handle given
    other agents replaces them, and the replacement is recorded (``get_state()["agent_changes"]``).
    A handle given neither continues with the stored ones, read once, before its first turn
    (the default assistant for a session that stores none).

    ``on_busy`` says what a message does when the session is processing another (``"enqueue"``,
    ``"reject"``, ``"interrupt"``, ``"rollback"``; :mod:`repertory.host.busy`); each call may
    override it. Streamed chunks carry event ids: ``astream(..., resume_from=chunk.event_id)``
    continues a stream after a reconnect.

    ``Session(agent_url="http://host:8000/agent", session_id=..., token=...)`` is a session on a
    repertory server instead (:class:`~repertory.session.remote.RemoteSession`), with the
    same methods; the token defaults to ``$REPERTORY_TOKEN``.
    """

    def __new__(cls, *args: Any, agent_url: str | None = None, **kwargs: Any) -> Any:
        # Session(agent_url=..., session_id=..., token=...) is a session on a repertory server.
        if agent_url is not None:
            from repertory.session.remote import RemoteSession

            return RemoteSession(agent_url, *args, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        session_id: str | None = None,
        agent: Agent | None = None,
        user_id: str | None = None,
        *,
        agents: dict[str, Agent] | None = None,
        shared_state: SharedState | None = None,
        agent_history: str = "transcript",
        placement: str = "pooled",
        ttl: float | None | EllipsisType = ...,
        checkpoint_every: int | None = None,
        keep_checkpoints: int | None = None,
        runtime: Runtime | None = None,
        persist_memory: bool | None = None,
        agent_url: None = None,
        context_window: int | None = None,
        max_context_tokens: int | None = None,
        context_policy: str | None = None,
        prompt_context: str | bool | None = "profile",
        on_busy: BusyPolicy = "enqueue",
    ) -> None:
        # "shared" was the first name of both "pooled" and "transcript"; still understood.
        placement = "pooled" if placement == "shared" else placement
        agent_history = "transcript" if agent_history == "shared" else agent_history
        self.ref = SessionRef(new_session_id() if session_id is None else session_id, user_id, placement)
        if agent is not None and not isinstance(agent, Agent):
            raise InvalidInput(f"agent must be a repertory.Agent, got {type(agent).__name__}")
        if agents is not None:
            if not isinstance(agents, dict) or not agents or not all(
                    isinstance(k, str) and isinstance(v, Agent) for k, v in agents.items()):
                raise InvalidInput("agents must be a non-empty dict of name -> repertory.Agent")
        if shared_state is not None and not isinstance(shared_state, SharedState):
            raise InvalidInput(f"shared_state must be a repertory.SharedState, got {type(shared_state).__name__}")
        if agent_history not in ("transcript", "own"):
            raise InvalidInput("agent_history must be 'transcript' (the whole conversation) or 'own' "
                               "(the agent's own turns)")
        for name, n in (("checkpoint_every", checkpoint_every), ("keep_checkpoints", keep_checkpoints)):
            if n is not None and (not isinstance(n, int) or n < 1):
                raise InvalidInput(f"{name} must be a positive int or None")
        if ttl is not ...:
            ttl = check_ttl(ttl)
        self._ttl = ttl
        self.on_busy = on_busy
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.merge_conflicts: list[dict[str, Any]] = []
        self.shared_state = shared_state
        self.agent_history = agent_history
        if persist_memory is not None and not isinstance(persist_memory, bool):
            raise InvalidInput("persist_memory must be True, False or None (follow the agent's memory)")
        self.persist_memory = persist_memory
        self._context: dict[str, Any] = {"messages": None, "tokens": None, "policy": None}
        self._context_given = False  # settings this handle's turns store (else the stored ones apply)
        self.context_window, self.max_context_tokens = context_window, max_context_tokens
        self.context_policy = context_policy
        self.prompt_context = prompt_context
        self._runtime = runtime
        self._deployed_on: Runtime | None = None
        self._agent: Agent | None = None  # None until given or read from the store
        self._agents: dict[str, Agent] = {}
        self._definitions: dict[str, Any] | None = None  # what this handle's turns store
        if agent is not None or agents is not None:
            self._use(agent or next(iter(agents.values())), dict(agents or {}))  # type: ignore[union-attr]
        _ = self.runtime  # deploys the agents now: errors surface here, not on the first message
        known = [self._agent, *self._agents.values()] if self._agent is not None else [None]
        for a in {id(a): a for a in known}.values():
            self._memory(a)  # a memory that cannot work fails here, not on the first message

    def for_session(self, session_id: str, user_id: str | None = None) -> Session:
        """A handle like this one (its agents, runtime and settings) on another session.

        For callers that address many sessions alike (``repertory.batch``: a handle per job):
        it skips the checks this handle's creation already ran, ~1 µs against ~25 for a new
        handle. A memory scope that needs what the new session lacks fails on its first turn.
        """
        other = copy.copy(self)
        other.ref = SessionRef(session_id, user_id, self.ref.placement)
        other.merge_conflicts = []
        return other

    def _use(self, agent: Agent, agents: dict[str, Agent]) -> None:
        """Make ``agent`` (and ``agents``) this handle's, to be stored with its turns."""
        def check() -> dict[str, Any]:
            defs = {"agent": agent.to_dict(), "agents": {n: a.to_dict() for n, a in agents.items()}}
            return check_agent_definitions(defs, "the session's agents")

        # One agent: its checked definitions are shared by every handle made with it (read only).
        self._definitions = agent.remembered("session_definitions", check) if not agents else check()
        self._agent, self._agents = agent, agents
        self._deployed_on = None  # deployed on the next runtime access

    async def _aready(self) -> Agent:
        """This handle's agent, after reading the stored definitions if it was given none."""
        if self._agent is None:
            fields = await self.runtime.read_fields(self.ref)
            where = f"session {self.ref.key!r}"
            if fields.get("agent") is None:
                agent, agents = _default_agent(), {}
            else:
                agent = agent_from_definition(fields["agent"], where)
                agents = {n: agent if d == fields["agent"] else agent_from_definition(d, where)
                          for n, d in fields.get("agents", {}).items()}
            if self._agent is None:  # a concurrent first call may have read them already
                self._agent, self._agents = agent, agents
                self._deployed_on = None
                if not self._runtime_now().agents_in_process:
                    # Starting AgentActors blocks on Ray: not on the caller's event loop.
                    await asyncio.to_thread(lambda: self.runtime)
        _ = self.runtime  # deploys them (a restarted runtime too)
        return self._agent

    @property
    def agent(self) -> Agent:
        """The agent ``chat()`` uses: the one given, else the session's stored one (read from
        the store on first use). Setting it is like passing ``agent=``."""
        if self._agent is None:
            return run_sync(self._aready)
        return self._agent

    @agent.setter
    def agent(self, agent: Agent) -> None:
        if not isinstance(agent, Agent):
            raise InvalidInput(f"agent must be a repertory.Agent, got {type(agent).__name__}")
        self._use(agent, self.agents)

    @property
    def agents(self) -> dict[str, Agent]:
        """A multi-agent session's agents by name: the ones given, else the stored ones."""
        if self._agent is None:
            run_sync(self._aready)
        return self._agents

    async def aget_agent(self) -> Agent:
        """Async :attr:`agent`."""
        return await self._aready()

    # -- the window (repertory.agents.window) -------------------------------------------
    def _set_context(self, field: str, value: Any) -> None:
        new = dict(self._context, **{field: value})
        if value is not None:
            check_context_settings({**new, "policy": new["policy"] or "drop"}, f"the session's {field}")
            self._context_given = True
        self._context = new

    @property
    def context_window(self) -> int | None:
        """The last N messages that reach the prompt (None: as many as fit). Set here, it is
        stored with the next turn; a handle that sets none continues with the stored one."""
        return self._context["messages"]

    @context_window.setter
    def context_window(self, n: int | None) -> None:
        self._set_context("messages", n)

    @property
    def max_context_tokens(self) -> int | None:
        """The prompt's token limit (None: the agent's, else the model's input size)."""
        return self._context["tokens"]

    @max_context_tokens.setter
    def max_context_tokens(self, n: int | None) -> None:
        self._set_context("tokens", n)

    @property
    def context_policy(self) -> str | None:
        """What happens to messages past the window: ``"drop"`` or ``"summarize"``."""
        return self._context["policy"]

    @context_policy.setter
    def context_policy(self, policy: str | None) -> None:
        if policy is not None and policy not in CONTEXT_POLICIES:
            raise InvalidInput(f"context_policy must be one of {list(CONTEXT_POLICIES)}, got {policy!r:.40}")
        self._set_context("policy", policy)

    @property
    def on_busy(self) -> BusyPolicy:
        """What this handle's messages do when the session is processing another (``"enqueue"``,
        ``"reject"``, ``"interrupt"`` or ``"rollback"``; :mod:`repertory.host.busy`)."""
        return self._on_busy

    @on_busy.setter
    def on_busy(self, policy: BusyPolicy) -> None:
        self._on_busy = check_on_busy(policy)

    @property
    def prompt_context(self) -> str | None:
        """What the prompt's context carries besides ``agent.context``: None, ``"profile"``
        (the user profile, when set; the default) or ``"full"`` (:meth:`build_context`'s fields)."""
        return self._prompt_context

    @prompt_context.setter
    def prompt_context(self, kind: str | bool | None) -> None:
        kind = "full" if kind is True else None if kind is False else kind
        if kind not in PROMPT_CONTEXTS:
            raise InvalidInput(f"prompt_context must be one of {list(PROMPT_CONTEXTS)} (or True/False), got {kind!r:.40}")
        self._prompt_context = kind

    def _context_settings(self) -> dict[str, Any] | None:
        if not self._context_given:
            return None
        return {**self._context, "policy": self._context["policy"] or "drop"}

    def _runtime_now(self) -> Runtime:
        """The runtime this handle uses, without deploying its agents there."""
        return self._runtime if self._runtime is not None else get_runtime()

    @property
    def runtime(self) -> Runtime:
        """The runtime given at creation, else the running one (a restarted runtime is picked up)."""
        rt = self._runtime_now()
        if rt is not self._deployed_on:
            known = [self._agent, *self._agents.values()] if self._agent is not None else []
            for a in {id(a): a for a in known}.values():
                rt.ensure_agent(a)
            if self.shared_state is not None:
                rt.shared_state(self.shared_state.state_id)  # its actor exists before an agent looks it up
            self._deployed_on = rt
        return rt

    @property
    def session_id(self) -> str:
        return self.ref.session_id

    @property
    def user_id(self) -> str | None:
        return self.ref.user_id

    @property
    def placement(self) -> str:
        """``"pooled"`` (a host actor of the runtime's pool) or ``"dedicated"`` (its own)."""
        return self.ref.placement

    @property
    def ttl(self) -> float | None:
        """Seconds the session lives after its last access (None: until deleted)."""
        return self.runtime.settings.default_ttl if self._ttl is ... else self._ttl

    def __repr__(self) -> str:
        agent = "(stored)" if self._agent is None else repr(self._agent.name)  # no store read in a repr
        return f"Session(session_id={self.session_id!r}, user_id={self.user_id!r}, agent={agent})"

    # -- chat -------------------------------------------------------------------------
    def _request(self, message: str, agent: Agent, agent_name: str | None = None,
                 parallel: bool = False, turn_id: str | None = None, on_busy: str | None = None,
                 resume_from: int | None = None) -> TurnRequest:
        """The turn for ``agent`` (this handle's, ready: see :meth:`_aready`)."""
        rt = self.runtime
        settings = rt.settings
        check_message(message, settings.max_message_bytes)
        if turn_id is not None and (not isinstance(turn_id, str) or not 0 < len(turn_id) <= 128):
            raise InvalidInput("turn_id must be a str of 1 to 128 characters")
        rt.ensure_agent(agent)  # a no-op unless its definition changed (a new memory scorer)
        return TurnRequest(ref=self.ref, agent_key=agent.key, content=message, turn_id=turn_id or uuid.uuid4().hex,
                           replicas=agent.replicas or 1,
                           ttl=settings.default_ttl if self._ttl is ... else self._ttl, context=agent.context,
                           checkpoint_every=self.checkpoint_every, keep_checkpoints=self.keep_checkpoints,
                           agent_name=agent_name,
                           shared_state_id=self.shared_state.state_id if self.shared_state else None,
                           parallel=parallel, history_mode=self.agent_history,
                           history_window=agent.history_window, agents=self._definitions,
                           memory=turn_memory(agent.memory, self.persist_memory, settings.store, self.user_id,
                                              self.session_id),
                           context_settings=self._context_settings() if self._context_given else None,
                           prompt_context=self._prompt_context,
                           # only a turn that may call tools has steps worth journaling
                           journal=settings.journal_steps and not parallel
                           and bool(agent.tools or self.shared_state),
                           on_busy=self.on_busy if on_busy is None else check_on_busy(on_busy),
                           resume_from=resume_from, request_id=request_id())

    def _memory(self, agent: Agent | None) -> dict[str, Any] | None:
        return turn_memory(agent.memory if agent is not None else None, self.persist_memory,
                           self.runtime.settings.store, self.user_id, self.session_id)

    def _named_agent(self, name: str) -> Agent:
        try:
            return self._agents[name]
        except (KeyError, TypeError):
            raise InvalidInput(f"this session has no agent {name!r}; its agents are {sorted(self._agents)}") from None

    async def arun_agent(self, name: str, message: str) -> str:
        """Send ``message`` to the session's agent ``name``; its reply is recorded with that name.

        Several ``arun_agent`` calls on one session may run at once (``asyncio.gather``): the
        model calls run in parallel and each exchange is appended whole when it finishes.
        """
        await self._aready()
        agent = self._named_agent(name)
        reply = await self.runtime.turn(self._request(message, agent, name, parallel=True))
        return reply.content

    def run_agent(self, name: str, message: str) -> str:
        """Sync :meth:`arun_agent`."""
        return run_sync(self.arun_agent, name, message)

    async def achat(self, message: str, *, turn_id: str | None = None, on_busy: BusyPolicy | None = None) -> str:
        """Send ``message``; returns the agent's reply once the turn is durable.

        ``turn_id``: a caller that may resend a message (a batch re-run, a client retrying
        after a lost reply) gives it an id; a resent turn with the same id and message is
        answered from the store, not run again. ``on_busy``: this message's busy policy
        (default: the session's). Raises SessionBusy (``"reject"``) and TurnInterrupted (a
        later message interrupted or rolled back this one).
        """
        return (await self.aturn(message, turn_id=turn_id, on_busy=on_busy)).content

    def chat(self, message: str, *, turn_id: str | None = None, on_busy: BusyPolicy | None = None) -> str:
        """Sync :meth:`achat`."""
        return run_sync(functools.partial(self.achat, message, turn_id=turn_id, on_busy=on_busy))

    async def aturn(self, message: str, *, turn_id: str | None = None,
                    on_busy: BusyPolicy | None = None) -> TurnReply:
        """Like :meth:`achat`, returning the reply with its usage, message count, revision and
        whether it was answered from the store (``replayed``)."""
        agent = await self._aready()
        return await self.runtime.turn(self._request(message, agent, turn_id=turn_id, on_busy=on_busy))

    async def aturn_request(self, message: str, *, turn_id: str | None = None) -> TurnRequest:
        """The request :meth:`aturn` would send for ``message``, for callers that send many
        sessions' turns in one call (``repertory.batch``: ``Runtime.run_chains``)."""
        return self._request(message, await self._aready(), turn_id=turn_id)

    async def astream(self, message: str, *, turn_id: str | None = None, on_busy: BusyPolicy | None = None,
                      resume_from: str | None = None) -> AsyncIterator[StreamChunk]:
        """Send ``message``; yields the reply in chunks (``str``s with an ``event_id``). The turn
        is durable when iteration ends, and goes on if the reader stops early.

        ``turn_id`` and ``on_busy`` as for :meth:`achat` (a resent turn yields its stored reply).
        ``resume_from``: the ``event_id`` of the last chunk received; the same message is not
        sent again, the stream continues after that chunk (live, or from the stored reply once
        the turn is acknowledged, even after its host restarted). StreamNotResumable if the turn
        is neither running nor stored: resend without ``resume_from`` to run it.
        """
        async for item in self.astream_turn(message, turn_id=turn_id, on_busy=on_busy, resume_from=resume_from):
            if isinstance(item, StreamChunk):
                yield item

    async def astream_turn(self, message: str, *, turn_id: str | None = None, on_busy: BusyPolicy | None = None,
                            resume_from: str | None = None) -> AsyncIterator[StreamChunk | TurnReply]:
        """Like :meth:`astream`, yielding the durable :class:`TurnReply` after the chunks (as
        :meth:`aturn` returns it)."""
        offset: int | None = None
        if resume_from is not None:
            resumed, offset = parse_event_id(resume_from)
            if turn_id is not None and turn_id != resumed:
                raise InvalidInput(f"resume_from names turn {resumed!r}, not turn_id {turn_id!r}; pass one of them")
            turn_id = resumed
        agent = await self._aready()
        req = self._request(message, agent, turn_id=turn_id, on_busy=on_busy, resume_from=offset)
        at = offset or 0
        async for item in self.runtime.stream_turn(req):
            if isinstance(item, str):
                at += len(item)
                yield StreamChunk(item, event_id(req.turn_id, at))
            else:
                yield item

    def stream(self, message: str, *, turn_id: str | None = None, on_busy: BusyPolicy | None = None,
               resume_from: str | None = None) -> Iterator[StreamChunk]:
        """Sync :meth:`astream`."""
        return iterate_sync(functools.partial(self.astream, message, turn_id=turn_id, on_busy=on_busy,
                                              resume_from=resume_from))

    # -- history and state ------------------------------------------------------------
    async def aget_history(self) -> list[dict[str, Any]]:
        """All messages, oldest first: role, content, timestamp, and name/usage/tool fields."""
        return await self.runtime.get_history(self.ref)

    def get_history(self) -> list[dict[str, Any]]:
        return run_sync(self.aget_history)

    async def aset_history(self, messages: list[dict[str, Any]]) -> None:
        """Replace the history with ``messages`` (dicts with a role and content)."""
        await self.runtime.set_history(self.ref, messages)

    def set_history(self, messages: list[dict[str, Any]]) -> None:
        run_sync(self.aset_history, messages)

    async def aclear(self) -> None:
        """Forget the history (user data and metadata stay)."""
        await self.aset_history([])

    def clear(self) -> None:
        run_sync(self.aclear)

    async def aget_state(self) -> dict[str, Any]:
        """The whole state as a plain dict: history, user_data, user_profile, metadata, counters."""
        return await self.runtime.get_state(self.ref)

    def get_state(self) -> dict[str, Any]:
        return run_sync(self.aget_state)

    async def aset_state(self, state: dict[str, Any]) -> None:
        """Set history, user_data, user_profile, metadata (any subset) from a get_state() dict."""
        await self.runtime.set_state(self.ref, state)

    def set_state(self, state: dict[str, Any]) -> None:
        run_sync(self.aset_state, state)

    async def aexists(self) -> bool:
        """True if the store holds this session."""
        return await self.runtime.exists(self.ref)

    def exists(self) -> bool:
        return run_sync(self.aexists)

    async def adelete(self) -> bool:
        """Delete the session from the store; True if it existed."""
        return await self.runtime.delete(self.ref)

    def delete(self) -> bool:
        return run_sync(self.adelete)

    # -- tokens -----------------------------------------------------------------------
    def generate_session_token(self, ttl: float = DEFAULT_TTL, secret: Any = None, *,
                               allow_fork: bool = False) -> str:
        """A signed token for this session and user (:func:`repertory.tokens.issue`); the secret
        is ``secret``, else the handle's ``secret_key`` attribute, else ``$REPERTORY_SECRET_KEYS``."""
        return issue(self.session_id, self.user_id, ttl, secret or getattr(self, "secret_key", None),
                     allow_fork=allow_fork)

    def verify_session_token(self, token: str, secret: Any = None) -> bool:
        """True if ``token`` is genuine, unexpired and bound to this session and user."""
        try:
            verify(token, self.session_id, self.user_id, secret or getattr(self, "secret_key", None))
        except AccessDenied:  # InvalidToken included
            return False
        return True
