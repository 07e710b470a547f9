"""What a session tells its agent about itself: topics, profile, duration, interaction count.

Pure functions over the session's meta and recent messages, shared by the host (the prompt's
context, ``Session(prompt_context=...)``) and the handle (``Session.build_context()``).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from repertory.agents.demo_model import keywords

__all__ = ["PROMPT_CONTEXTS", "extract_topics", "prompt_context", "session_context"]

# What the prompt's context carries: nothing, the user profile when it has one, or all of
# session_context (profile, recent topics, duration, interaction count).
PROMPT_CONTEXTS = (None, "profile", "full")


def extract_topics(history: list[dict[str, Any]], top: int = 5) -> list[str]:
    """Most frequent content words in the user messages of ``history``, most frequent first."""
    counts = Counter(w for m in history if m.get("role") == "user" and isinstance(m.get("content"), str)
                     for w in keywords(m["content"]) if len(w) > 2)
    return [w for w, _ in counts.most_common(top)]


def session_context(meta: dict[str, Any], recent: list[dict[str, Any]], now: float | None = None) -> dict[str, Any]:
    """The seed page's context: user profile, recent topics, duration (s), interaction count."""
    return {"user_profile": meta["user_profile"], "recent_topics": extract_topics(recent),
            "session_duration": (time.time() if now is None else now) - meta["created_at"],
            "interaction_count": meta["turns"]}


def prompt_context(kind: str | None, given: dict | None, meta: dict[str, Any],
                   recent: Any) -> dict | None:
    """The context for a turn's prompt: ``given`` (``agent.context``) plus what ``kind`` adds;
    what ``given`` holds already wins. ``recent`` is called for the recent messages only when needed."""
    if kind is None:
        return given
    if kind == "profile":
        profile = meta["user_profile"]
        if not profile or (given and "user_profile" in given):
            return given
        return {**(given or {}), "user_profile": profile}
    return {**session_context(meta, recent()), **(given or {})}
