"""The HTTP API over the runtime: :func:`create_app` builds the FastAPI app ``repertory serve`` runs.

Under ``/agent`` (the seed page's URL): ``health``, ``ready``; ``tokens`` and ``sessions``
(admin key); ``sessions/{id}`` (PUT create, GET, DELETE), ``/chat``, ``/stream`` (SSE),
``/history``, ``/state``, ``/fields``, ``/checkpoints``, ``/versions``, ``/fork``,
``/analytics`` (where sessions have ``aanalytics``) (a session token). The schema is at ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from repertory import errors
from repertory.logs import configure_logging, get_logger
from repertory.server.auth import Authenticator, Caller
from repertory.server.config import ServerConfig
from repertory.server.http import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    RateLimiter,
    install_error_handlers,
    status_of,
)
from repertory.server.service import SessionService
from repertory.host.api import TurnReply
from repertory.server.ui_routes import include_inspector
from repertory.session.handle import Session

__all__ = ["create_app"]

log = get_logger("repertory.server")

OpId = Annotated[str | None, Field(default=None, min_length=1, max_length=128,
                                   description="Resend the same id to have a lost answer repeated, not re-applied")]
SessionId = Annotated[str, Field(min_length=1, max_length=128)]


class CreateBody(BaseModel):
    user_data: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    op_id: OpId = None


class ChatBody(BaseModel):
    message: str
    turn_id: OpId = None
    agent: str | None = Field(default=None, max_length=128, description="One of the server's agents")
    on_busy: Literal["enqueue", "reject", "interrupt", "rollback"] | None = Field(
        default=None, description="What this message does if the session is processing another (default: enqueue); "
                                  "reject answers 409 SessionBusy")
    resume_from: str | None = Field(default=None, max_length=160, description=(
        "/stream only: continue the stream after this event id (as the Last-Event-ID header does)"))


class HistoryBody(BaseModel):
    messages: list[dict[str, Any]]
    op_id: OpId = None


class StateBody(BaseModel):
    state: dict[str, Any]
    op_id: OpId = None


class FieldsBody(BaseModel):
    field: str = "user_data"
    values: dict[str, Any]
    op_id: OpId = None


class CheckpointBody(BaseModel):
    label: str | None = Field(default=None, max_length=1000)
    op_id: OpId = None


class RestoreBody(BaseModel):
    op_id: OpId = None


class VersionBody(BaseModel):
    description: str = Field(default="", max_length=1000)
    op_id: OpId = None


class ForkBody(BaseModel):
    new_session_id: SessionId | None = None
    at: int | str | None = None


class TokenBody(BaseModel):
    session_id: SessionId
    user_id: str | None = Field(default=None, max_length=128)
    ttl: float | None = Field(default=None, gt=0, le=366 * 86400)
    allow_fork: bool = False


_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _header(creds: HTTPAuthorizationCredentials | None) -> str | None:
    return f"{creds.scheme} {creds.credentials}" if creds is not None else None


def _caller(session_id: str, request: Request, creds: Credentials) -> Caller:
    state = request.app.state
    c = state.auth.session(_header(creds), session_id, request.client.host if request.client else "")
    state.limiter.check(c.limit_key)
    return c


def _admin(request: Request, creds: Credentials) -> None:
    request.app.state.auth.require_admin(_header(creds))


CallerDep = Annotated[Caller, Depends(_caller)]


def _sse(event: str, data: Any, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _auth(config: ServerConfig) -> Authenticator:
    keyring = config.keyring()
    return Authenticator(keyring, config.admin(), open_access=config.insecure_no_auth and keyring is None,
                         token_ttl=config.token_ttl)


def _agents(config: ServerConfig) -> dict[str, Any]:
    agents = dict(config.agents)
    if config.agents_file:
        from repertory.agents.spec import load_agents

        for name, agent in load_agents(config.agents_file).items():
            agents.setdefault(name, agent)
    return agents


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The FastAPI app: the session API under ``/agent`` over the running runtime (started from
    ``config.init`` if none runs). Secrets are read here, in the process that serves."""
    config = config or ServerConfig()
    configure_logging()
    auth = _auth(config)
    service = SessionService(_agents(config))
    limiter = RateLimiter(config.rate_limit)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import repertory

        if not repertory.is_initialized() and config.init:
            await asyncio.to_thread(repertory.init, **config.init)

        def deploy() -> None:  # starting AgentActors blocks on Ray: not on the serving loop
            for agent in service.agents.values():
                service.runtime.ensure_agent(agent)

        await asyncio.to_thread(deploy)
        log.info("server_ready", agents=sorted(service.agents), auth="open" if auth.open_access else "tokens")
        yield

    app = FastAPI(title="repertory", version="1", lifespan=lifespan,
                  description="Stateful LLM agent sessions: each session's endpoints need its session token.")
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(AccessLogMiddleware)
    app.state.config = config

    app.state.auth, app.state.limiter = auth, limiter
    router = APIRouter(prefix="/agent")

    @router.get("/health", tags=["server"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready", tags=["server"])
    async def ready() -> dict[str, Any]:
        import repertory

        if not repertory.is_initialized():
            raise errors.RuntimeNotReady("the runtime is not running yet; retry shortly")
        return {"status": "ready", "agents": sorted(service.agents)}

    @router.post("/tokens", tags=["admin"], dependencies=[Depends(_admin)])
    async def issue_token(body: TokenBody) -> dict[str, Any]:
        token, claims = auth.issue(body.session_id, body.user_id, body.ttl, body.allow_fork)
        return {"token": token, "session_id": claims.session_id, "user_id": claims.user_id,
                "expires_at": claims.expires_at}

    @router.get("/sessions", tags=["admin"], dependencies=[Depends(_admin)])
    async def list_all(prefix: Annotated[str, Query(max_length=300)] = "",
                       user_id: Annotated[str | None, Query(max_length=128)] = None,
                       limit: int = 100,
                       sort: Annotated[Literal["updated", "size"], Query()] = "updated") -> list[dict[str, Any]]:
        from repertory.admin.listing import alist_sessions

        if not 0 < limit <= 10_000:
            raise errors.InvalidInput("limit must be between 1 and 10000")
        return jsonable_encoder(await alist_sessions(prefix, user_id, None, limit, sort))

    S = "/sessions/{session_id}"

    @router.put(S, tags=["sessions"])
    async def create(session_id: str, c: CallerDep, body: CreateBody | None = None) -> dict[str, Any]:
        body = body or CreateBody()
        return await service.create(c, session_id, body.user_data, body.metadata, body.op_id)

    @router.get(S, tags=["sessions"])
    async def get(session_id: str, c: CallerDep) -> dict[str, Any]:
        return await service.info(c, session_id)

    @router.delete(S, tags=["sessions"])
    async def delete(session_id: str, c: CallerDep,
                     op_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None) -> dict[str, Any]:
        return await service.delete(c, session_id, op_id)

    @router.post(S + "/chat", tags=["turns"])
    async def chat(session_id: str, body: ChatBody, c: CallerDep) -> dict[str, Any]:
        return await service.chat(c, session_id, body.message, body.turn_id, body.agent, body.on_busy)

    @router.post(S + "/stream", tags=["turns"], response_class=StreamingResponse,
                 responses={200: {"content": {"text/event-stream": {}}}})
    async def stream(session_id: str, body: ChatBody, c: CallerDep,
                     last_event_id: Annotated[str | None, Header(max_length=160)] = None) -> StreamingResponse:
        # Each delta carries its event id; a client that reconnects sends the last one it got
        # (Last-Event-ID, or resume_from) and the same body, and the stream continues after it.
        items = service.stream(c, session_id, body.message, body.turn_id, body.agent, body.on_busy,
                               last_event_id or body.resume_from)
        try:  # errors before the first chunk (bad message, unknown agent, SessionBusy) answer as errors
            first = await anext(items)
        except StopAsyncIteration:
            first = None

        async def events() -> AsyncIterator[str]:
            last: str | None = None
            try:
                item = first
                while item is not None:
                    if isinstance(item, TurnReply):
                        yield _sse("done", {"reply": item.content}, last)
                    else:
                        last = item.event_id
                        yield _sse("delta", {"text": item}, last)
                    item = await anext(items, None)
            except errors.RepertoryError as exc:
                yield _sse("error", {"error": {"code": errors.error_code(exc), "message": str(exc),
                                               "status": status_of(exc)}})
            finally:
                await items.aclose()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @router.get(S + "/history", tags=["state"])
    async def history(session_id: str, c: CallerDep) -> list[dict[str, Any]]:
        return jsonable_encoder(await service.history(c, session_id))

    @router.put(S + "/history", tags=["state"])
    async def set_history(session_id: str, body: HistoryBody, c: CallerDep) -> dict[str, Any]:
        return await service.set_history(c, session_id, body.messages, body.op_id)

    @router.get(S + "/state", tags=["state"])
    async def state(session_id: str, c: CallerDep) -> dict[str, Any]:
        return jsonable_encoder(await service.state(c, session_id))

    @router.put(S + "/state", tags=["state"])
    async def set_state(session_id: str, body: StateBody, c: CallerDep) -> dict[str, Any]:
        return await service.set_state(c, session_id, body.state, body.op_id)

    @router.post(S + "/fields", tags=["state"])
    async def update_fields(session_id: str, body: FieldsBody, c: CallerDep) -> dict[str, Any]:
        return jsonable_encoder(await service.update_fields(c, session_id, body.field, body.values, body.op_id))

    @router.get(S + "/checkpoints", tags=["branches"])
    async def checkpoints(session_id: str, c: CallerDep) -> list[dict[str, Any]]:
        return jsonable_encoder(await service.checkpoints(c, session_id))

    @router.post(S + "/checkpoints", tags=["branches"])
    async def create_checkpoint(session_id: str, c: CallerDep, body: CheckpointBody | None = None) -> dict[str, Any]:
        body = body or CheckpointBody()
        return await service.create_checkpoint(c, session_id, body.label, body.op_id)

    @router.post(S + "/checkpoints/{checkpoint}/restore", tags=["branches"])
    async def restore_checkpoint(session_id: str, checkpoint: str, c: CallerDep,
                                 body: RestoreBody | None = None) -> dict[str, Any]:
        target: int | str = int(checkpoint) if checkpoint.isdigit() else checkpoint
        return await service.restore_checkpoint(c, session_id, target, (body or RestoreBody()).op_id)

    @router.get(S + "/versions", tags=["branches"])
    async def versions(session_id: str, c: CallerDep) -> list[dict[str, Any]]:
        return jsonable_encoder(await service.versions(c, session_id))

    @router.post(S + "/versions", tags=["branches"])
    async def save_version(session_id: str, c: CallerDep, body: VersionBody | None = None) -> dict[str, Any]:
        body = body or VersionBody()
        return await service.save_version(c, session_id, body.description, body.op_id)

    @router.post(S + "/versions/{version}/restore", tags=["branches"])
    async def restore_version(session_id: str, version: int, c: CallerDep) -> dict[str, Any]:
        return await service.restore_version(c, session_id, version)

    @router.post(S + "/fork", tags=["branches"])
    async def fork(session_id: str, c: CallerDep, body: ForkBody | None = None) -> dict[str, Any]:
        body = body or ForkBody()
        new_id = await service.fork(c, session_id, body.new_session_id, body.at)
        return {"session_id": new_id, "user_id": c.user_id, "token": auth.fork_token(c, new_id)}

    if hasattr(Session, "aanalytics"):  # published only where sessions have analytics
        @router.get(S + "/analytics", tags=["state"])
        async def analytics(session_id: str, c: CallerDep) -> dict[str, Any]:
            return jsonable_encoder(await service.analytics(c, session_id))

    @app.get("/metrics", tags=["server"], dependencies=[Depends(_admin)], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus metrics of the runtime's hosts (the admin key, as a bearer token)."""
        import repertory
        from repertory.host.metrics import stats_exposition

        if not repertory.is_initialized():
            raise errors.RuntimeNotReady("the runtime is not running yet; retry shortly")
        rt = service.runtime
        reg = getattr(rt, "metrics_registry", None)
        if reg is not None:  # without Ray: the hosts' own registry (histograms and all)
            from prometheus_client import generate_latest

            for core in rt.cores():
                core.sync_metrics()
            body = generate_latest(reg)
        else:  # on Ray: the hosts' counts; their histograms leave through the nodes' metrics agents
            body = stats_exposition(await rt.astats())
        return PlainTextResponse(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(router)
    include_inspector(app)  # the session inspector: /ui and /agent/inspect (server.ui_routes)
    return app
