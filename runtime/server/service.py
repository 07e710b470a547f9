"""What the HTTP endpoints do, as plain async methods over session handles (no HTTP here).

Each method takes the verified :class:`~repertory.server.auth.Caller` and a session id, and
acts on the session of the caller's user: the user comes from the token. Writes that a client
may resend take its operation id (a turn id for turns), so a resend is answered, not applied
again, by the runtime's exactly-once records.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from repertory.admin.usage import session_usage
from repertory.agents.agent import Agent
from repertory.errors import AccessDenied, InvalidInput, ServerError, SessionNotFound
from repertory.host.api import TurnReply
from repertory.host.busy import BusyPolicy
from repertory.runtimes.base import Runtime
from repertory.runtimes.current import get_runtime
from repertory.server.auth import Caller
from repertory.session.handle import Session
from repertory.streams import StreamChunk

__all__ = ["SessionService"]


class SessionService:
    """Session operations for the server, given its agents (by name; the first is the default)."""

    def __init__(self, agents: dict[str, Agent], runtime: Runtime | None = None, *,
                 max_handles: int = 10_000) -> None:
        self.agents = dict(agents)
        self._runtime = runtime
        # Handles are kept (LRU): a handle without agent= reads the session's stored agent once,
        # not on every request. A handle holds ids only; the state is in the runtime.
        self._handles: OrderedDict[tuple[str | None, str, str | None], Session] = OrderedDict()
        self._max_handles = max_handles

    @property
    def runtime(self) -> Runtime:
        return self._runtime if self._runtime is not None else get_runtime()

    def agent(self, name: str | None) -> Agent | None:
        """The named agent, the default one, or None (continue with the session's stored agent)."""
        if name is None:
            return next(iter(self.agents.values()), None)
        try:
            return self.agents[name]
        except KeyError:
            raise InvalidInput(f"this server has no agent {name!r}; its agents are {sorted(self.agents)}") from None

    def handle(self, caller: Caller, session_id: str, agent: str | None = None) -> Session:
        key = (caller.user_id, session_id, agent)
        s = self._handles.get(key)
        if s is None or s.runtime is not self.runtime:
            s = Session(session_id, agent=self.agent(agent), user_id=caller.user_id, runtime=self.runtime)
            self._handles[key] = s
            if len(self._handles) > self._max_handles:
                self._handles.popitem(last=False)
        else:
            self._handles.move_to_end(key)
        return s

    # -- sessions ---------------------------------------------------------------------
    async def create(self, caller: Caller, session_id: str, user_data: dict[str, Any] | None,
                     metadata: dict[str, Any] | None, op_id: str | None) -> dict[str, Any]:
        s = self.handle(caller, session_id)
        existed = await s.aexists()
        update: dict[str, Any] = {}
        if user_data is not None:
            update["user_data"] = user_data
        if metadata is not None:
            update["metadata"] = metadata
        if update or not existed:
            await s.runtime.set_state(s.ref, update, op_id)
        return {"session_id": session_id, "user_id": caller.user_id, "created": not existed}

    async def info(self, caller: Caller, session_id: str) -> dict[str, Any]:
        s = self.handle(caller, session_id)
        if not await s.aexists():
            raise SessionNotFound(f"session {session_id!r} does not exist; create it or chat to start it")
        fields = await s.runtime.read_fields(s.ref)
        agent = self.agent(None)
        stored = await session_usage(s.runtime, s.ref, agent.memory if agent is not None else None)
        return {"session_id": session_id, "user_id": caller.user_id,
                **{k: v for k, v in fields.items() if k in ("user_data", "user_profile", "metadata", "created_at",
                                                            "updated_at", "turns", "ttl")},
                "bytes_stored": stored.to_dict()}

    async def delete(self, caller: Caller, session_id: str, op_id: str | None) -> dict[str, Any]:
        s = self.handle(caller, session_id)
        return {"deleted": await s.runtime.delete(s.ref, None, op_id)}

    # -- turns ------------------------------------------------------------------------
    async def chat(self, caller: Caller, session_id: str, message: str, turn_id: str | None,
                   agent: str | None, on_busy: BusyPolicy | None = None) -> dict[str, Any]:
        reply = await self.handle(caller, session_id, agent).aturn(message, turn_id=turn_id, on_busy=on_busy)
        return {"reply": reply.content, "usage": reply.usage, "n_messages": reply.n_messages,
                "revision": reply.revision, "replayed": reply.replayed}

    def stream(self, caller: Caller, session_id: str, message: str, turn_id: str | None,
               agent: str | None, on_busy: BusyPolicy | None = None,
               resume_from: str | None = None) -> AsyncIterator[StreamChunk | TurnReply]:
        """The turn's chunks (with event ids), then its durable reply; ``resume_from`` an event id."""
        return self.handle(caller, session_id, agent).astream_turn(message, turn_id=turn_id, on_busy=on_busy,
                                                                    resume_from=resume_from)

    # -- state ------------------------------------------------------------------------
    async def history(self, caller: Caller, session_id: str) -> list[dict[str, Any]]:
        return await self.handle(caller, session_id).aget_history()

    async def set_history(self, caller: Caller, session_id: str, messages: list[dict[str, Any]],
                          op_id: str | None) -> dict[str, Any]:
        s = self.handle(caller, session_id)
        return {"revision": await s.runtime.set_history(s.ref, messages, op_id)}

    async def state(self, caller: Caller, session_id: str) -> dict[str, Any]:
        return await self.handle(caller, session_id).aget_state()

    async def set_state(self, caller: Caller, session_id: str, state: dict[str, Any],
                        op_id: str | None) -> dict[str, Any]:
        s = self.handle(caller, session_id)
        return {"revision": await s.runtime.set_state(s.ref, state, op_id)}

    async def update_fields(self, caller: Caller, session_id: str, field: str, values: dict[str, Any],
                            op_id: str | None) -> dict[str, Any]:
        if field not in ("user_data", "user_profile", "metadata"):
            raise InvalidInput("field must be user_data, user_profile or metadata")
        s = self.handle(caller, session_id)
        return await s.runtime.update_fields(s.ref, field, values, False, op_id)

    # -- checkpoints, versions, forks -------------------------------------------------
    async def checkpoints(self, caller: Caller, session_id: str) -> list[dict[str, Any]]:
        return await self.handle(caller, session_id).alist_checkpoints()

    async def create_checkpoint(self, caller: Caller, session_id: str, label: str | None,
                                op_id: str | None) -> dict[str, Any]:
        s = self.handle(caller, session_id)
        info = await s.runtime.create_checkpoint(s.ref, label or "", "checkpoint", None, op_id)
        return {"id": info["id"]}

    async def restore_checkpoint(self, caller: Caller, session_id: str, checkpoint: int | str,
                                 op_id: str | None) -> dict[str, Any]:
        s = self.handle(caller, session_id)
        return {"revision": await s.runtime.restore_checkpoint(s.ref, checkpoint, "checkpoint", op_id)}

    async def versions(self, caller: Caller, session_id: str) -> list[dict[str, Any]]:
        return await self.handle(caller, session_id).alist_versions()

    async def save_version(self, caller: Caller, session_id: str, description: str,
                           op_id: str | None) -> dict[str, Any]:
        s = self.handle(caller, session_id)
        return {"version": (await s.runtime.create_checkpoint(s.ref, description, "version", None, op_id))["id"]}

    async def restore_version(self, caller: Caller, session_id: str, version: int) -> dict[str, Any]:
        return {"restored": await self.handle(caller, session_id).arestore_version(version)}

    async def fork(self, caller: Caller, session_id: str, new_session_id: str | None,
                   at: int | str | None) -> str:
        """Fork into a new session of the same user; only a token that allows forks may.

        A token is bound to one session id, so a fork needs ``allow_fork`` in its claims: the
        fork is written under the caller's user and never over an existing session (an import
        that refuses to overwrite), so a fork can neither read nor replace another user's
        session, nor one of the same user's other sessions.
        """
        if not caller.allow_fork:
            raise AccessDenied("this token does not allow forks; ask for a token issued with allow_fork")
        fork = await self.handle(caller, session_id).afork(new_session_id, at)
        return fork.session_id

    async def analytics(self, caller: Caller, session_id: str) -> dict[str, Any]:
        s = self.handle(caller, session_id)
        method = getattr(s, "aanalytics", None)
        if method is None:
            raise ServerError("this server's repertory has no session analytics yet; upgrade it")
        return await method()
