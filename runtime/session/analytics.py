"""Session analytics: pure functions over a session's state (``Session.get_state()``).

Every figure comes from what the session stores: each assistant message records its agent
(``name``), ``model``, ``latency`` (seconds of its model call), ``usage`` (litellm's token
counts) and ``cost`` (USD, from litellm's cost table); the meta counts failed turns and
retries (``metrics``), explicit ratings (``Session.rate``) and the tokens spent summarising
older turns (``window``). The results are plain JSON-able dicts.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from typing import Any

from repertory._sync import run_sync
from repertory.state.context import extract_topics

__all__ = ["AnalyticsMixin", "HEURISTIC", "NEGATIVE_WORDS", "POSITIVE_WORDS", "analytics", "duration", "percentile",
           "performance_metrics", "satisfaction"]

# The heuristic's name, reported with its score: change the name when the method changes.
HEURISTIC = "heuristic:feedback-words-v1"
POSITIVE_WORDS = frozenset({"thanks", "thank", "great", "perfect", "helpful", "excellent", "awesome",
                            "exactly", "brilliant", "nice", "love", "works", "solved"})
NEGATIVE_WORDS = frozenset({"wrong", "useless", "bad", "incorrect", "unhelpful", "confusing", "confused",
                            "broken", "terrible", "frustrating", "annoying", "nonsense", "fails", "failed"})
_WORD = re.compile(r"[a-z]+")


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` from 0 to 100) of ``values``; None for none."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


def duration(state: dict[str, Any]) -> float:
    """Seconds from the session's creation to its last update."""
    return state["updated_at"] - state["created_at"]


def satisfaction(state: dict[str, Any]) -> dict[str, Any]:
    """How satisfied the user seems, from 0 to 1, and how that was found (``method``).

    With explicit ratings (``Session.rate``): their mean (``method: "ratings"``). Without:
    :data:`HEURISTIC`, over the user's messages: each one with more words of
    :data:`POSITIVE_WORDS` than of :data:`NEGATIVE_WORDS` counts as positive, the reverse as
    negative; the score is ``(positive + 1) / (positive + negative + 2)`` (0.5 with no signal),
    then lowered by the share of failed turns: ``score * (1 - errors / (turns + errors))``.
    """
    ratings = state.get("ratings") or []
    if ratings:
        scores = [r["score"] for r in ratings]
        return {"score": sum(scores) / len(scores), "method": "ratings", "ratings": len(scores)}
    positive = negative = 0
    for m in state["history"]:
        if m.get("role") != "user" or not isinstance(m.get("content"), str):
            continue
        words = _WORD.findall(m["content"].lower())
        p = sum(w in POSITIVE_WORDS for w in words)
        n = sum(w in NEGATIVE_WORDS for w in words)
        positive += p > n
        negative += n > p
    score = (positive + 1) / (positive + negative + 2)
    errors = state.get("metrics", {}).get("errors", 0)
    if errors:
        score *= 1 - errors / (state["turns"] + errors)
    return {"score": score, "method": HEURISTIC, "ratings": 0,
            "signals": {"positive": positive, "negative": negative, "errors": errors}}


def _tokens(usage: dict[str, int], into: dict[str, int]) -> None:
    into["prompt"] += usage.get("prompt_tokens", 0)
    into["completion"] += usage.get("completion_tokens", 0)


