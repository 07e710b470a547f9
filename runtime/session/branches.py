"""Session methods for a session's past and its branches: checkpoints, versions, edits,
fork, merge, session files.

A mixin of :class:`repertory.Session`; every method is one typed host call, run under the
session's mailbox as one compare-and-set write.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from repertory._sync import run_sync
from repertory.errors import InvalidInput
from repertory.runtimes.current import get_runtime
from repertory.state.files import read_session_file, write_session_file
from repertory.state.merge import merge_states
from repertory.state.schema import check_export_doc

if TYPE_CHECKING:
    from repertory.agents.agent import Agent
    from repertory.shared.handle import SharedState
    from repertory.ids import SessionRef
    from repertory.runtimes.base import Runtime
    from repertory.session.handle import Session

__all__ = ["BranchesMixin"]


class BranchesMixin:
    """Checkpoints, versions, edits, fork, merge, save/load, lifecycle."""

    ref: SessionRef
    runtime: Runtime
    _agent: Agent | None
    _agents: dict[str, Agent]
    _definitions: dict[str, Any] | None
    keep_checkpoints: int | None
    checkpoint_every: int | None
    merge_conflicts: list[dict[str, Any]]
    shared_state: SharedState | None

    def _shared_id(self) -> str | None:
        return self.shared_state.state_id if self.shared_state is not None else None

    async def _restore_shared(self, doc: dict[str, Any]) -> None:
        """Bring back the shared state a checkpoint recorded (by its id), if it recorded one."""
        shared = doc.get("shared_state")
        if shared is None:
            return
        from repertory.runtimes.base import new_op_id
        from repertory.shared.core import SharedStateCore

        backend = self.runtime.shared_state(shared["id"])
        await backend.invoke(SharedStateCore.restore, new_op_id(), shared["values"])

    def _given_agents(self) -> tuple[Agent | None, dict[str, Agent] | None]:
        """The agents this handle was given (None, None: it continues with the stored ones)."""
        if self._definitions is None:
            return None, None
        return self._agent, dict(self._agents) or None

    if TYPE_CHECKING:
        async def aget_agent(self) -> Agent: ...

    # -- checkpoints and versions -----------------------------------------------------
    async def acreate_checkpoint(self, label: str | None = None) -> int:
        """Checkpoint the current state (and a copy of the session's shared state, if it has
        one); returns its number (1, 2, ...)."""
        return (await self.runtime.create_checkpoint(self.ref, "" if label is None else label, "checkpoint",
                                                    self.keep_checkpoints, shared_state_id=self._shared_id()))["id"]

    def create_checkpoint(self, label: str | None = None) -> int:
        return run_sync(self.acreate_checkpoint, label)

    async def arestore_checkpoint(self, checkpoint: int | str) -> None:
        """Return to a checkpoint; the state from before stays reachable as a new version.
        The shared state recorded with it comes back to the values it had then."""
        doc = await self.runtime.checkpoint_snapshot(self.ref, checkpoint, "checkpoint")
        await self.runtime.restore_checkpoint(self.ref, checkpoint, "checkpoint")
        await self._restore_shared(doc)

    def restore_checkpoint(self, checkpoint: int | str) -> None:
        run_sync(self.arestore_checkpoint, checkpoint)

    async def alist_checkpoints(self) -> list[dict[str, Any]]:
        """Checkpoints, oldest first: id, turn, timestamp, label."""
        return await self.runtime.list_checkpoints(self.ref, "checkpoint")

    def list_checkpoints(self) -> list[dict[str, Any]]:
        return run_sync(self.alist_checkpoints)

    async def asave_version(self, description: str = "") -> int:
        """Save a named version of the state (with the shared state's, as checkpoints do);
        returns its number (0, 1, ...)."""
        return (await self.runtime.create_checkpoint(self.ref, description, "version", None,
                                                    shared_state_id=self._shared_id()))["id"]

    def save_version(self, description: str = "") -> int:
        return run_sync(self.asave_version, description)

    async def arestore_version(self, version: int) -> bool:
        """Restore a saved version; False if there is no such version (as on the seed page)."""
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidInput(f"restore_version takes a version number (an int), got {version!r}")
        if version not in {v["id"] for v in await self.runtime.list_checkpoints(self.ref, "version")}:
            return False
        doc = await self.runtime.checkpoint_snapshot(self.ref, version, "version")
        await self.runtime.restore_checkpoint(self.ref, version, "version")
        await self._restore_shared(doc)
        return True

    def restore_version(self, version: int) -> bool:
        return run_sync(self.arestore_version, version)

    async def alist_versions(self) -> list[dict[str, Any]]:
        """Versions: version, timestamp, description."""
        return [{"version": v["id"], "timestamp": v["timestamp"], "description": v["label"], "turn": v["turn"]}
                for v in await self.runtime.list_checkpoints(self.ref, "version")]

    def list_versions(self) -> list[dict[str, Any]]:
        return run_sync(self.alist_versions)

    # -- edits ------------------------------------------------------------------------
    async def apop_turn(self) -> list[dict[str, Any]]:
        """Remove the last user message and everything after it; returns what was removed."""
        return await self.runtime.pop_turn(self.ref)

    def pop_turn(self) -> list[dict[str, Any]]:
        return run_sync(self.apop_turn)

    async def atruncate(self, n_messages: int) -> list[dict[str, Any]]:
        """Keep the first ``n_messages``; returns the removed ones."""
        return await self.runtime.truncate(self.ref, n_messages)

    def truncate(self, n_messages: int) -> list[dict[str, Any]]:
        return run_sync(self.atruncate, n_messages)

    async def aedit_message(self, index: int, content: str) -> None:
        """Replace the content of message ``index`` (the original stays in a checkpoint)."""
        await self.runtime.edit_message(self.ref, index, content)

    def edit_message(self, index: int, content: str) -> None:
        run_sync(self.aedit_message, index, content)

    # -- branches and merges ----------------------------------------------------------
    async def afork(self, new_session_id: str | None = None, at: int | str | None = None, *,
                    shared_state: str = "fork") -> Session:
        """A new, independent session sharing this one's past (now, or at a checkpoint).

        A session with a shared state forks it too (``shared_state="fork"``): the fork gets a
        new shared state holding a copy of the values (now, or those recorded with the
        checkpoint), so neither sees the other's writes. ``shared_state="keep"`` has both
        sessions share the one shared state.
        """
        if shared_state not in ("fork", "keep"):
            raise InvalidInput(f"shared_state is 'fork' (a copy for the fork) or 'keep' (both share one), "
                               f"not {shared_state!r}")
        if at is None:
            doc = await self.runtime.export_session(self.ref, True)
        else:
            doc = await self.runtime.checkpoint_snapshot(self.ref, at, "checkpoint")
        recorded = doc.pop("shared_state", None)
        shared = self.shared_state
        if shared is not None and shared_state == "fork":
            shared = await self._forked_shared(shared, recorded if at is not None else None)
        # A handle given agents forks with them; one continuing with the stored agents makes
        # a fork that continues with them too (the export carries the definitions).
        agent, agents = self._given_agents()
        fork = type(self)(new_session_id, agent=agent, agents=agents, user_id=self.user_id, placement=self.placement,
                       ttl=self._ttl, checkpoint_every=self.checkpoint_every,
                       keep_checkpoints=self.keep_checkpoints, runtime=self.runtime, shared_state=shared)
        now = time.time()
        doc["meta"] = dict(doc["meta"], created_at=now, updated_at=now,
                           metadata={**doc["meta"].get("metadata", {}), "forked_from": self.session_id,
                                     "forked_at": now})
        await fork.runtime.import_session(fork.ref, doc, False)
        return fork

    def fork(self, new_session_id: str | None = None, at: int | str | None = None, *,
             shared_state: str = "fork") -> Session:
        return run_sync(lambda: self.afork(new_session_id, at, shared_state=shared_state))

    async def _forked_shared(self, shared: SharedState, recorded: dict[str, Any] | None) -> SharedState:
        """A new shared state with a copy of ``shared``'s values: those a checkpoint recorded,
        or the current ones."""
        from repertory.shared.handle import SharedState

        values = recorded["values"] if recorded is not None else await shared.asnapshot()
        copy = SharedState(runtime=self.runtime)
        if values:
            await copy.aupdate(values)
        return copy

    async def amerge(self, other: Session, session_id: str | None = None) -> Session:
        """A new session with both histories interleaved by time and user data merged.

        Works as ``a.merge(b)`` and ``Session.merge(a, b)``. Keys both set differently are
        listed in the new session's ``merge_conflicts`` (the later-updated session's value wins).
        """
        a, b = await self.aget_state(), await other.aget_state()
        result = merge_states(a, b)
        # The merged session starts without stored agents: its handle gets this session's.
        agent, agents = self._given_agents()
        if agent is None:
            agent, agents = await self.aget_agent(), dict(self._agents) or None
        merged = type(self)(session_id or f"{self.session_id}_merged", agent=agent, agents=agents,
                            user_id=self.user_id, runtime=self.runtime)
        if await merged.aexists():
            raise InvalidInput(f"session {merged.session_id!r} already exists; pass another session_id")
        await merged.aset_state({"history": result.history, "user_data": result.user_data,
                                 "metadata": {"merged_from": [self.session_id, other.session_id],
                                              "merge_conflicts": result.conflicts}})
        merged.merge_conflicts = result.conflicts
        return merged

    def merge(self, other: Session, session_id: str | None = None) -> Session:
        return run_sync(self.amerge, other, session_id)

    # -- files ------------------------------------------------------------------------
    async def asave(self, path: str | os.PathLike[str], *, with_checkpoints: bool = False,
                    plaintext: bool = False) -> str:
        """Write the session to ``path`` atomically, in repertory's format (also for ``.pkl``);
        encrypted when the runtime has an encryption key, unless ``plaintext``."""
        doc = await self.runtime.export_session(self.ref, with_checkpoints)
        keys = None if plaintext else self.runtime.settings.keyring()
        return str(write_session_file(path, doc, keys))

    def save(self, path: str | os.PathLike[str], *, with_checkpoints: bool = False, plaintext: bool = False) -> str:
        return run_sync(self.asave, path, with_checkpoints=with_checkpoints, plaintext=plaintext)

    @classmethod
    async def aload(cls, path: str | os.PathLike[str], agent: Agent | None = None,
                    session_id: str | None = None, **kwargs: Any) -> Session:
        """Restore a saved session into the runtime (same id unless ``session_id``) and return it."""
        keys = (kwargs.get("runtime") or get_runtime()).settings.keyring()
        doc = check_export_doc(read_session_file(path, keys), f"session file {path}")
        meta = doc["meta"]
        session = cls(session_id or meta["session_id"], agent=agent,
                      user_id=kwargs.pop("user_id", meta.get("user_id")), **kwargs)
        await session.runtime.import_session(session.ref, doc, True)
        return session

    @classmethod
    def load(cls, path: str | os.PathLike[str], agent: Agent | None = None,
             session_id: str | None = None, **kwargs: Any) -> Session:
        return run_sync(lambda: cls.aload(path, agent, session_id, **kwargs))

    # -- lifecycle --------------------------------------------------------------------
    def __enter__(self) -> Session:
        self._fields()  # activate (load) now
        return self  # type: ignore[return-value]

    def __exit__(self, *exc: object) -> None:
        # Every acknowledged turn is already durable: there is nothing left to flush.
        return None

    async def __aenter__(self) -> Session:
        await self.runtime.read_fields(self.ref)
        return self  # type: ignore[return-value]

    async def __aexit__(self, *exc: object) -> None:
        return None
