"""The chaos run's verdict: every stored session judged against the acknowledgement log.

Pure logic (no Ray, no store): the run reads each session's history and its applied state
operations through a fresh runtime and hands them here. Per session:

- each acknowledged turn's user message is present exactly once (``lost``, ``duplicate``), in
  acknowledgement order (``reorder``), followed by its own reply (``reply-mismatch``);
- no user message that was never sent (``phantom``); a turn sent but never acknowledged (the
  client gave up) may be present, once;
- each acknowledged state operation is applied exactly once (``op-missing``, ``op-duplicate``),
  and none that no client issued (``op-phantom``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from repertory.chaos.log import ChaosRecords, FaultRecord, OpAck, TurnAck

__all__ = ["Anomaly", "StoredSession", "check", "check_session", "recovery_times"]


@dataclass(frozen=True, slots=True)
class Anomaly:
    session: str
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class StoredSession:
    """What the store holds for one session: its history and the op ids its state operations left."""

    history: list[dict[str, Any]]
    op_ids: list[str] = field(default_factory=list)


def _turn_anomalies(session: str, acked: list[TurnAck], sent: set[str], history: list[dict[str, Any]]) -> list[Anomaly]:
    out: list[Anomaly] = []
    users = [(i, m.get("content")) for i, m in enumerate(history) if m.get("role") == "user"]
    counts = Counter(text for _, text in users)
    acked_texts = {t.message for t in acked}
    for text, n in counts.items():
        if text not in sent and text not in acked_texts:
            out.append(Anomaly(session, "phantom", f"user message {text!r} was never sent"))
        elif n > 1:
            out.append(Anomaly(session, "duplicate", f"user message {text!r} is stored {n} times"))
    first_at = {}
    for i, text in users:
        first_at.setdefault(text, i)
    present = []
    for t in acked:
        if t.message not in first_at:
            out.append(Anomaly(session, "lost", f"acknowledged turn {t.turn_id} ({t.message!r}) is not stored"))
            continue
        present.append(t)
        i = first_at[t.message]
        reply = history[i + 1] if i + 1 < len(history) else None
        if reply is None or reply.get("role") != "assistant" or reply.get("content") != t.reply:
            got = None if reply is None else (reply.get("role"), reply.get("content"))
            out.append(Anomaly(session, "reply-mismatch", f"turn {t.turn_id} ({t.message!r}) acknowledged "
                               f"reply {t.reply!r}, stored next: {got!r}"))
    stored_order = sorted(present, key=lambda t: first_at[t.message])
    if stored_order != present:
        at = next(i for i, (a, b) in enumerate(zip(stored_order, present)) if a != b)
        out.append(Anomaly(session, "reorder", f"acknowledged as turn {at} of the session: {present[at].message!r}, "
                           f"stored there: {stored_order[at].message!r}"))
    return out


def _op_anomalies(session: str, acked: list[OpAck], issued: set[str], stored: list[str]) -> list[Anomaly]:
    out: list[Anomaly] = []
    counts = Counter(stored)
    for op in acked:
        if counts[op.op_id] == 0:
            out.append(Anomaly(session, "op-missing", f"acknowledged state operation {op.op_id} is not applied"))
    for op_id, n in counts.items():
        if op_id not in issued:
            out.append(Anomaly(session, "op-phantom", f"state operation {op_id} was never issued"))
        elif n > 1:
            out.append(Anomaly(session, "op-duplicate", f"state operation {op_id} is applied {n} times"))
    return out


def check_session(session: str, records: ChaosRecords, stored: StoredSession | None) -> list[Anomaly]:
    """The anomalies of one session; ``stored`` None: the session is not in the store at all."""
    turns = [t for t in records.turns if t.session == session]
    ops = [o for o in records.ops if o.session == session]
    stored = stored or StoredSession([], [])
    sent = records.sent.get(session, set())
    issued = records.issued_ops.get(session, set()) | {o.op_id for o in ops}
    return [*_turn_anomalies(session, turns, sent, stored.history),
            *_op_anomalies(session, ops, issued, stored.op_ids)]


def check(records: ChaosRecords, stored: dict[str, StoredSession]) -> list[Anomaly]:
    """The anomalies of every session the log names (and of stored sessions it does not)."""
    out: list[Anomaly] = []
    for session in dict.fromkeys([*records.sessions(), *stored]):
        out += check_session(session, records, stored.get(session))
    return out


def recovery_times(records: ChaosRecords) -> list[tuple[FaultRecord, float | None]]:
    """Per fault, seconds from it to the next acknowledged turn on a session it hit (None: none came)."""
    acks = sorted(records.turns, key=lambda t: t.ack)
    out = []
    for fault in records.faults:
        hit = None if fault.sessions is None else set(fault.sessions)
        nxt = next((t.ack for t in acks if t.ack >= fault.at and (hit is None or t.session in hit)), None)
        out.append((fault, None if nxt is None else nxt - fault.at))
    return out
