"""A session's agents in its meta: the definitions it continues with, and their replacements.

``meta["agent"]`` is the definition of the agent ``chat()`` uses (None: the default
assistant), ``meta["agents"]`` a multi-agent session's named definitions, and
``meta["agent_changes"]`` the newest :data:`~repertory.state.schema.AGENT_CHANGES_KEPT`
replacements: ``{"at": time, "field": "agent" | "agents", "name": ..., "old": key, "new": key}``
with keys from :func:`~repertory.agents.definition.definition_key` (None where an agent was
added or removed). Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Any

from repertory.agents.definition import definition_key
from repertory.state import schema

__all__ = ["stored_definitions", "with_definitions"]


def stored_definitions(meta: dict[str, Any]) -> dict[str, Any]:
    """The definitions ``meta`` holds, in the form a turn carries them."""
    return {"agent": meta.get("agent"), "agents": meta.get("agents", {})}


def _key(d: dict[str, Any] | None) -> str | None:
    return None if d is None else definition_key(d)


def _changes(old: dict[str, Any], new: dict[str, Any], now: float) -> list[dict[str, Any]]:
    out = []
    if old["agent"] != new["agent"]:
        name = (new["agent"] or old["agent"])["name"]
        out.append({"at": now, "field": "agent", "name": name, "old": _key(old["agent"]), "new": _key(new["agent"])})
    for name in sorted(set(old["agents"]) | set(new["agents"])):
        a, b = old["agents"].get(name), new["agents"].get(name)
        if a != b:
            out.append({"at": now, "field": "agents", "name": name, "old": _key(a), "new": _key(b)})
    return out


def with_definitions(meta: dict[str, Any], defs: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """The meta fields to write so that the session holds ``defs`` (a handle's definitions,
    as :func:`repertory.state.schema.check_agent_definitions` takes them); None if it holds them.

    A session that held definitions records each replaced one; the first definitions of a
    session (new, or stored before sessions kept them) are not a change.
    """
    if defs is None:
        return None
    old = stored_definitions(meta)
    if defs == old:  # the common case: the handle's agents are the stored ones
        return None
    defs = schema.check_agent_definitions(defs, "the agent definitions of a turn")
    changes = list(meta.get("agent_changes", []))
    if old["agent"] is not None:
        changes = [*changes, *_changes(old, defs, now)][-schema.AGENT_CHANGES_KEPT:]
    return {"agent": defs["agent"], "agents": dict(defs["agents"]), "agent_changes": changes}
