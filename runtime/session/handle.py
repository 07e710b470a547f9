"""The Session handle: what users hold. It keeps only ids and placement; state is in the store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from types import EllipsisType
from typing import Any

from repertory._sync import iterate_sync, run_sync
from repertory.agents.agent import Agent
from repertory.runtimes.current import get_runtime
from repertory.errors import InvalidInput
from repertory.ids import new_session_id, validate_session_id, validate_user_id
from repertory.runtimes.local import Runtime
from repertory.session.ops import SessionOpsMixin
from repertory.shared.handle import SharedState
from repertory.state.session_state import TurnReply, TurnRequest, check_message, storage_key

__all__ = ["Session"]


class Session(SessionOpsMixin):
    """A persistent conversation with an agent.

    ``Session(session_id=None, agent=None, user_id=None)``: the id defaults to a uuid4; the
    same id (and user) continues the same conversation from any process, after restarts.
    Every method has an async twin prefixed with ``a`` (``achat``, ``aget_history``, ...);
    the sync ones work with or without a running event loop.
    ``placement="dedicated"`` runs this session in its own Ray actor instead of a shared host.
    """

    def __init__(
        self,
        session_id: str | None = None,
        agent: Agent | None = None,
        user_id: str | None = None,
        *,
        agents: dict[str, Agent] | None = None,
        shared_state: SharedState | None = None,
        agent_history: str = "shared",
        placement: str = "shared",
        ttl: float | None | EllipsisType = ...,
        checkpoint_every: int | None = None,
        keep_checkpoints: int | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        self.session_id = new_session_id() if session_id is None else validate_session_id(session_id)
        self.user_id = validate_user_id(user_id)
        if placement not in ("shared", "dedicated"):
            raise InvalidInput(f"placement must be 'shared' or 'dedicated', not {placement!r}")
        if agent is not None and not isinstance(agent, Agent):
            raise InvalidInput(f"agent must be a repertory.Agent, got {type(agent).__name__}")
        if agents is not None:
            if not isinstance(agents, dict) or not agents or not all(
                    isinstance(k, str) and isinstance(v, Agent) for k, v in agents.items()):
                raise InvalidInput("agents must be a non-empty dict of name -> repertory.Agent")
        if shared_state is not None and not isinstance(shared_state, SharedState):
            raise InvalidInput(f"shared_state must be a repertory.SharedState, got {type(shared_state).__name__}")
        if agent_history not in ("shared", "own"):
            raise InvalidInput("agent_history must be 'shared' (whole transcript) or 'own' (the agent's turns)")
        for name, n in (("checkpoint_every", checkpoint_every), ("keep_checkpoints", keep_checkpoints)):
            if n is not None and (not isinstance(n, int) or n < 1):
                raise InvalidInput(f"{name} must be a positive int or None")
        if ttl is not ... and ttl is not None and (not isinstance(ttl, (int, float)) or ttl <= 0):
            raise InvalidInput("ttl must be a positive number of seconds, or None to keep the session")
        self.placement = placement
        self._ttl = ttl
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.merge_conflicts: list[dict[str, Any]] = []
        self.agents: dict[str, Agent] = dict(agents or {})
        if agent is None:
            agent = next(iter(self.agents.values())) if self.agents else Agent("Assistant", "You are a helpful assistant.")
        self.agent = agent
        self.shared_state = shared_state
        self.agent_history = agent_history
        self._runtime = runtime
        self._deployed_on: Runtime | None = None
        self._key = storage_key(self.session_id, self.user_id)
        _ = self.runtime  # deploys the agents now: errors surface here, not on the first message

    @property
    def runtime(self) -> Runtime:
        """The runtime given at creation, else the running one (a restarted runtime is picked up)."""
        rt = self._runtime if self._runtime is not None else get_runtime()
        if rt is not self._deployed_on:
            for a in {id(a): a for a in [self.agent, *self.agents.values()]}.values():
                rt.ensure_agent(a)
            self._deployed_on = rt
        return rt

    @property
    def ttl(self) -> float | None:
        """Seconds the session lives after its last access (None: until deleted)."""
        return self.runtime.settings.default_ttl if self._ttl is ... else self._ttl

    def __repr__(self) -> str:
        return f"Session(session_id={self.session_id!r}, user_id={self.user_id!r}, agent={self.agent.name!r})"

    # -- chat -------------------------------------------------------------------------
    def _request(self, message: str, agent: Agent | None = None, agent_name: str | None = None,
                 parallel: bool = False) -> TurnRequest:
        check_message(message, self.runtime.settings.max_message_bytes)
        agent = agent or self.agent
        return TurnRequest(key=self._key, session_id=self.session_id, user_id=self.user_id,
                           agent_key=agent.key, content=message, turn_id=uuid.uuid4().hex,
                           replicas=agent.replicas or 1, ttl=self.ttl, context=agent.context,
                           checkpoint_every=self.checkpoint_every, keep_checkpoints=self.keep_checkpoints,
                           agent_name=agent_name,
                           shared_state_id=self.shared_state.state_id if self.shared_state else None,
                           parallel=parallel, history_mode=self.agent_history,
                           history_window=agent.history_window)

    def _named_agent(self, name: str) -> Agent:
        try:
            return self.agents[name]
        except (KeyError, TypeError):
            raise InvalidInput(f"this session has no agent {name!r}; its agents are {sorted(self.agents)}") from None

    async def arun_agent(self, name: str, message: str) -> str:
        """Send ``message`` to the session's agent ``name``; its reply is recorded with that name.

        Several ``arun_agent`` calls on one session may run at once (``asyncio.gather``): the
        model calls run in parallel and each exchange is appended whole when it finishes.
        """
        agent = self._named_agent(name)
        reply = await self.runtime.turn(self._request(message, agent, name, parallel=True), self.placement)
        return reply.content

    def run_agent(self, name: str, message: str) -> str:
        """Sync :meth:`arun_agent`."""
        return run_sync(self.arun_agent, name, message)

    async def achat(self, message: str) -> str:
        """Send ``message``; returns the agent's reply once the turn is durable."""
        reply = await self.runtime.turn(self._request(message), self.placement)
        return reply.content

    def chat(self, message: str) -> str:
        """Sync :meth:`achat`."""
        return run_sync(self.achat, message)

    async def aturn(self, message: str) -> TurnReply:
        """Like :meth:`achat`, returning the reply with usage, message count and version."""
        return await self.runtime.turn(self._request(message), self.placement)

    async def astream(self, message: str) -> AsyncIterator[str]:
        """Send ``message``; yields the reply in chunks. The turn is durable when iteration ends."""
        async for item in self.runtime.stream_turn(self._request(message), self.placement):
            if isinstance(item, str):
                yield item

    def stream(self, message: str) -> Iterator[str]:
        """Sync :meth:`astream`."""
        return iterate_sync(self.astream, message)

    # -- history and state ------------------------------------------------------------
    async def _call(self, method: str, *args: Any) -> Any:
        return await self.runtime.call(self._key, self.placement, method, *args)

    async def aget_history(self) -> list[dict[str, Any]]:
        """All messages, oldest first: role, content, timestamp, and name/usage/tool fields."""
        return await self._call("history", self._key, self.session_id, self.user_id)

    def get_history(self) -> list[dict[str, Any]]:
        return run_sync(self.aget_history)

    async def aset_history(self, messages: list[dict[str, Any]]) -> None:
        """Replace the history with ``messages`` (dicts with a role and content)."""
        await self._call("replace", self._key, self.session_id, self.user_id, messages, None)

    def set_history(self, messages: list[dict[str, Any]]) -> None:
        run_sync(self.aset_history, messages)

    async def aclear(self) -> None:
        """Forget the history (user data and metadata stay)."""
        await self.aset_history([])

    def clear(self) -> None:
        run_sync(self.aclear)

    async def aget_state(self) -> dict[str, Any]:
        """The whole state as a plain dict: history, user_data, user_profile, metadata, counters."""
        return await self._call("get_state", self._key, self.session_id, self.user_id)

    def get_state(self) -> dict[str, Any]:
        return run_sync(self.aget_state)

    async def aset_state(self, state: dict[str, Any]) -> None:
        """Set history, user_data, user_profile, metadata (any subset) from a get_state() dict."""
        await self._op("set_state", state)

    def set_state(self, state: dict[str, Any]) -> None:
        run_sync(self.aset_state, state)

    async def aexists(self) -> bool:
        """True if the store holds this session."""
        return await self._call("exists", self._key)

    def exists(self) -> bool:
        return run_sync(self.aexists)

    async def adelete(self) -> bool:
        """Delete the session from the store; True if it existed."""
        return await self._call("delete", self._key)

    def delete(self) -> bool:
        return run_sync(self.adelete)
