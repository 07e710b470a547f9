"""The session inspector over HTTP: the page at ``/ui`` and its JSON API under ``/agent/inspect``.

Every ``/agent/inspect`` endpoint needs the admin key or a user token
(``POST /agent/inspect/tokens`` with the admin key issues one; ``tokens.issue_user`` too): a
user token lists and acts on its user's sessions only; the cluster page is the admin's. The
page itself holds no data: it signs in with a key or token and calls these endpoints.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from repertory.errors import AccessDenied, SessionNotFound
from repertory.server.auth import Viewer
from repertory.server.inspector import Inspector
from repertory.server.session_query import MAX_PAGE, SessionQuery
from repertory.server.ui import ASSETS, asset, page_html

__all__ = ["include_inspector"]

_bearer = HTTPBearer(auto_error=False)
UserQuery = Annotated[str | None, Query(max_length=128, description="Whose session (the admin only; a user "
                                                                     "token always means its own user)")]
OpId = Annotated[str | None, Field(default=None, min_length=1, max_length=128)]


def _viewer(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Viewer:
    state = request.app.state
    header = f"{creds.scheme} {creds.credentials}" if creds is not None else None
    viewer = state.auth.viewer(header, request.client.host if request.client else "")
    state.limiter.check(viewer.limit_key)
    return viewer


ViewerDep = Annotated[Viewer, Depends(_viewer)]


class WhoAmI(BaseModel):
    admin: bool
    user_id: str | None


class UserTokenBody(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    ttl: float | None = Field(default=None, gt=0, le=366 * 86400)


class UserToken(BaseModel):
    token: str
    user_id: str
    expires_at: float


class SessionRowModel(BaseModel):
    key: str
    session_id: str
    user_id: str | None
    n_messages: int
    updated_at: float
    expires_at: float | None
    revision: int
    host: str
    turns: int | None = None
    agents: list[str] = []
    size_bytes: int | None = None


class SessionPageModel(BaseModel):
    total: int | None = Field(description="Sessions that match; null when the agent filter stopped counting")
    offset: int
    limit: int
    complete: bool
    items: list[SessionRowModel]


class SessionDetail(BaseModel):
    key: str
    host: str
    state: dict[str, Any]
    checkpoints: list[dict[str, Any]]
    versions: list[dict[str, Any]]
    workflows: dict[str, Any]
    forked_from: str | None = None
    forks: list[dict[str, Any]] = []
    # The shared state the session's agents work on ({id, values, revision}), if any.
    shared_state: dict[str, Any] | None = None


class RestoreBody(BaseModel):
    checkpoint: int | str
    kind: Literal["checkpoint", "version"] = "checkpoint"
    op_id: OpId = None


class UndoBody(BaseModel):
    op_id: OpId = None


class ForkBody(BaseModel):
    new_session_id: str | None = Field(default=None, min_length=1, max_length=128)
    at: int | str | None = None


class DecisionBody(BaseModel):
    approve: bool
    note: str | None = Field(default=None, max_length=1000)


class SharedStateModel(BaseModel):
    state_id: str
    values: dict[str, Any]
    revision: int


class LatencyPointModel(BaseModel):
    start: float
    turns: int
    p50: float | None
    p95: float | None
    p99: float | None


class HostStatsModel(BaseModel):
    host: str
    resident: int
    activations: int
    passivations: int
    turns: int
    turn_errors: int
    turns_cancelled: int = 0
    turn_p50: float | None
    turn_p95: float | None
    turn_p99: float | None
    store_ops: int
    store_p50: float | None
    store_p95: float | None
    store_p99: float | None
    cas_retries: int
    lease_waits: int
    repeated_model_calls: int
    series: list[LatencyPointModel]


def _router(inspector: Inspector) -> APIRouter:
    router = APIRouter(prefix="/agent/inspect", tags=["inspector"])
    S = "/sessions/{session_id}"

    @router.get("/whoami")
    async def whoami(viewer: ViewerDep) -> WhoAmI:
        return WhoAmI(admin=viewer.admin, user_id=viewer.user_id)

    @router.post("/tokens")
    async def user_token(body: UserTokenBody, request: Request, viewer: ViewerDep) -> UserToken:
        if not viewer.admin:
            raise AccessDenied("only the admin key issues user tokens")
        token, claims = request.app.state.auth.issue_user(body.user_id, body.ttl)
        return UserToken(token=token, user_id=body.user_id, expires_at=claims.expires_at)

    @router.get("/sessions")
    async def sessions(viewer: ViewerDep, q: Annotated[str, Query(max_length=200)] = "", user_id: UserQuery = None,
                       agent: Annotated[str | None, Query(max_length=128)] = None,
                       active_within: Annotated[float | None, Query(ge=0, le=1e9)] = None,
                       idle_for: Annotated[float | None, Query(ge=0, le=1e9)] = None,
                       ttl: Literal["any", "expiring", "pinned"] = "any",
                       offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                       limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50) -> SessionPageModel:
        query = SessionQuery(q, user_id or None, agent or None, active_within, idle_for, ttl, offset, limit)
        p = await inspector.list_sessions(viewer, query)
        return SessionPageModel(total=p.total, offset=p.offset, limit=p.limit, complete=p.complete,
                                items=[_row(r) for r in p.rows])

    @router.get(S)
    async def session(session_id: str, viewer: ViewerDep, user_id: UserQuery = None) -> SessionDetail:
        return SessionDetail(**jsonable_encoder(await inspector.session(viewer, session_id, user_id)))

    @router.post(S + "/restore")
    async def restore(session_id: str, body: RestoreBody, viewer: ViewerDep, user_id: UserQuery = None) -> dict[str, int]:
        return {"revision": await inspector.restore(viewer, session_id, user_id, body.checkpoint, body.kind, body.op_id)}

    @router.post(S + "/undo")
    async def undo(session_id: str, viewer: ViewerDep, user_id: UserQuery = None,
                   body: UndoBody | None = None) -> dict[str, int]:
        return {"removed": await inspector.undo(viewer, session_id, user_id, (body or UndoBody()).op_id)}

    @router.post(S + "/fork")
    async def fork(session_id: str, viewer: ViewerDep, user_id: UserQuery = None,
                   body: ForkBody | None = None) -> dict[str, str]:
        body = body or ForkBody()
        return {"session_id": await inspector.fork(viewer, session_id, user_id, body.new_session_id, body.at)}

    @router.post(S + "/workflows/{workflow}/tasks/{task}/decision")
    async def decide(session_id: str, workflow: str, task: str, body: DecisionBody, viewer: ViewerDep,
                     user_id: UserQuery = None) -> dict[str, Any]:
        return jsonable_encoder(await inspector.decide(viewer, session_id, user_id, workflow, task, body.approve,
                                                       body.note))

    @router.get(S + "/tail", response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
    async def tail(session_id: str, viewer: ViewerDep, user_id: UserQuery = None,
                   after: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                   wait: Annotated[float, Query(gt=0, le=300, description="Seconds before the stream ends "
                                                                            "(reconnect for more)")] = 30.0
                   ) -> StreamingResponse:
        ref = inspector.ref(viewer, session_id, user_id)
        if not await inspector.runtime.exists(ref):
            raise SessionNotFound(f"session {ref.key!r} does not exist (or has expired)")
        changes = inspector.tail(viewer, session_id, user_id, after)

        async def events() -> AsyncIterator[str]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            try:
                while (left := deadline - loop.time()) > 0:
                    try:
                        change = await asyncio.wait_for(anext(changes), left)
                    except TimeoutError:
                        break
                    yield f"event: messages\ndata: {json.dumps(jsonable_encoder(change), separators=(',', ':'))}\n\n"
                yield "event: end\ndata: {}\n\n"
            finally:
                await changes.aclose()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @router.get("/shared/{state_id}")
    async def shared_state(state_id: str, viewer: ViewerDep) -> SharedStateModel:
        return SharedStateModel(state_id=state_id, **jsonable_encoder(await inspector.shared_state(viewer, state_id)))

    @router.get("/batches")
    async def batches(viewer: ViewerDep) -> list[dict[str, Any]]:
        """Batch runs' progress (admin only), newest first."""
        return jsonable_encoder(await inspector.batch_runs(viewer))

    @router.get("/cluster")
    async def cluster(viewer: ViewerDep) -> list[HostStatsModel]:
        return [HostStatsModel(**s.to_dict()) for s in await inspector.cluster(viewer)]

    return router


def _row(r: Any) -> SessionRowModel:
    return SessionRowModel(key=r.key, session_id=r.session_id, user_id=r.user_id, n_messages=r.n_messages,
                           updated_at=r.updated_at, expires_at=r.expires_at, revision=r.revision, host=r.host,
                           turns=r.turns, agents=list(r.agents), size_bytes=r.size_bytes)


# The page is self-contained: scripts, styles and plots come from this server, never a CDN.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache"}


def include_inspector(app: FastAPI, inspector: Inspector | None = None) -> None:
    """Add the inspector's page (``/ui``) and its API (``/agent/inspect``) to ``app``."""
    app.include_router(_router(inspector or Inspector()))

    @app.get("/ui", include_in_schema=False)
    async def ui_page() -> HTMLResponse:
        return HTMLResponse(page_html(), headers=_HEADERS)

    @app.get("/ui/static/{name}", include_in_schema=False)
    async def ui_asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, f"the inspector has no file {name!r}")
        body, media_type = asset(name)
        return Response(body, media_type=media_type, headers=_HEADERS)
