"""The chaos run's acknowledgement log: one JSON object per line, appended as things happen.

A client writes ``sent`` (``op-sent``) before the first attempt of a turn (state operation) (so a turn that was applied but
never acknowledged is not taken for a phantom), ``turn`` and ``op`` only once acknowledged, and
the fault schedule writes ``fault`` as it injects. The checker reads the file back: the log on
disk, not the clients' memory, is what the stored sessions are judged against.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from repertory.errors import InvalidInput
from repertory.jsonl import JsonlLineError, read_jsonl

__all__ = ["AckLog", "ChaosRecords", "FaultRecord", "OpAck", "TurnAck", "read_log"]


@dataclass(frozen=True, slots=True)
class TurnAck:
    client: str
    session: str
    turn_id: str
    message: str
    reply: str
    ack: float  # wall-clock seconds (time.time()) of the acknowledgement


@dataclass(frozen=True, slots=True)
class OpAck:
    client: str
    session: str
    op_id: str
    ack: float


@dataclass(frozen=True, slots=True)
class FaultRecord:
    kind: str  # "host", "replica", "store-actor", "redis-restart", ...
    target: str
    at: float
    sessions: tuple[str, ...] | None  # the sessions it hits; None: all of them


@dataclass(slots=True)
class ChaosRecords:
    """A log read back: acknowledged turns and operations in log order, what was sent, faults."""

    turns: list[TurnAck] = field(default_factory=list)
    ops: list[OpAck] = field(default_factory=list)
    sent: dict[str, set[str]] = field(default_factory=dict)  # session -> every message sent to it
    issued_ops: dict[str, set[str]] = field(default_factory=dict)  # session -> every op id sent to it
    faults: list[FaultRecord] = field(default_factory=list)

    def sessions(self) -> list[str]:
        found = dict.fromkeys([*self.sent, *(t.session for t in self.turns), *(o.session for o in self.ops)])
        return list(found)


class AckLog:
    """Appends records to ``path``; each line is flushed at once (a crashed run keeps its log)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: IO[str] = self.path.open("a", encoding="utf-8")

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def sent(self, client: str, session: str, turn_id: str, message: str) -> None:
        self._write({"kind": "sent", "client": client, "session": session, "turn_id": turn_id, "message": message})

    def op_sent(self, client: str, session: str, op_id: str) -> None:
        self._write({"kind": "op-sent", "client": client, "session": session, "op_id": op_id})

    def turn(self, client: str, session: str, turn_id: str, message: str, reply: str, *, ack: float) -> None:
        self._write({"kind": "turn", "client": client, "session": session, "turn_id": turn_id,
                     "message": message, "reply": reply, "ack": ack})

    def op(self, client: str, session: str, op_id: str, *, ack: float) -> None:
        self._write({"kind": "op", "client": client, "session": session, "op_id": op_id, "ack": ack})

    def fault(self, kind: str, target: str, *, at: float, sessions: list[str] | None) -> None:
        self._write({"kind": "fault", "fault": kind, "target": target, "at": at, "sessions": sessions})

    def close(self) -> None:
        self._file.close()


def _parse(rec: Any, records: ChaosRecords) -> None:
    kind = rec.get("kind") if isinstance(rec, dict) else None
    if kind == "sent":
        records.sent.setdefault(rec["session"], set()).add(rec["message"])
    elif kind == "op-sent":
        records.issued_ops.setdefault(rec["session"], set()).add(rec["op_id"])
    elif kind == "turn":
        records.turns.append(TurnAck(rec["client"], rec["session"], rec["turn_id"], rec["message"],
                                     rec["reply"], float(rec["ack"])))
    elif kind == "op":
        records.ops.append(OpAck(rec["client"], rec["session"], rec["op_id"], float(rec["ack"])))
    elif kind == "fault":
        hit = rec["sessions"]
        records.faults.append(FaultRecord(rec["fault"], rec["target"], float(rec["at"]),
                                          None if hit is None else tuple(hit)))
    else:
        raise KeyError("kind")


def read_log(path: str | os.PathLike[str]) -> ChaosRecords:
    """Read a chaos log; a line that is not a chaos record raises :class:`InvalidInput`."""
    records = ChaosRecords()
    for line, value in read_jsonl(path):
        if isinstance(value, JsonlLineError):
            raise InvalidInput(f"{path}: line {line} is not JSON ({value}); is this a chaos log?")
        try:
            _parse(value, records)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"{path}: line {line} is not a chaos record (missing or bad {exc}); "
                               "is this a chaos log?") from None
    return records
