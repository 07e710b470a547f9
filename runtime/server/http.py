"""HTTP plumbing of the server: error bodies, request ids and access logs, body limits, rate limits.

Every error answer is ``{"error": {"code", "message", "request_id"}}``, where ``code`` is the
name of the :mod:`repertory.errors` class a remote session raises again.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from repertory import errors
from repertory.errors import RateLimited, RepertoryError
from repertory.logs import bound_request_id, get_logger

__all__ = ["AccessLogMiddleware", "BodyLimitMiddleware", "RateLimiter", "error_response", "install_error_handlers",
           "status_of"]

log = get_logger("repertory.server")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# The most specific class listed wins (looked up along the error's MRO).
_STATUS: dict[type[RepertoryError], int] = {
    errors.InvalidToken: 401,
    errors.AccessDenied: 403,
    errors.MessageTooLarge: 413,
    errors.InvalidInput: 400,
    errors.SessionNotFound: 404,
    errors.SessionFileNotFound: 404,
    errors.ConcurrentUpdate: 409,
    errors.SessionBusy: 409,
    errors.TurnInterrupted: 409,
    errors.StreamNotResumable: 410,
    errors.RateLimited: 429,
    errors.ModelError: 502,
    errors.StoreUnavailable: 503,
    errors.RuntimeNotReady: 503,
    errors.ServerUnavailable: 503,
}
_CODE_OF_STATUS = {401: "InvalidToken", 403: "AccessDenied", 404: "NotFound", 405: "MethodNotAllowed",
                   413: "MessageTooLarge", 422: "InvalidInput", 429: "RateLimited"}


def status_of(exc: RepertoryError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "")


def error_response(status: int, code: str, message: str, request_id: str = "",
                   headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "request_id": request_id, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to a structured error body; nothing else reaches the client."""

    @app.exception_handler(RepertoryError)
    async def on_repertory_error(request: Request, exc: RepertoryError) -> JSONResponse:
        status = status_of(exc)
        headers, extra = None, {}
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))}
            extra["retry_after"] = exc.retry_after
        if status >= 500:
            log.warning("request_failed", request_id=_request_id(request), error=type(exc).__name__, message=str(exc))
        return error_response(status, errors.error_code(exc), str(exc), _request_id(request), headers, **extra)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors()]
        where = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details[:5])
        return error_response(422, "InvalidInput", f"the request is not valid: {where}", _request_id(request),
                              details=details)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODE_OF_STATUS.get(exc.status_code, "ServerError" if exc.status_code >= 500 else "InvalidInput")
        return error_response(exc.status_code, code, str(exc.detail), _request_id(request),
                              getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request_crashed", request_id=_request_id(request), error=type(exc).__name__, exc_info=exc)
        return error_response(500, "ServerError", f"the server failed ({type(exc).__name__}); its log has the "
                              "details under this request id", _request_id(request))


class AccessLogMiddleware:
    """A request id for every request (``X-Request-ID``, kept if the client sent a sane one) and
    one structlog line per request: method, path, status, duration. Headers are never logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        start, status = time.perf_counter(), 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            with bound_request_id(request_id):  # the server's lines and the hosts' of its turns
                await self.app(scope, receive, send_with_id)
        finally:
            log.info("http_request", request_id=request_id, method=scope["method"], path=scope["path"],
                     status=status, ms=round((time.perf_counter() - start) * 1000, 2),
                     client=(scope.get("client") or ("", 0))[0])


class BodyLimitMiddleware:
    """413 for a body larger than ``max_bytes``, by its Content-Length or as it arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        too_large = f"the request body is larger than this server's limit of {self.max_bytes} bytes; send less"
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            rid = scope.get("state", {}).get("request_id", "")
            await error_response(413, "MessageTooLarge", too_large, rid)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise StarletteHTTPException(413, too_large)
            return message

        await self.app(scope, limited, send)


class RateLimiter:
    """Requests per key (a token) in a moving window, with the ``limits`` package, in memory:
    each server process (each Ray Serve replica) counts on its own."""

    def __init__(self, rate: str | None) -> None:
        self.item = None
        if rate:
            from limits import parse
            from limits.storage import MemoryStorage
            from limits.strategies import MovingWindowRateLimiter

            try:
                self.item = parse(rate)
            except ValueError as exc:
                raise errors.InvalidInput(f"rate_limit {rate!r} is not like '120/minute': {exc}") from None
            self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, key: str) -> None:
        if self.item is None or self.limiter.hit(self.item, key):
            return
        reset, _ = self.limiter.get_window_stats(self.item, key)
        raise RateLimited(f"too many requests with this token (limit {self.item}); wait and send again",
                          retry_after=max(0.0, reset - time.time()))
