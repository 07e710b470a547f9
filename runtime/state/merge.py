"""Merging two sessions' states (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MergeResult", "merge_states"]


@dataclass(slots=True)
class MergeResult:
    """The merged history and user data, and the user-data keys both sides set differently."""

    history: list[dict[str, Any]]
    user_data: dict[str, Any]
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def _identity(m: dict[str, Any]) -> tuple:
    return (m.get("role"), m.get("content"), m.get("timestamp"), m.get("tool_call_id"))


def merge_states(a: dict[str, Any], b: dict[str, Any]) -> MergeResult:
    """Interleave histories by timestamp (stable, duplicates once); later-updated user data wins."""
    seen: set[tuple] = set()
    tagged = []
    for side, state in enumerate((a, b)):
        for pos, m in enumerate(state["history"]):
            ident = _identity(m)
            if ident in seen:
                continue  # a shared past (a fork) appears once
            seen.add(ident)
            tagged.append((m.get("timestamp") or 0.0, side, pos, m))
    tagged.sort(key=lambda t: (t[0], t[1], t[2]))
    a_newer = a.get("updated_at", 0) >= b.get("updated_at", 0)
    first, second = (b, a) if a_newer else (a, b)
    user_data = {**first["user_data"], **second["user_data"]}
    conflicts = [
        {"key": k, "values": {a["session_id"]: a["user_data"][k], b["session_id"]: b["user_data"][k]},
         "kept": user_data[k], "from": second["session_id"]}
        for k in sorted(set(a["user_data"]) & set(b["user_data"]), key=str)
        if a["user_data"][k] != b["user_data"][k]
    ]
    return MergeResult([t[3] for t in tagged], user_data, conflicts)
