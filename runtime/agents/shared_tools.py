"""Built-in tools that let an agent read and write its session's shared state."""

from __future__ import annotations

from typing import Any

from repertory.shared.handle import SharedState
from repertory.agents.tools import Tool

__all__ = ["shared_state_tools"]


def shared_state_tools(state: SharedState) -> list[Tool]:
    """``shared_state_get``, ``shared_state_set`` and ``shared_state_append`` bound to ``state``."""

    async def shared_state_get(key: str) -> Any:
        """Read a value from the shared state of this session's agents."""
        return await state.aget(key)

    async def shared_state_set(key: str, value: Any) -> str:
        """Store a value in the shared state, for the other agents of this session."""
        await state.aset(key, value)
        return "ok"

    async def shared_state_append(key: str, item: Any) -> int:
        """Append an item to a list in the shared state; returns the list's length."""
        return await state.aappend(key, item)

    return [Tool(shared_state_get), Tool(shared_state_set), Tool(shared_state_append)]
