"""A turn's prompt as the host holds it, sent whole or as what an agent does not have yet.

A prompt is the session's stored messages (from the window's start), packed, plus the turn's
own messages (repairs of the history, the user message). Sent whole, it costs the host and Ray
O(history) on every turn: a 1,000-message history is ~120 KB, past Ray's 100 KB limit for
arguments sent inline, and such a call costs ~1 ms more on each side (measured).

A session keeps its packed history between turns and only ever appends to it (``lineage``:
a random id per packed history; a rewrite starts a new one). An agent replica that received a
prompt of a lineage keeps its stored messages (``repertory.agents.prompt_cache``); the next
prompt of that lineage sends it only the stored messages added since, and the turn's own. A
replica that no longer holds them answers :class:`~repertory.errors.PromptUnknown`, and the
prompt is sent whole. Agents in the host's own process take part the same way (:func:`in_process`).
"""

from __future__ import annotations

from typing import Any

from repertory.errors import PromptUnknown
from repertory.stores.codec import array_head

__all__ = ["Prompt", "in_process"]


class Prompt:
    """One turn's history for an agent: ``count`` stored messages packed in ``body`` (the first
    ``size`` bytes of it: a kept body grows with later turns) and ``n_turn`` messages of the
    turn's own, packed in ``turn``."""

    __slots__ = ("_body", "_size", "_count", "_turn", "_n_turn", "_lineage", "_sent", "_blob")

    def __init__(self, body: bytes | bytearray, count: int, turn: bytes, n_turn: int,
                 lineage: bytes | None = None, sent: dict[str, tuple[int, int]] | None = None) -> None:
        self._body, self._size, self._count = body, len(body), count
        self._turn, self._n_turn = turn, n_turn
        self._lineage = lineage
        # replica name -> (messages, bytes) of this lineage it holds, shared by the lineage's prompts
        self._sent = sent if sent is not None else {}
        self._blob: bytes | None = None

    def blob(self) -> bytes:
        """The whole prompt: one msgpack array of the messages."""
        if self._blob is None:
            body = self._body if len(self._body) == self._size else self._body[:self._size]
            self._blob = b"".join((array_head(self._count + self._n_turn), body, self._turn))
        return self._blob

    def holds(self, replica: str) -> bool:
        """Whether ``replica`` received a prompt of this lineage (a call there sends less)."""
        return replica in self._sent

    def for_replica(self, replica: str, *, whole: bool = False) -> bytes | dict[str, Any]:
        """What to send ``replica``: the stored messages it does not hold and the turn's own
        (a dict, see agents.prompt_cache), or the whole blob when it has no lineage to keep."""
        if self._lineage is None:
            return self.blob()
        n, size = (0, 0) if whole else self._sent.get(replica, (0, 0))
        if n > self._count:  # it holds a later prompt of the lineage (this one was sent late)
            n, size = 0, 0
        return {"lineage": self._lineage, "base": n, "n_new": self._count - n,
                "new": bytes(self._body[size:self._size]), "n_turn": self._n_turn, "turn": self._turn}

    def delivered(self, replica: str) -> None:
        """``replica`` answered this prompt: it now holds the lineage's stored messages."""
        if self._lineage is not None:
            self._sent[replica] = (self._count, self._size)

    def forget(self, replica: str) -> None:
        """``replica`` no longer holds the lineage (it restarted or dropped it)."""
        self._sent.pop(replica, None)


def in_process(history: Prompt | bytes | list[dict], prompts: Any, agent: str) -> bytes | list[dict] | list[Any]:
    """The messages of ``history`` for an agent in this process (the local runtime, agents in a
    host), named ``agent``, whose ``prompts`` (its PromptCache) decode it: a prompt of a
    lineage it holds costs only the messages it lacks, as for a replica, without the copies of
    a whole blob. Anything else as it is; a whole blob if the cache keeps no lineages."""
    if not isinstance(history, Prompt):
        return history
    if not prompts.lineage_bytes:
        return history.blob()
    try:
        msgs = prompts.decode(history.for_replica(agent))
    except PromptUnknown:
        history.forget(agent)
        msgs = prompts.decode(history.for_replica(agent, whole=True))
    history.delivered(agent)  # decoded: it holds them now, whatever the turn does
    return msgs
