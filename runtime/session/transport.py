"""The HTTP transport of a remote session: httpx, pooled per event loop, with timeouts, retries
of idempotent calls on connection errors (tenacity), SSE (httpx-sse), and errors mapped back
onto :mod:`repertory.errors`.

A call is idempotent when it reads, or when it carries an operation id (a turn id for turns):
the server's runtime answers a resent operation from its records instead of applying it again,
so a request whose answer was lost on the way may be sent again.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator
from typing import Any

from repertory.errors import InvalidInput, RepertoryError, ServerError, ServerUnavailable, error_from_code
from repertory.logs import request_id

__all__ = ["Transport", "error_of_response"]


def error_of_response(status: int, body: bytes) -> RepertoryError:
    """The typed error of a server's error answer (``{"error": {"code", "message"}}``)."""
    try:
        err = json.loads(body)["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        text = body[:200].decode("utf-8", "replace")
        if status in (502, 503, 504):
            return ServerUnavailable(f"the server answered HTTP {status}: {text!r}; retry later")
        return ServerError(f"the server answered HTTP {status} without a repertory error body: {text!r}")
    return error_from_code(code, message, retry_after=err.get("retry_after"))


def _request_headers() -> dict[str, str]:
    """The request id bound around the call (repertory.logs.bound_request_id), as the server's
    X-Request-ID: its log lines and the hosts' lines of the turn then carry the caller's id."""
    rid = request_id()
    return {"X-Request-ID": rid} if rid else {}


class Transport:
    """Requests to one server (``base_url`` ends in ``/agent``) with one token.

    One ``httpx.AsyncClient`` per event loop (a client's pool belongs to the loop it runs on);
    the sync API of a remote session runs on repertory's portal loop, so it shares one pool.
    """

    def __init__(self, base_url: str, token: str | None, *, timeout: float = 60.0, retries: int = 3,
                 connect_timeout: float = 5.0) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise InvalidInput("remote sessions need the 'serve' extra: pip install 'repertory[serve]'") from exc
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise InvalidInput(f"agent_url must be an http(s) URL like http://host:8000/agent, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.retries = max(1, int(retries))
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    def _client(self) -> Any:
        import httpx

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = self._clients[loop] = httpx.AsyncClient(base_url=self.base_url, headers=self._headers,
                                                             timeout=self._timeout, limits=self._limits)
        return client

    def _retrying(self, idempotent: bool) -> Any:
        import httpx
        from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        # A lost answer to a request with an operation id is asked for again; anything else is
        # retried only when the request never reached the server.
        errors = httpx.TransportError if idempotent else (httpx.ConnectError, httpx.ConnectTimeout)
        return AsyncRetrying(retry=retry_if_exception_type(errors), stop=stop_after_attempt(self.retries),
                             wait=wait_exponential(multiplier=0.1, max=2.0), reraise=True)

    async def call(self, method: str, path: str, body: Any = None, *, idempotent: bool | None = None,
                   params: dict[str, Any] | None = None) -> Any:
        """Send one request; the decoded JSON answer, or the server's error raised as its type."""
        import httpx

        idem = method == "GET" if idempotent is None else idempotent
        try:
            async for attempt in self._retrying(idem):
                with attempt:
                    resp = await self._client().request(method, path, json=body, params=params,
                                                        headers=_request_headers())
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"cannot reach {self.base_url} ({type(exc).__name__}: {exc}); check that "
                                    "the server runs and the URL") from exc
        if resp.status_code >= 400:
            raise error_of_response(resp.status_code, resp.content)
        try:
            return resp.json()
        except ValueError:
            raise ServerError(f"{self.base_url}{path} did not answer JSON; is this a repertory server?") from None

    async def events(self, path: str, body: Any, *, last_event_id: str | None = None,
                     ) -> AsyncIterator[tuple[str, Any, str]]:
        """POST ``body`` and yield the server-sent events (name, decoded data, event id) of the
        answer; ``last_event_id`` asks the server to continue a stream after that event."""
        import httpx
        from httpx_sse import aconnect_sse

        headers = _request_headers()
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        try:
            async with aconnect_sse(self._client(), "POST", path, json=body, headers=headers) as source:
                resp = source.response
                if resp.status_code >= 400:
                    raise error_of_response(resp.status_code, await resp.aread())
                async for event in source.aiter_sse():
                    yield event.event, json.loads(event.data), event.id
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"the stream from {self.base_url} broke ({type(exc).__name__}: {exc}); "
                                    "continue it with resume_from=<the last chunk's event_id>, or resend with "
                                    "the same turn_id to get the stored reply") from exc

    async def aclose(self) -> None:
        """Close this loop's connection pool (others close with their loops)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
