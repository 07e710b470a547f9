"""What the session inspector (``/ui``) asks of the runtime, as plain async methods (no HTTP).

Every method takes the verified :class:`~repertory.server.auth.Viewer`: a user sees and acts
on their own sessions only (the user comes from their token, never from the request); the
admin names any user. Store reads (the list, the live tail) run on the sync portal's loop,
where the runtime's admin store lives; session reads and writes go through the session's
host like every other call, under its mailbox.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from repertory._sync import on_portal
from repertory.batch.runner import BATCH_RUN_PREFIX
from repertory.errors import AccessDenied, InvalidInput, SessionNotFound
from repertory.host.stats import HostStats
from repertory.ids import SessionRef, validate_user_id
from repertory.runtimes.base import Runtime
from repertory.runtimes.current import get_runtime
from repertory.server.auth import Viewer
from repertory.server.session_query import SessionQuery, SessionRow, page
from repertory.session.handle import Session
from repertory.shared.core import SharedStateCore
from repertory.state.session_state import SessionState
from repertory.stores.base import SessionRecord
from repertory.workflow import APPROVED, PENDING, REJECTED

__all__ = ["Inspector", "SessionPage"]

TAIL_POLL_S = 0.25  # how often the live tail looks at the stored session


@dataclass(frozen=True, slots=True)
class SessionPage:
    """One page of the list: ``total`` (None: not counted, the agent filter stopped early)."""

    total: int | None
    offset: int
    limit: int
    rows: list[SessionRow]
    complete: bool


class Inspector:
    """The inspector's operations over the running runtime (or the one given)."""

    def __init__(self, runtime: Runtime | None = None) -> None:
        self._runtime = runtime

    @property
    def runtime(self) -> Runtime:
        return self._runtime if self._runtime is not None else get_runtime()

    # -- who may see what -----------------------------------------------------------------
    @staticmethod
    def user_of(viewer: Viewer, user_id: str | None) -> str | None:
        """The user whose sessions a request reaches: a user's own, whatever it names."""
        if viewer.admin:
            return validate_user_id(user_id or None)
        if user_id not in (None, "", viewer.user_id):
            raise AccessDenied("a user token shows its own user's sessions only")
        return viewer.user_id

    def ref(self, viewer: Viewer, session_id: str, user_id: str | None) -> SessionRef:
        return SessionRef(session_id, self.user_of(viewer, user_id))

    # -- the list ---------------------------------------------------------------------------
    async def list_sessions(self, viewer: Viewer, query: SessionQuery) -> SessionPage:
        """A page of the sessions the viewer may see that match ``query``, newest activity first."""
        rt = self.runtime
        user = self.user_of(viewer, query.user_id)
        prefix = f"{user}/" if user is not None else ""
        store = rt.admin_store()

        async def read() -> tuple[int | None, list[SessionRow], bool]:
            infos = await store.list_sessions(prefix=prefix)
            return await page(infos, query, time.time(), rt.host_of, store.load)

        total, rows, complete = await on_portal(read)
        return SessionPage(total, query.offset, query.limit, rows, complete)

    # -- one session ------------------------------------------------------------------------
    async def session(self, viewer: Viewer, session_id: str, user_id: str | None) -> dict[str, Any]:
        """The session's state (history with roles, agents, tool calls, times, latency and
        usage per message), its checkpoints, versions, workflows and fork links."""
        ref = self.ref(viewer, session_id, user_id)
        rt = self.runtime
        if not await rt.exists(ref):
            raise SessionNotFound(f"session {ref.key!r} does not exist (or has expired)")
        state, checkpoints, versions = await asyncio.gather(
            rt.get_state(ref), rt.list_checkpoints(ref, "checkpoint"), rt.list_checkpoints(ref, "version"))
        metadata = state.get("metadata") or {}
        shared = None
        if state.get("shared_state_id"):  # the session's agents work on it: whoever sees the session sees it
            core = SharedStateCore(rt.admin_store(), state["shared_state_id"])
            shared = {"id": state["shared_state_id"], **await on_portal(core.snapshot)}
        return {"key": ref.key, "host": rt.host_of(ref.key), "state": state, "checkpoints": checkpoints,
                "versions": versions, "workflows": metadata.get("workflows", {}),
                "forked_from": metadata.get("forked_from"), "forks": metadata.get("forks", []),
                "shared_state": shared}

    async def restore(self, viewer: Viewer, session_id: str, user_id: str | None, checkpoint: int | str,
                      kind: str, op_id: str | None) -> int:
        """Restore a checkpoint or version; returns the new revision."""
        if kind not in ("checkpoint", "version"):
            raise InvalidInput("kind must be 'checkpoint' or 'version'")
        ref = self.ref(viewer, session_id, user_id)
        return await self.runtime.restore_checkpoint(ref, checkpoint, kind, op_id)  # type: ignore[arg-type]

    async def undo(self, viewer: Viewer, session_id: str, user_id: str | None, op_id: str | None) -> int:
        """Remove the last turn (the last user message and what followed); returns how many messages."""
        return len(await self.runtime.pop_turn(self.ref(viewer, session_id, user_id), op_id))

    async def fork(self, viewer: Viewer, session_id: str, user_id: str | None, new_session_id: str | None,
                   at: int | str | None) -> str:
        """Fork into a new session of the same user; the parent lists its forks (the tree)."""
        ref = self.ref(viewer, session_id, user_id)
        parent = Session(ref.session_id, user_id=ref.user_id, runtime=self.runtime)
        fork = await parent.afork(new_session_id, at)
        await self.runtime.update_item(ref, "metadata", "forks",
                                       {"session_id": fork.session_id, "at": at, "time": time.time()}, "append")
        return fork.session_id

    async def decide(self, viewer: Viewer, session_id: str, user_id: str | None, workflow: str, task: str,
                     approve: bool, note: str | None) -> dict[str, Any]:
        """Approve or reject a task waiting for approval, as ``Workflow.approve``/``reject`` record
        it: the workflow's next run goes on (or not)."""
        ref = self.ref(viewer, session_id, user_id)
        fields = await self.runtime.read_fields(ref)
        entry = fields["metadata"].get("workflows", {}).get(workflow, {}).get("tasks", {}).get(task)
        if entry is None or entry.get("status") != PENDING:
            raise InvalidInput(f"task {task!r} of workflow {workflow!r} is not waiting for approval")
        decision = {**entry, "status": APPROVED if approve else REJECTED, "note": note, "time": time.time()}
        return await self.runtime.update_workflow(ref, workflow, {task: decision})

    async def tail(self, viewer: Viewer, session_id: str, user_id: str | None,
                   after: int) -> AsyncIterator[dict[str, Any]]:
        """The session's stored changes for the live view: ``{"revision", "reset", "messages"}``
        with the messages from ``after`` on (``reset``: the history was rewritten, by a restore
        or an undo, and ``messages`` is all of it). Reads the store, not the host: watching
        never activates nor holds a session."""
        ref = self.ref(viewer, session_id, user_id)
        store = self.runtime.admin_store()
        seen, revision = after, None
        while True:
            rec: SessionRecord | None = await on_portal(store.load, ref.key)
            if rec is not None and rec.revision != revision:
                history = SessionState.from_record(rec).history()
                reset = revision is not None and len(history) <= seen
                start = 0 if reset else min(seen, len(history))
                if reset or len(history) > seen:
                    yield {"revision": rec.revision, "reset": reset,
                           "messages": [{"index": start + i, **m} for i, m in enumerate(history[start:])]}
                seen, revision = len(history), rec.revision
            await asyncio.sleep(TAIL_POLL_S)

    async def shared_state(self, viewer: Viewer, state_id: str) -> dict[str, Any]:
        """A shared state's stored values and revision (admin only: shared states belong to no
        user). Read from the store, so looking never creates its actor."""
        if not viewer.admin:
            raise AccessDenied("shared states belong to no user: reading one needs the admin key")
        if not isinstance(state_id, str) or not state_id or len(state_id) > 128:
            raise InvalidInput("a shared state id is 1 to 128 characters")
        core = SharedStateCore(self.runtime.admin_store(), state_id)
        return await on_portal(core.snapshot)

    # -- batches ----------------------------------------------------------------------------
    async def batch_runs(self, viewer: Viewer) -> list[dict[str, Any]]:
        """The batch runs' progress records (repertory.batch keeps one per output file), newest
        first (admin only: a batch's jobs may belong to many users)."""
        if not viewer.admin:
            raise AccessDenied("batch runs span users: their progress needs the admin key")
        store = self.runtime.admin_store()

        async def read() -> list[dict[str, Any]]:
            runs = []
            for info in await store.list_sessions(prefix=BATCH_RUN_PREFIX):
                rec = await store.load(info.key)
                if rec is None:
                    continue
                run = SessionState.from_record(rec).meta.get("metadata", {}).get("batch_run")
                if isinstance(run, dict):
                    runs.append({"session_id": info.key, **run})
            return sorted(runs, key=lambda r: r.get("updated_at") or 0, reverse=True)

        return await on_portal(read)

    # -- the cluster ------------------------------------------------------------------------
    async def cluster(self, viewer: Viewer) -> list[HostStats]:
        """Every host's counters (admin only: hosts hold every user's sessions)."""
        if not viewer.admin:
            raise AccessDenied("the cluster page needs the admin key")
        return await self.runtime.astats()
