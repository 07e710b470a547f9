"""Session methods for durable state: checkpoints, versions, branches, edits, merge, files.

A mixin of :class:`repertory.Session`, kept apart so that each module stays small. Every
method runs on the session's host under its mailbox, as one compare-and-set write.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from repertory._sync import run_sync
from repertory.errors import InvalidInput

if TYPE_CHECKING:
    from repertory.agents.agent import Agent
    from repertory.session.handle import Session

__all__ = ["SessionOpsMixin", "StateDict", "extract_topics"]


def extract_topics(history: list[dict[str, Any]], top: int = 5) -> list[str]:
    """Most frequent content words in the user messages of ``history``, most frequent first."""
    from collections import Counter

    from repertory.agents.demo_model import keywords

    counts = Counter(w for m in history if m.get("role") == "user" and isinstance(m.get("content"), str)
                     for w in keywords(m["content"]) if len(w) > 2)
    return [w for w, _ in counts.most_common(top)]


class StateDict(dict):
    """``session.user_data`` / ``user_profile``: a dict whose changes are written at once."""

    def __init__(self, session: Session, field: str, data: dict[str, Any]) -> None:
        super().__init__(data)
        self._session = session
        self._field = field

    def _save(self) -> None:
        self._session._write_field(self._field, dict(self), replace=True)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._save()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._save()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._save()

    def pop(self, key: Any, *default: Any) -> Any:
        value = super().pop(key, *default)
        self._save()
        return value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._save()
        return value

    def clear(self) -> None:
        super().clear()
        self._save()


class SessionOpsMixin:
    """Checkpoints, versions, fork, merge, edits, user data, TTL, save/load, lifecycle."""

    session_id: str
    user_id: str | None
    agent: Agent
    placement: str
    merge_conflicts: list[dict[str, Any]]

    async def _op(self: Session, name: str, *args: Any) -> Any:
        return await self.runtime.call(self._key, self.placement, "op", self._key, self.session_id,
                                       self.user_id, name, *args)

    # -- checkpoints and versions -----------------------------------------------------
    async def acreate_checkpoint(self, label: str | None = None) -> int:
        """Checkpoint the current state; returns its number (1, 2, ...)."""
        return (await self._op("create_checkpoint", label or "", "checkpoint", self.keep_checkpoints))["id"]

    def create_checkpoint(self, label: str | None = None) -> int:
        return run_sync(self.acreate_checkpoint, label)

    async def arestore_checkpoint(self, checkpoint: int | str) -> None:
        """Return to a checkpoint; the state from before stays reachable as a new version."""
        await self._op("restore", checkpoint, "checkpoint")

    def restore_checkpoint(self, checkpoint: int | str) -> None:
        run_sync(self.arestore_checkpoint, checkpoint)

    async def alist_checkpoints(self) -> list[dict[str, Any]]:
        """Checkpoints, oldest first: id, turn, timestamp, label."""
        return await self._op("list_checkpoints", "checkpoint")

    def list_checkpoints(self) -> list[dict[str, Any]]:
        return run_sync(self.alist_checkpoints)

    async def asave_version(self, description: str = "") -> int:
        """Save a named version of the state; returns its number (0, 1, ...)."""
        return (await self._op("create_checkpoint", description, "version", None))["id"]

    def save_version(self, description: str = "") -> int:
        return run_sync(self.asave_version, description)

    async def arestore_version(self, version: int) -> bool:
        """Restore a saved version; False if there is no such version (as on the seed page)."""
        try:
            await self._op("restore", version, "version")
        except InvalidInput:
            return False
        return True

    def restore_version(self, version: int) -> bool:
        return run_sync(self.arestore_version, version)

    async def alist_versions(self) -> list[dict[str, Any]]:
        """Versions: version, timestamp, description."""
        return [{"version": v["id"], "timestamp": v["timestamp"], "description": v["label"], "turn": v["turn"]}
                for v in await self._op("list_checkpoints", "version")]

    def list_versions(self) -> list[dict[str, Any]]:
        return run_sync(self.alist_versions)

    # -- edits ------------------------------------------------------------------------
    async def apop_turn(self) -> list[dict[str, Any]]:
        """Remove the last user message and everything after it; returns what was removed."""
        return await self._op("edit_history", "pop_turn")

    def pop_turn(self) -> list[dict[str, Any]]:
        return run_sync(self.apop_turn)

    async def atruncate(self, n_messages: int) -> list[dict[str, Any]]:
        """Keep the first ``n_messages``; returns the removed ones."""
        return await self._op("edit_history", "truncate", n_messages)

    def truncate(self, n_messages: int) -> list[dict[str, Any]]:
        return run_sync(self.atruncate, n_messages)

    async def aedit_message(self, index: int, content: str) -> None:
        """Replace the content of message ``index`` (the original stays in a checkpoint)."""
        await self._op("edit_history", "edit", index, content)

    def edit_message(self, index: int, content: str) -> None:
        run_sync(self.aedit_message, index, content)

    # -- branches and merges ----------------------------------------------------------
    async def afork(self, new_session_id: str | None = None, at: int | str | None = None) -> Session:
        """A new, independent session sharing this one's past (now, or at a checkpoint)."""
        from repertory.session.handle import Session

        if at is None:
            doc = await self._op("export", True)
        else:
            doc = await self._op("checkpoint_snapshot", at, "checkpoint")
        fork = Session(new_session_id, agent=self.agent, user_id=self.user_id, placement=self.placement,
                       ttl=self._ttl, checkpoint_every=self.checkpoint_every,
                       keep_checkpoints=self.keep_checkpoints, runtime=self.runtime)
        now = time.time()
        doc["meta"] = dict(doc["meta"], created_at=now, updated_at=now,
                           metadata={**doc["meta"].get("metadata", {}), "forked_from": self.session_id,
                                     "forked_at": now})
        await fork._op("import", doc, False)
        return fork

    def fork(self, new_session_id: str | None = None, at: int | str | None = None) -> Session:
        return run_sync(self.afork, new_session_id, at)

    async def amerge(self, other: Session, session_id: str | None = None) -> Session:
        """A new session with both histories interleaved by time and user data merged.

        Works as ``a.merge(b)`` and ``Session.merge(a, b)``. Keys both set differently are
        listed in the new session's ``merge_conflicts`` (the later-updated session's value wins).
        """
        from repertory.state.merge import merge_states
        from repertory.session.handle import Session

        a, b = await self.aget_state(), await other.aget_state()
        result = merge_states(a, b)
        merged = Session(session_id or f"{self.session_id}_merged", agent=self.agent, user_id=self.user_id,
                         runtime=self.runtime)
        if await merged.aexists():
            raise InvalidInput(f"session {merged.session_id!r} already exists; pass another session_id")
        await merged.aset_state({"history": result.history, "user_data": result.user_data,
                                 "metadata": {"merged_from": [self.session_id, other.session_id],
                                              "merge_conflicts": result.conflicts}})
        merged.merge_conflicts = result.conflicts
        return merged

    def merge(self, other: Session, session_id: str | None = None) -> Session:
        return run_sync(self.amerge, other, session_id)

    # -- user data, profile, preferences ----------------------------------------------
    def _fields(self) -> dict[str, Any]:
        """user_data, user_profile, metadata, times and counters, without the history."""
        return run_sync(self._op, "read_fields")

    def _write_field(self, field: str, value: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        return run_sync(self._op, "update_fields", field, value, replace)

    @property
    def user_data(self) -> StateDict:
        """The session's user data; assignments and changes are written through."""
        return StateDict(self, "user_data", self._fields()["user_data"])

    @user_data.setter
    def user_data(self, value: dict[str, Any]) -> None:
        self._write_field("user_data", dict(value), replace=True)

    @property
    def metadata(self) -> dict[str, Any]:
        """Free-form metadata; assign to replace it."""
        return self._fields()["metadata"]

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._write_field("metadata", dict(value), replace=True)

    @property
    def user_profile(self) -> StateDict:
        """The user's profile (``preferences`` inside it); assignments and changes are written through."""
        return StateDict(self, "user_profile", self._fields()["user_profile"])

    @user_profile.setter
    def user_profile(self, value: dict[str, Any]) -> None:
        self._write_field("user_profile", dict(value), replace=True)

    async def aupdate_user_data(self, **values: Any) -> dict[str, Any]:
        """Merge ``values`` into user_data; returns the new user_data."""
        return await self._op("update_fields", "user_data", values, False)

    def update_user_data(self, **values: Any) -> dict[str, Any]:
        return run_sync(self._op, "update_fields", "user_data", values, False)

    async def aupdate_profile(self, key: str, value: Any) -> None:
        await self._op("update_fields", "user_profile", {key: value}, False)

    def update_profile(self, key: str, value: Any) -> None:
        """Set one field of the user profile."""
        run_sync(self.aupdate_profile, key, value)

    async def aupdate_preference(self, key: str, value: Any) -> None:
        await self._op("update_item", "user_profile", "preferences", {key: value}, "merge")

    def update_preference(self, key: str, value: Any) -> None:
        """Set one user preference (kept in ``user_profile['preferences']``)."""
        run_sync(self.aupdate_preference, key, value)

    def get_preferences(self) -> dict[str, Any]:
        return self.user_profile.get("preferences", {})

    def get_duration(self) -> float:
        """Seconds from the session's creation to its last update."""
        st = self._fields()
        return st["updated_at"] - st["created_at"]

    # -- context and results (what workflows read and record) -------------------------
    async def aadd_result(self, objective: str, results: Any) -> None:
        """Record a workflow's ``results`` for ``objective`` in the session state."""
        await self._op("update_item", "metadata", "results",
                       {"objective": objective, "results": results, "timestamp": time.time()}, "append")

    def add_result(self, objective: str, results: Any) -> None:
        run_sync(self.aadd_result, objective, results)

    async def aget_context(self, window: int = 10) -> dict[str, Any]:
        """A plain dict for prompts and workflows: recent messages, user data, results, counters."""
        st = await self.aget_state()  # type: ignore[attr-defined]
        recent = st["history"][-window:] if window else []
        return {"session_id": self.session_id, "user_id": self.user_id,
                "recent_history": [{"role": m["role"], "content": m.get("content"), "name": m.get("name")}
                                   for m in recent],
                "recent_topics": extract_topics(recent), "user_data": st["user_data"],
                "user_profile": st["user_profile"], "results": st["metadata"].get("results", []),
                "interaction_count": st["turns"], "session_duration": time.time() - st["created_at"]}

    def get_context(self, window: int = 10) -> dict[str, Any]:
        return run_sync(self.aget_context, window)

    def extract_topics(self, history: list[dict[str, Any]] | None = None, top: int = 5) -> list[str]:
        """The most frequent content words of the user's messages (all, or of ``history``)."""
        return extract_topics(self.get_history() if history is None else history, top)  # type: ignore[attr-defined]

    # -- expiry -----------------------------------------------------------------------
    async def apin(self) -> None:
        """Keep this session until it is deleted (no TTL)."""
        await self._op("set_ttl", None)

    def pin(self) -> None:
        run_sync(self.apin)

    async def aunpin(self, ttl: float | None = None) -> None:
        """Let the session expire again, ``ttl`` seconds (default: the runtime's) after access."""
        ttl = ttl or self.runtime.settings.default_ttl or 3600.0
        await self._op("set_ttl", ttl)

    def unpin(self, ttl: float | None = None) -> None:
        run_sync(self.aunpin, ttl)

    # -- files ------------------------------------------------------------------------
    async def asave(self, path: str | os.PathLike[str], *, with_checkpoints: bool = False) -> str:
        """Write the session to ``path`` atomically, in repertory's format (also for ``.pkl``)."""
        from repertory.state.files import write_session_file

        doc = await self._op("export", with_checkpoints)
        return str(write_session_file(path, doc))

    def save(self, path: str | os.PathLike[str], *, with_checkpoints: bool = False) -> str:
        return run_sync(self.asave, path, with_checkpoints=with_checkpoints)

    @classmethod
    async def aload(cls, path: str | os.PathLike[str], agent: Agent | None = None,
                    session_id: str | None = None, **kwargs: Any) -> Session:
        """Restore a saved session into the runtime (same id unless ``session_id``) and return it."""
        from repertory.state.files import read_session_file

        doc = read_session_file(path)
        meta = doc["meta"]
        session = cls(session_id or meta["session_id"], agent=agent,
                      user_id=kwargs.pop("user_id", meta.get("user_id")), **kwargs)
        await session._op("import", doc, True)
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
        await self._op("read_fields")
        return self  # type: ignore[return-value]

    async def __aexit__(self, *exc: object) -> None:
        return None
