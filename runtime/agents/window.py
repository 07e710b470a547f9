"""The short-term window: which past messages fit in an agent's prompt.

A prompt holds the system text, the newest past messages that fit, and the user's message.
Limits: ``messages`` (``context_window``), ``tokens`` (``max_context_tokens``; by default the
model's input size from litellm's model table, 8,192 words for ``repertory/demo``) counted with
litellm's token counter for the model (words for the demo model, as it reports usage). What
does not fit goes by ``policy``:

* ``"drop"``: the oldest messages are left out of the prompt (they stay in the history).
* ``"summarize"``: they are summarised by the agent's model into a running summary that rides
  in the system text; the summary call's tokens are counted in the session's usage.

Hysteresis keeps writes rare: the session stores where its window starts (``meta["window"]``)
only when that moves, so a short session writes nothing, and a host sends only the messages
from there on. ``drop`` moves the start once the messages left out outnumber those kept;
``summarize`` summarises down to half the limits at a time, so one summary call serves many
turns. Pure logic plus one model call per summary; no I/O of its own.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from repertory.agents.demo_model import DEMO_CONTEXT_WORDS, DEMO_MODEL, SUMMARY_MARKER, word_count
from repertory.agents.model_client import NULL_MODEL
from repertory.errors import AgentError

__all__ = ["SUMMARY_WORDS", "ContextWindow", "Fitted", "summary_request"]

SUMMARY_WORDS = 200  # at most, asked of the model (and a quarter of the token limit)
_WORDS = re.compile(r"\S+")


def summary_request(previous: str | None, dropped: list[dict], words: int) -> list[dict]:
    """The prompt that asks a model to fold ``dropped`` messages into ``previous``."""
    lines = [f"{m.get('role', '?').capitalize()}: {m.get('content')}" for m in dropped
             if isinstance(m.get("content"), str) and m.get("content")]
    text = (f"Summary so far: {previous}\n\n" if previous else "") + "Conversation:\n" + "\n".join(lines)
    return [{"role": "system", "content": f"{SUMMARY_MARKER} in at most {words} words. Keep the facts the user "
                                          "stated, their preferences and open questions."},
            {"role": "user", "content": text}]


@functools.lru_cache(maxsize=65536)
def _litellm_count(model: str, role: str, content: str) -> int:
    from repertory.agents.model_client import load_litellm

    return int(load_litellm().token_counter(model=model, messages=[{"role": role, "content": content}]))


@functools.lru_cache(maxsize=256)
def model_context_size(model: str) -> int | None:
    """The model's input size in tokens from litellm's model table (None if unknown)."""
    if model == DEMO_MODEL:
        return DEMO_CONTEXT_WORDS
    from repertory.agents.model_client import load_litellm

    if model == NULL_MODEL:
        return None
    try:
        info = load_litellm().get_model_info(model)
    except Exception:  # not in the table: no default limit
        return None
    n = info.get("max_input_tokens") or info.get("max_tokens")
    return int(n) if n else None


@dataclass(slots=True)
class Fitted:
    """A turn's past messages that fit, the summary to show, and the window state to store
    (None: unchanged) with what summarising cost."""

    history: list[dict]
    summary: str | None
    state: dict[str, Any] | None = None
    usage: dict[str, int] = field(default_factory=dict)


class ContextWindow:
    """One agent's window: its defaults, its token counter, its summariser."""

    def __init__(self, model: str, *, tokens: int | None = None, policy: str | None = None,
                 summarize: Callable[[list[dict]], Any] | None = None) -> None:
        self.model = model
        self.default_tokens = tokens
        self.default_policy = policy or "drop"
        self._summarize = summarize  # async: prompt -> ModelReply
        self._model_tokens: int | None | bool = False  # the model's input size, looked up on first use
        # The offline models count words (the demo model reports its usage so); others, litellm.
        self._counter = word_count if model in (DEMO_MODEL, NULL_MODEL) else None

    def count(self, message: dict) -> int:
        """Tokens of one message as the model counts them."""
        content = message.get("content")
        if not isinstance(content, str):
            content = "" if content is None else str(content)
        if self._counter is not None:
            return self._counter(content)
        return _litellm_count(self.model, message.get("role") or "user", content)

    def default_limit(self) -> int | None:
        """The agent's token limit, else the model's input size (None: no limit)."""
        if self._model_tokens is False:
            self._model_tokens = self.default_tokens or model_context_size(self.model)
        return self._model_tokens  # type: ignore[return-value]

    def limits(self, settings: dict | None) -> tuple[int | None, int | None, str]:
        """(messages, tokens, policy) for a turn: the session's settings over the agent's, the
        model's input size when neither sets tokens."""
        if settings is None:
            return None, self.default_limit(), self.default_policy
        tokens = settings.get("tokens") or self.default_limit()
        return settings.get("messages"), tokens, settings.get("policy") or self.default_policy

    async def fit(self, history: list[dict], settings: dict | None, system: str,
                  limits: tuple[int | None, int | None, str] | None = None) -> Fitted:
        """Fit ``history`` (past messages, then the user's) under the limits (``limits``, else
        :meth:`limits` of ``settings``), with ``system`` (the system text without the summary)
        in the prompt too."""
        summary = (settings or {}).get("summary")
        offset = (settings or {}).get("offset", 0)
        n_max, t_max, policy = limits or self.limits(settings)
        if n_max is None and t_max is None:
            return Fitted(history, summary)
        past, user = history[:-1], history[-1]
        if self._counter is not None and t_max is not None and (n_max is None or len(past) <= n_max):
            # A word takes a character and a separator: when even that bound fits, no counting.
            chars = len(system) + (len(summary) if summary and policy == "summarize" else 0)
            for m in history:
                c = m.get("content")
                chars += len(c) + 1 if isinstance(c, str) else 0
            if chars // 2 + 1 <= t_max:
                return Fitted(history, summary if policy == "summarize" else None)
        fixed = word_count(system) if self._counter else (self.count({"role": "system", "content": system})
                                                           if system else 0)
        fixed += self.count(user)
        counts: list[int] = []

        def cost(i: int) -> int:  # tokens of past[-1 - i], counted newest first, once
            while len(counts) <= i:
                counts.append(self.count(past[-1 - len(counts)]))
            return counts[i]

        def keep_from(n_cap: int | None, t_cap: int | None) -> int:
            """Index of the oldest past message kept when filling newest first."""
            used, k = 0, 0
            while k < len(past) and (n_cap is None or k < n_cap):
                c = cost(k)
                if t_cap is not None and used + c > t_cap:
                    break
                used += c
                k += 1
            start = len(past) - k
            while start < len(past) and past[start].get("role") == "tool":
                start += 1  # a tool result without the call that asked for it is refused by models
            return start

        summary_cost = self._words(summary)
        room = None if t_max is None else t_max - fixed - (summary_cost if policy == "summarize" else 0)
        if room is not None and room < 0:
            raise AgentError(f"this message and the agent's instructions take {fixed} tokens, over the context "
                             f"limit of {t_max}; send a shorter message or raise max_context_tokens")
        start = keep_from(n_max, room)
        if start == 0:
            return Fitted(history, summary if policy == "summarize" else None)
        if policy != "summarize" or self._summarize is None or offset is None:
            # Move the stored start once the left-out messages outnumber the kept ones.
            moved = offset is not None and start >= len(past) - start
            state = {"start": offset + start, "summary": None} if moved else None
            return Fitted([*past[start:], user], None, state)
        # Summarise down to half the limits, so that the next turns fit without a summary call.
        words = SUMMARY_WORDS if t_max is None else max(8, min(SUMMARY_WORDS, t_max // 4))
        half_room = None if t_max is None else max(0, (t_max - fixed - words) // 2)
        start = max(start, keep_from(None if n_max is None else max(n_max // 2, 1), half_room))
        reply = await self._summarize(summary_request(summary, past[:start], words))
        new = " ".join(_WORDS.findall(reply.message.get("content") or "")[: words * 2])  # a model may overrun
        if t_max is not None:
            # The summary's own size may leave less room than half: drop what still does not fit.
            start = max(start, keep_from(None, t_max - fixed - self._words(new)))
        state = {"start": offset + start, "summary": new}
        return Fitted([*past[start:], user], new, state, dict(reply.usage))

    def _words(self, text: str | None) -> int:
        if not text:
            return 0
        return self.count({"role": "system", "content": text}) if self._counter is None else self._counter(text)

    def trim(self, prompt: list[dict], produced: list[dict], t_max: int | None) -> list[dict]:
        """``prompt`` (system, past messages, user's) with the oldest past messages left out
        until the prompt and this turn's tool rounds (``produced``) fit in ``t_max``."""
        if t_max is None or not produced:
            return prompt
        total = sum(self.count(m) for m in prompt) + sum(self.count(m) for m in produced)
        if total <= t_max:
            return prompt
        head = 1 if prompt and prompt[0].get("role") == "system" else 0
        keep = list(prompt)
        while total > t_max and len(keep) > head + 1:
            total -= self.count(keep.pop(head))
            while len(keep) > head + 1 and keep[head].get("role") == "tool":
                total -= self.count(keep.pop(head))
        if total > t_max:
            raise AgentError(f"this turn's tool calls and results take {total} tokens, over the context limit of "
                             f"{t_max}; make the tools return less or raise max_context_tokens")
        return keep
