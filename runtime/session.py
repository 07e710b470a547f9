"""The Session handle: what users hold. It keeps only ids and placement; state is in the store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from types import EllipsisType
from typing import Any

from ._sync import iterate_sync, run_sync
from .agent import Agent
from .api import get_runtime
from .errors import InvalidInput
from .ids import new_session_id, validate_session_id, validate_user_id
from .runtime import Runtime
from .session_ops import SessionOpsMixin
from .session_state import TurnReply, TurnRequest, check_message, storage_key

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
        self.agent = agent if agent is not None else Agent("Assistant", "You are a helpful assistant.")
        self._runtime = runtime
        self._key = storage_key(self.session_id, self.user_id)
        self.runtime.ensure_agent(self.agent)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = get_runtime()
        return self._runtime

    @property
    def ttl(self) -> float | None:
        """Seconds the session lives after its last access (None: until deleted)."""
        return self.runtime.settings.default_ttl if self._ttl is ... else self._ttl

    def __repr__(self) -> str:
        return f"Session(session_id={self.session_id!r}, user_id={self.user_id!r}, agent={self.agent.name!r})"

    # -- chat -------------------------------------------------------------------------
    def _request(self, message: str) -> TurnRequest:
        check_message(message, self.runtime.settings.max_message_bytes)
        return TurnRequest(key=self._key, session_id=self.session_id, user_id=self.user_id,
                           agent_key=self.agent.key, content=message, turn_id=uuid.uuid4().hex,
                           replicas=self.agent.replicas or 1, ttl=self.ttl, context=self.agent.context,
                           checkpoint_every=self.checkpoint_every, keep_checkpoints=self.keep_checkpoints)

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
