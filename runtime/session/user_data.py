"""Session methods for what a session knows about its user: user data, profile,
preferences, results, context, and how long the session lives.

A mixin of :class:`repertory.Session`; every method is one typed host call.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from repertory._sync import run_sync
from repertory.state.context import extract_topics, session_context

if TYPE_CHECKING:
    from repertory.ids import SessionRef
    from repertory.runtimes.base import Runtime
    from repertory.session.handle import Session

__all__ = ["StateDict", "UserDataMixin", "extract_topics"]


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


class UserDataMixin:
    """User data, profile, preferences, results, context, expiry."""

    ref: SessionRef
    runtime: Runtime

    # -- user data, profile, preferences ----------------------------------------------
    def _fields(self) -> dict[str, Any]:
        """user_data, user_profile, metadata, times and counters, without the history."""
        return run_sync(self.runtime.read_fields, self.ref)

    def _write_field(self, field: str, value: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        return run_sync(self.runtime.update_fields, self.ref, field, value, replace)

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
        return await self.runtime.update_fields(self.ref, "user_data", values, False)

    def update_user_data(self, **values: Any) -> dict[str, Any]:
        return run_sync(self.aupdate_user_data, **values)

    async def aupdate_profile(self, key: str, value: Any) -> None:
        await self.runtime.update_fields(self.ref, "user_profile", {key: value}, False)
        await self._remember(f"The user's {key} is {value}.", "profile")

    def update_profile(self, key: str, value: Any) -> None:
        """Set one field of the user profile (also a long-term memory of the user with
        ``persist_memory``)."""
        run_sync(self.aupdate_profile, key, value)

    async def aupdate_preference(self, key: str, value: Any) -> None:
        await self.runtime.update_item(self.ref, "user_profile", "preferences", {key: value}, "merge")
        await self._remember(f"The user's preferred {key} is {value}.", "preference")

    def update_preference(self, key: str, value: Any) -> None:
        """Set one user preference (kept in ``user_profile['preferences']``, and with
        ``persist_memory`` in the user's long-term memory, so later sessions recall it)."""
        run_sync(self.aupdate_preference, key, value)

    async def _remember(self, fact: str, kind: str) -> None:
        """Offer ``fact`` to the user's long-term memory when this session has memory on (the
        agent's Memory settings apply: threshold, cap, scorer)."""
        agent = await self._aready()  # type: ignore[attr-defined]
        spec = self._memory(agent)  # type: ignore[attr-defined]
        if spec is None:
            return
        from repertory.memory.memory import Memory

        if isinstance(agent.memory, Memory):
            memory = agent.memory
        else:  # persist_memory=True without the agent's Memory: the default one, same file
            memory = getattr(self, "_profile_memory", None)
            if memory is None or memory.db_path != spec["db_path"]:
                memory = Memory(config={"db_path": spec["db_path"]})
                self._profile_memory = memory
        await memory.aadd(fact, user_id=self.user_id, session_id=self.session_id, kind=kind,
                          importance=0.9, relevance=1.0)

    def get_preferences(self) -> dict[str, Any]:
        return self.user_profile.get("preferences", {})

    def get_duration(self) -> float:
        """Seconds from the session's creation to its last update."""
        st = self._fields()
        return st["updated_at"] - st["created_at"]

    # -- context and results (what workflows read and record) -------------------------
    async def aadd_result(self, objective: str, results: Any) -> None:
        """Record a workflow's ``results`` for ``objective`` in the session state."""
        await self.runtime.update_item(self.ref, "metadata", "results",
                       {"objective": objective, "results": results, "timestamp": time.time()}, "append")

    def add_result(self, objective: str, results: Any) -> None:
        run_sync(self.aadd_result, objective, results)

    async def aget_context(self, window: int | None = None) -> dict[str, Any]:
        """A plain dict for prompts and workflows: the recent window (``window`` messages, default
        the session's ``context_window`` or 10), user profile, recent topics, session duration
        (seconds since creation), interaction count (turns), user data and recorded results."""
        if window is None:
            window = getattr(self, "context_window", None) or 10
        st = await self.aget_state()  # type: ignore[attr-defined]
        recent = st["history"][-window:] if window else []
        return {"session_id": self.session_id, "user_id": self.user_id,
                "recent_history": [{"role": m["role"], "content": m.get("content"), "name": m.get("name")}
                                   for m in recent],
                **session_context(st, recent), "user_data": st["user_data"],
                "results": st["metadata"].get("results", [])}

    def get_context(self, window: int | None = None) -> dict[str, Any]:
        return run_sync(self.aget_context, window)

    async def abuild_context(self, window: int | None = None) -> dict[str, Any]:
        """The session's context (:meth:`get_context`); ``prompt_context="full"`` puts its
        profile, topics, duration and interaction count in every prompt."""
        return await self.aget_context(window)

    def build_context(self, window: int | None = None) -> dict[str, Any]:
        return run_sync(self.abuild_context, window)

    def extract_topics(self, history: list[dict[str, Any]] | None = None, top: int = 5) -> list[str]:
        """The most frequent content words of the user's messages (all, or of ``history``)."""
        return extract_topics(self.get_history() if history is None else history, top)  # type: ignore[attr-defined]

    # -- expiry -----------------------------------------------------------------------
    async def apin(self) -> None:
        """Keep this session until it is deleted (no TTL)."""
        await self.runtime.set_ttl(self.ref, None)

    def pin(self) -> None:
        run_sync(self.apin)

    async def aunpin(self, ttl: float | None = None) -> None:
        """Let the session expire again, ``ttl`` seconds (default: the runtime's) after access."""
        ttl = ttl or self.runtime.settings.default_ttl or 3600.0
        await self.runtime.set_ttl(self.ref, ttl)

    def unpin(self, ttl: float | None = None) -> None:
        run_sync(self.aunpin, ttl)

