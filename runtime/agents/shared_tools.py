"""Built-in tools that let an agent read and write its session's shared state."""

from __future__ import annotations

import uuid
from typing import Any

from repertory.agents.tools import Tool
from repertory.shared.core import SharedStateCore

__all__ = ["shared_state_tools"]


def shared_state_tools(backend: Any) -> list[Tool]:
    """``shared_state_get``, ``shared_state_set`` and ``shared_state_append`` on a shared-state
    backend (``invoke(SharedStateCore.method, *args)``; see ``repertory.runtimes.base``)."""

    async def shared_state_get(key: str) -> Any:
        """Read a value from the shared state of this session's agents."""
        return await backend.invoke(SharedStateCore.get, key, None)

    async def shared_state_set(key: str, value: Any) -> str:
        """Store a value in the shared state, for the other agents of this session."""
        await backend.invoke(SharedStateCore.set, uuid.uuid4().hex, key, value)
        return "ok"

    async def shared_state_append(key: str, item: Any) -> int:
        """Append an item to a list in the shared state; returns the list's length."""
        return await backend.invoke(SharedStateCore.append, uuid.uuid4().hex, key, item)

    return [Tool(shared_state_get), Tool(shared_state_set), Tool(shared_state_append)]