def performance_metrics(state: dict[str, Any]) -> dict[str, Any]:
    """Turns, model calls, latency p50/p95 (seconds, per agent and overall), tokens in and out,
    cost, failed turns and retries.

    Tokens include the model calls that summarised older turns (``summary_tokens``); ``cost``
    sums the replies litellm could price (``priced_calls`` of ``model_calls``).
    """
    per_agent: dict[str, dict[str, Any]] = {}
    latencies: list[float] = []
    tokens = {"prompt": 0, "completion": 0}
    cost, priced = 0.0, 0
    for m in state["history"]:
        if m.get("role") != "assistant":
            continue
        name = m.get("name") or m.get("agent") or "assistant"
        a = per_agent.setdefault(name, {"model_calls": 0, "latencies": [], "tokens": {"prompt": 0, "completion": 0},
                                        "cost": 0.0, "models": []})
        a["model_calls"] += 1
        if m.get("model") and m["model"] not in a["models"]:
            a["models"].append(m["model"])
        if "latency" in m:
            a["latencies"].append(m["latency"])
            latencies.append(m["latency"])
        usage = m.get("usage") or {}
        _tokens(usage, a["tokens"])
        _tokens(usage, tokens)
        if "cost" in m:
            a["cost"] += m["cost"]
            cost += m["cost"]
            priced += 1
    agents = {}
    for name, a in per_agent.items():
        lat = a.pop("latencies")
        a["tokens"]["total"] = a["tokens"]["prompt"] + a["tokens"]["completion"]
        agents[name] = {**a, "latency_p50": percentile(lat, 50), "latency_p95": percentile(lat, 95)}
    window = state.get("window") or {}
    summary_usage = window.get("usage", {})
    summary_tokens = {"prompt": summary_usage.get("prompt_tokens", 0),
                      "completion": summary_usage.get("completion_tokens", 0)}
    for k in tokens:
        tokens[k] += summary_tokens[k]
    tokens["total"] = tokens["prompt"] + tokens["completion"]
    metrics = state.get("metrics", {})
    return {"turns": state["turns"], "model_calls": sum(a["model_calls"] for a in agents.values()),
            "latency_p50": percentile(latencies, 50), "latency_p95": percentile(latencies, 95),
            "tokens": tokens, "summary_tokens": {**summary_tokens, "summaries": window.get("summaries", 0)},
            "cost": cost, "priced_calls": priced, "errors": metrics.get("errors", 0),
            "retries": {k: metrics.get(k, 0) for k in ("cas_retries", "repeated_model_calls", "lease_waits")},
            "agents": agents}


def analytics(state: dict[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """Everything above for one session, as plain data (what ``repertory sessions show`` prints)."""
    history = state["history"]
    return {"session_id": state["session_id"], "user_id": state["user_id"],
            "created_at": state["created_at"], "updated_at": state["updated_at"],
            "duration": duration(state), "age": (time.time() if now is None else now) - state["created_at"],
            "total_interactions": len(history), "turns": state["turns"],
            "topics": extract_topics(history), "satisfaction": satisfaction(state),
            "performance": performance_metrics(state)}


class AnalyticsMixin:
    """Ratings and analytics of a :class:`repertory.Session`; every method has an async twin."""

    async def arate(self, score: float, comment: str | None = None) -> None:
        """Record the user's rating of the session, from 0 (unhappy) to 1 (happy); ratings are
        kept apart from ``metadata`` (the newest 100) and drive the satisfaction score."""
        await self.runtime.add_rating(self.ref, score, comment)  # type: ignore[attr-defined]

    def rate(self, score: float, comment: str | None = None) -> None:
        run_sync(self.arate, score, comment)

    async def aanalytics(self) -> dict[str, Any]:
        """Duration, topics, satisfaction and performance metrics as plain (JSON-able) data."""
        return analytics(await self.aget_state())  # type: ignore[attr-defined]

    def analytics(self) -> dict[str, Any]:
        return run_sync(self.aanalytics)

    async def acalculate_satisfaction_score(self) -> dict[str, Any]:
        """``{"score": 0..1, "method": ...}``: the mean of explicit ratings, else :data:`HEURISTIC`."""
        return satisfaction(await self.aget_state())  # type: ignore[attr-defined]

    def calculate_satisfaction_score(self) -> dict[str, Any]:
        return run_sync(self.acalculate_satisfaction_score)

    async def aget_performance_metrics(self) -> dict[str, Any]:
        """Turns, latency p50/p95 per agent, tokens in/out, cost, errors and retries."""
        return performance_metrics(await self.aget_state())  # type: ignore[attr-defined]

    def get_performance_metrics(self) -> dict[str, Any]:
        return run_sync(self.aget_performance_metrics)
