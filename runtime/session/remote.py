"""A session that lives on a repertory server: ``Session(agent_url=..., session_id=..., token=...)``.

Same methods as a local session (sync and ``a``-prefixed async), each one HTTP request; state
stays on the server. The token comes from ``token=`` or ``$REPERTORY_TOKEN``. Every write
carries an operation id (turns a turn id), so a request resent after a lost answer is answered
by the server, never applied twice. Server errors raise the same types as a local session.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

from repertory._sync import iterate_sync, run_sync
from repertory.errors import ServerError, ServerUnavailable, SessionNotFound, error_from_code
from repertory.host.busy import BusyPolicy, check_on_busy
from repertory.ids import new_session_id, validate_session_id
from repertory.session.transport import Transport
from repertory.streams import StreamChunk, parse_event_id

__all__ = ["TOKEN_ENV", "RemoteSession"]

TOKEN_ENV = "REPERTORY_TOKEN"


def _op() -> str:
    return uuid.uuid4().hex


class RemoteSession:
    """A session on the server at ``agent_url`` (``http://host:8000/agent``); see the module doc.

    ``agent``: the name of one of the server's agents (an :class:`~repertory.Agent` is taken by
    its name); default: the server's first. ``timeout``: seconds per request; ``retries``:
    attempts of a request that may be resent. ``on_busy``: what a message does when the
    session is processing another (see :class:`~repertory.Session`); each call may override it.
    """

    def __init__(self, agent_url: str, session_id: str | None = None, token: str | None = None, *,
                 agent: Any = None, user_id: str | None = None, timeout: float = 60.0, retries: int = 3,
                 on_busy: BusyPolicy = "enqueue") -> None:
        self.session_id = validate_session_id(new_session_id() if session_id is None else session_id)
        self.agent_url = agent_url
        self.agent_name = getattr(agent, "name", agent)
        self.on_busy: BusyPolicy = check_on_busy(on_busy)
        self.user_id = user_id  # known to the server from the token; kept here for display
        self._token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self._timeout, self._retries = timeout, retries
        self._http = Transport(agent_url, self._token, timeout=timeout, retries=retries)
        self._path = f"/sessions/{quote(self.session_id, safe='')}"

    def __repr__(self) -> str:
        return f"RemoteSession(agent_url={self.agent_url!r}, session_id={self.session_id!r})"

    @property
    def token(self) -> str | None:
        return self._token

    # -- turns ------------------------------------------------------------------------
    def _body(self, message: str, turn_id: str | None, on_busy: BusyPolicy | None) -> dict[str, Any]:
        return {"message": message, "turn_id": turn_id or _op(), "agent": self.agent_name,
                "on_busy": self.on_busy if on_busy is None else check_on_busy(on_busy)}

    async def aturn(self, message: str, *, turn_id: str | None = None,
                    on_busy: BusyPolicy | None = None) -> dict[str, Any]:
        """Send ``message``; the reply with usage, message count, revision and ``replayed``."""
        return await self._http.call("POST", self._path + "/chat", self._body(message, turn_id, on_busy),
                                     idempotent=True)

    async def achat(self, message: str, *, turn_id: str | None = None, on_busy: BusyPolicy | None = None) -> str:
        """Send ``message``; the agent's reply once the turn is durable on the server. Raises
        SessionBusy (``on_busy="reject"``) and TurnInterrupted as a local session does."""
        return (await self.aturn(message, turn_id=turn_id, on_busy=on_busy))["reply"]

    def chat(self, message: str, *, turn_id: str | None = None, on_busy: BusyPolicy | None = None) -> str:
        return run_sync(functools.partial(self.achat, message, turn_id=turn_id, on_busy=on_busy))

    async def astream(self, message: str, *, turn_id: str | None = None, on_busy: BusyPolicy | None = None,
                      resume_from: str | None = None) -> AsyncIterator[StreamChunk]:
        """Send ``message``; yields the reply in chunks (server-sent events), each with its
        ``event_id``. ``resume_from`` (an event id) continues a stream after a reconnect: it is
        sent as ``Last-Event-ID`` with the same message, and the turn is not run again.

        A stream whose connection breaks is reconnected, as a browser's EventSource does (up to
        ``retries`` attempts): with the last event id received, so no chunk is lost or repeated.
        """
        if resume_from is not None:
            resumed, _ = parse_event_id(resume_from)
            turn_id = turn_id or resumed
        body = self._body(message, turn_id, on_busy)
        last = resume_from
        for attempt in range(1, self._retries + 1):
            try:
                async for event, data, event_id in self._http.events(self._path + "/stream", body,
                                                                     last_event_id=last):
                    if event == "delta":
                        last = event_id
                        yield StreamChunk(data["text"], event_id)
                    elif event == "error":
                        err = data["error"]
                        raise error_from_code(err["code"], err["message"])
                    elif event == "done":
                        return
            except ServerUnavailable:
                if attempt == self._retries:
                    raise
                await asyncio.sleep(0.1 * attempt)
                continue
            raise ServerError("the server ended the stream without its done event; call astream again with "
                              "resume_from=<the last chunk's event_id>")

    def stream(self, message: str, *, turn_id: str | None = None, on_busy: BusyPolicy | None = None,
               resume_from: str | None = None) -> Iterator[StreamChunk]:
        return iterate_sync(functools.partial(self.astream, message, turn_id=turn_id, on_busy=on_busy,
                                              resume_from=resume_from))

    # -- the session ------------------------------------------------------------------
    async def acreate(self, user_data: dict[str, Any] | None = None,
                      metadata: dict[str, Any] | None = None) -> bool:
        """Create the session on the server (chatting creates it too); True if it is new."""
        body = {"user_data": user_data, "metadata": metadata, "op_id": _op()}
        return (await self._http.call("PUT", self._path, body, idempotent=True))["created"]

    def create(self, user_data: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> bool:
        return run_sync(self.acreate, user_data, metadata)

    async def ainfo(self) -> dict[str, Any]:
        """user_data, user_profile, metadata, times and counters (no history)."""
        return await self._http.call("GET", self._path)

    def info(self) -> dict[str, Any]:
        return run_sync(self.ainfo)

    async def aexists(self) -> bool:
        try:
            await self.ainfo()
        except SessionNotFound:
            return False
        return True

    def exists(self) -> bool:
        return run_sync(self.aexists)

    async def adelete(self) -> bool:
        """Delete the session on the server; True if it existed."""
        return (await self._http.call("DELETE", self._path, params={"op_id": _op()}, idempotent=True))["deleted"]

    def delete(self) -> bool:
        return run_sync(self.adelete)

    # -- history and state ------------------------------------------------------------
    async def aget_history(self) -> list[dict[str, Any]]:
        return await self._http.call("GET", self._path + "/history")

    def get_history(self) -> list[dict[str, Any]]:
        return run_sync(self.aget_history)

    async def aset_history(self, messages: list[dict[str, Any]]) -> None:
        await self._http.call("PUT", self._path + "/history", {"messages": messages, "op_id": _op()},
                              idempotent=True)

    def set_history(self, messages: list[dict[str, Any]]) -> None:
        run_sync(self.aset_history, messages)

    async def aget_state(self) -> dict[str, Any]:
        return await self._http.call("GET", self._path + "/state")

    def get_state(self) -> dict[str, Any]:
        return run_sync(self.aget_state)

    async def aset_state(self, state: dict[str, Any]) -> None:
        await self._http.call("PUT", self._path + "/state", {"state": state, "op_id": _op()}, idempotent=True)

    def set_state(self, state: dict[str, Any]) -> None:
        run_sync(self.aset_state, state)

    async def aupdate_user_data(self, **values: Any) -> dict[str, Any]:
        """Merge ``values`` into user_data; returns the new user_data."""
        body = {"field": "user_data", "values": values, "op_id": _op()}
        return await self._http.call("POST", self._path + "/fields", body, idempotent=True)

    def update_user_data(self, **values: Any) -> dict[str, Any]:
        return run_sync(functools.partial(self.aupdate_user_data, **values))

    async def aupdate_profile(self, key: str, value: Any) -> None:
        body = {"field": "user_profile", "values": {key: value}, "op_id": _op()}
        await self._http.call("POST", self._path + "/fields", body, idempotent=True)

    def update_profile(self, key: str, value: Any) -> None:
        run_sync(self.aupdate_profile, key, value)

    # -- checkpoints, versions, forks -------------------------------------------------
    async def acreate_checkpoint(self, label: str | None = None) -> int:
        body = {"label": label, "op_id": _op()}
        return (await self._http.call("POST", self._path + "/checkpoints", body, idempotent=True))["id"]

    def create_checkpoint(self, label: str | None = None) -> int:
        return run_sync(self.acreate_checkpoint, label)

    async def arestore_checkpoint(self, checkpoint: int | str) -> None:
        path = f"{self._path}/checkpoints/{quote(str(checkpoint), safe='')}/restore"
        await self._http.call("POST", path, {"op_id": _op()}, idempotent=True)

    def restore_checkpoint(self, checkpoint: int | str) -> None:
        run_sync(self.arestore_checkpoint, checkpoint)

    async def alist_checkpoints(self) -> list[dict[str, Any]]:
        return await self._http.call("GET", self._path + "/checkpoints")

    def list_checkpoints(self) -> list[dict[str, Any]]:
        return run_sync(self.alist_checkpoints)

    async def asave_version(self, description: str = "") -> int:
        body = {"description": description, "op_id": _op()}
        return (await self._http.call("POST", self._path + "/versions", body, idempotent=True))["version"]

    def save_version(self, description: str = "") -> int:
        return run_sync(self.asave_version, description)

    async def arestore_version(self, version: int) -> bool:
        return (await self._http.call("POST", f"{self._path}/versions/{int(version)}/restore", None))["restored"]

    def restore_version(self, version: int) -> bool:
        return run_sync(self.arestore_version, version)

    async def alist_versions(self) -> list[dict[str, Any]]:
        return await self._http.call("GET", self._path + "/versions")

    def list_versions(self) -> list[dict[str, Any]]:
        return run_sync(self.alist_versions)

    async def afork(self, new_session_id: str | None = None, at: int | str | None = None) -> RemoteSession:
        """A new session on the server sharing this one's past; needs a token that allows forks.
        The fork comes with its own token (same user, same expiry)."""
        out = await self._http.call("POST", self._path + "/fork", {"new_session_id": new_session_id, "at": at})
        return RemoteSession(self.agent_url, out["session_id"], out["token"] or self._token, agent=self.agent_name,
                             user_id=out.get("user_id"), timeout=self._timeout, retries=self._retries)

    def fork(self, new_session_id: str | None = None, at: int | str | None = None) -> RemoteSession:
        return run_sync(self.afork, new_session_id, at)

    async def aanalytics(self) -> dict[str, Any]:
        return await self._http.call("GET", self._path + "/analytics")

    def analytics(self) -> dict[str, Any]:
        return run_sync(self.aanalytics)

    async def aclose(self) -> None:
        await self._http.aclose()

    def close(self) -> None:
        run_sync(self.aclose)
