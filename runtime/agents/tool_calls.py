"""Pairing of tool calls and their results, as model providers require it.

OpenAI, Anthropic and the providers that copy them refuse a prompt in which an assistant
message's tool call has no ``tool`` message answering it. A history can end that way when it
was written by another framework that crashed between the call and its result, or imported
from one. :func:`interrupted_results` and :func:`repair_history` answer each missing call with
a recorded result whose content is :data:`INTERRUPTED`, so the next prompt is accepted and
the model learns that the call never reported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

__all__ = ["INTERRUPTED", "interrupted_results", "repair_history", "unanswered_calls"]

INTERRUPTED = "tool call interrupted"  # documented wording (README, "Step-level durability")


def unanswered_calls(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls of the last assistant message in ``messages`` that no later ``tool``
    message answers (by ``tool_call_id``), in call order; empty if a user message came since."""
    answered: set[Any] = set()
    for m in reversed(messages):
        role = m.get("role")
        if role == "tool":
            answered.add(m.get("tool_call_id"))
        elif role == "assistant":
            return [c for c in m.get("tool_calls") or () if c.get("id") not in answered]
        else:
            return []
    return []


def _interrupted(call: dict[str, Any]) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call.get("id"), "name": (call.get("function") or {}).get("name"),
            "content": INTERRUPTED, "timestamp": time.time(), "interrupted": True}


def interrupted_results(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results to append after ``messages`` so that its last tool calls are all answered."""
    return [_interrupted(c) for c in unanswered_calls(messages)]


def repair_history(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with every unanswered tool call answered right after the results its
    assistant message did get (the same list, copied, when nothing is missing)."""
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        out.append(m)
        nxt = messages[i + 1] if i + 1 < len(messages) else None
        if nxt is not None and nxt.get("role") == "tool":
            continue  # the results of this call group go on; check at its end
        out.extend(interrupted_results(out))
    return out
