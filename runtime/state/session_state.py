"""A resident session's state and the pure transitions on it (no I/O)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from typing import Any

from repertory.stores.base import CheckpointRecord, SessionRecord, StateWrite
from repertory.stores.codec import MsgpackCodec, pack_array, strip_headers, unpack_array, verify_all

from repertory.errors import EmptyMessage, InvalidInput, MessageTooLarge
from repertory.state import schema
from repertory.state.agent_record import with_definitions
from repertory.state.prompt import Prompt

__all__ = ["RECENT_OPS", "RECENT_TURNS", "SCHEMA_VERSION", "SessionState", "check_history", "check_message"]

SCHEMA_VERSION = 1
RECENT_TURNS = 64  # turn ids a session remembers, so that a resent turn is answered
# Operation ids a session remembers (with what answers a resend), so that a resent operation
# is answered, not applied again. Each entry is small (see state.ops): the meta, which every
# turn rewrites, grows by a few KB at most.
RECENT_OPS = 64
# A history packed for prompts is kept from this size: shorter ones repack in a few µs, and a
# kept copy would add to every resident session's memory.
PACKED_MIN_BYTES = 8 * 1024
_codec = MsgpackCodec()


def check_message(content: object, max_bytes: int) -> str:
    """Validate a user message before anything is sent or written."""
    if not isinstance(content, str):
        raise InvalidInput(f"a message must be a str, got {type(content).__name__}")
    if not content.strip():
        raise EmptyMessage("the message is empty; send some text")
    size = len(content.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise MessageTooLarge(
            f"the message is {size} bytes, over the limit of {max_bytes}; split it, store large "
            "data elsewhere and send a reference, or raise init(max_message_bytes=...)"
        )
    return content


def check_history(messages: object) -> list[dict[str, Any]]:
    """Validate messages given to ``set_history`` against the stored-message schema."""
    if not isinstance(messages, list):
        raise InvalidInput("a history is a list of message dicts")
    return [dict(schema.check_message(m, i)) for i, m in enumerate(messages)]


# Revisions must differ between processes and incarnations, not be unpredictable: a generator
# seeded from the OS (and again in a forked child, which would otherwise repeat its parent's
# numbers) instead of a system call per new session (`secrets` costs ~3% of a host's turn).
_revisions = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _revisions.seed(os.urandom(16)))


def first_revision() -> int:
    """Where a new incarnation of a session starts counting revisions: random, so that a
    delete and a re-creation never hand out a compare-and-set token another writer holds.
    Below 2**36, so that Redis's Lua (double-precision numbers) counts it exactly."""
    return _revisions.randrange(2**36) + 1


class _Packed:
    """``messages[start:count]`` packed (headers dropped, one after another) in ``body``, which
    only ever grows: ``lineage`` names it for agents that keep what they were sent."""

    __slots__ = ("messages", "start", "count", "body", "lineage", "sent")

    def __init__(self, messages: list[bytes], start: int, body: bytearray) -> None:
        self.messages, self.start, self.count, self.body = messages, start, len(messages), body
        self.lineage = os.urandom(16)
        self.sent: dict[str, tuple[int, int]] = {}


class SessionState:
    """History (encoded messages) plus meta, at a known store revision."""

    __slots__ = ("key", "revision", "meta", "messages", "owner", "_packed", "_appended", "_start")

    def __init__(self, key: str, revision: int, meta: dict[str, Any], messages: list[bytes]) -> None:
        self.key = key
        self.revision = revision
        self.meta = meta
        self.messages = messages  # never changed in place: each write brings a new list
        self.owner: str | None = None  # the writer its writes are made for (leases: Store.acquire_lease)
        self._packed: _Packed | None = None  # the history packed for prompts
        self._appended: list[bytes] | None = None  # the list of the last append_write
        self._start: int | None = None  # the last prompt's first message

    @classmethod
    def new(cls, key: str, session_id: str, user_id: str | None, ttl: float | None = None) -> SessionState:
        now = time.time()
        meta = {"schema": SCHEMA_VERSION, "session_id": session_id, "user_id": user_id,
                "created_at": now, "updated_at": now, "turns": 0, "user_data": {},
                "user_profile": {}, "metadata": {}, "recent_turns": [], "ttl": ttl,
                "agent": None, "agents": {}, "agent_changes": []}
        return cls(key, 0, meta, [])

    @classmethod
    def from_record(cls, rec: SessionRecord) -> SessionState:
        meta = _codec.decode(rec.meta, source=f"session {rec.key!r} (meta)")
        if not isinstance(meta, dict) or meta.get("schema") != SCHEMA_VERSION:
            from repertory.errors import UnsupportedFormat

            raise UnsupportedFormat(f"session {rec.key!r} has state schema {meta.get('schema') if isinstance(meta, dict) else '?'}")
        # Check every message once, here, so that reads can decode the history in one pass.
        messages = verify_all(list(rec.messages), source=f"session {rec.key!r} message")
        return cls(rec.key, rec.revision, meta, messages)

    def history(self) -> list[dict[str, Any]]:
        return unpack_array(pack_array(self.messages))

    def prompt(self, user_msg: dict[str, Any], window: int | None = None, start: int = 0,
               before: Sequence[dict[str, Any]] = ()) -> Prompt:
        """History (from message ``start``, its last ``window`` messages) plus ``before`` (the
        turn's repairs of the history) and ``user_msg``: what the agent reads.

        The host never decodes the history for a turn: the agent does, in one pass. Long
        histories stay packed between turns, so a turn packs only what was added since.
        """
        n = len(self.messages)
        start = min(start, n)
        if window:
            start = max(start, n - window)
        turn = [*(_codec.encode(m) for m in before), _codec.encode(user_msg)]
        kept = self._packed_from(start)
        if isinstance(kept, _Packed):
            return Prompt(kept.body, n - start, strip_headers(turn), len(turn), kept.lineage, kept.sent)
        return Prompt(kept, n - start, strip_headers(turn), len(turn))

    def _packed_from(self, start: int) -> _Packed | bytes:
        """``messages[start:]`` packed: kept between turns from PACKED_MIN_BYTES, so that a
        turn packs only the messages added since the last one (O(new), not O(history)). Kept
        only when the start is the last prompt's too: a window that moves every turn (the drop
        policy) would start a new copy each time."""
        msgs, kept = self.messages, self._packed
        if kept is None or kept.messages is not msgs or kept.start != start:
            body = strip_headers(msgs[start:])
            steady, self._start = start == self._start, start
            if not steady or len(body) < PACKED_MIN_BYTES:
                self._packed = None
                return body
            kept = self._packed = _Packed(msgs, start, bytearray(body))
        elif kept.count < len(msgs):
            kept.body += strip_headers(msgs[kept.count:])
            kept.count = len(msgs)
        return kept

    def recent(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` messages, decoded."""
        return unpack_array(pack_array(self.messages[-n:])) if n else []

    def replay(self, turn_id: str, content: str) -> str | None:
        """The stored reply of a recent turn with this id and this user message, or None if
        it never happened (or its exchange is no longer the one stored there)."""
        for tid, index in self.meta.get("recent_turns", ()):
            if tid != turn_id:
                continue
            if not 0 <= index < len(self.messages):
                return None
            source = f"session {self.key!r}"
            for i in range(index - 1, -1, -1):  # the exchange's user message precedes its reply
                msg = _codec.decode(self.messages[i], source=source)
                if msg.get("role") == "user":
                    if msg.get("content") != content:
                        return None
                    return _codec.decode(self.messages[index], source=source).get("content") or ""
            return None
        return None

    def recorded_op(self, op_id: str | None) -> list[Any] | None:
        """The ``[op_id, result]`` entry of a recent operation with this id, or None."""
        if op_id is None:
            return None
        for entry in self.meta.get("recent_ops", ()):
            if entry[0] == op_id:
                return entry
        return None

    def with_op(self, meta: dict[str, Any], op_id: str | None, result: Any = None) -> dict[str, Any]:
        """``meta`` plus a record of operation ``op_id`` (and what answers its resend), written in
        the same compare-and-set as the operation's effect; the oldest records go first."""
        if op_id is None:
            return meta
        recent = [*meta.get("recent_ops", ())[-(RECENT_OPS - 1):], [op_id, result]]
        return dict(meta, recent_ops=recent)

    def _first_revision(self) -> int:
        # Only a write that creates the session uses it: the others skip the random draw.
        return first_revision() if self.revision == 0 else 1

    def _expires(self, now: float, meta: dict[str, Any] | None = None) -> float | None:
        ttl = (self.meta if meta is None else meta).get("ttl")
        return now + ttl if ttl else None

    def append_write(self, messages: list[dict[str, Any]], *, turn_id: str | None = None,
                     turns: int = 1, metrics: dict[str, int] | None = None,
                     agents: dict[str, Any] | None = None, fields: dict[str, Any] | None = None,
                     ) -> tuple[StateWrite, dict[str, Any], list[bytes]]:
        """The write that appends ``messages``; apply it with :meth:`applied` once committed.
        ``metrics`` are added to the session's counters (:data:`schema.METRICS`).
        ``agents``: the definitions the turn ran with (``{"agent": ..., "agents": {...}}``);
        stored, and a replacement recorded, where they differ from the session's.
        ``fields``: other meta fields the turn changed (window settings and state), checked here.
        """
        now = time.time()
        meta = dict(self.meta, updated_at=now, turns=self.meta["turns"] + turns)
        if metrics and any(metrics.values()):
            total = dict(self.meta.get("metrics", {}))
            for name, n in metrics.items():
                if n:
                    total[name] = total.get(name, 0) + n
            meta["metrics"] = total
        replaced = with_definitions(self.meta, agents, now)  # checked against the schema there
        if replaced is not None:
            meta.update(replaced)
        checked = True
        if fields:
            meta.update(fields)
            checked = False  # new values: the encode walks them
        if turn_id is not None:
            # Remember recent turn ids with their reply's index: a resent turn is answered, not redone.
            recent = [*self.meta.get("recent_turns", ())[-(RECENT_TURNS - 1):],
                      [turn_id, len(self.messages) + len(messages) - 1]]
            meta["recent_turns"] = recent
        encoded = [_codec.encode(m) for m in messages]
        # The meta is the stored one (checked when written or loaded) plus a time, a count and
        # a turn id (a str the wire accepted): the hottest encode of a turn skips the walk.
        write = StateWrite(self.key, self.revision, _codec.encode(meta, checked=checked), encoded,
                           base_count=len(self.messages), updated_at=now, expires_at=self._expires(now),
                           first_revision=self._first_revision(), owner=self.owner)
        self._appended = self.messages + encoded
        return write, meta, self._appended

    def meta_write(self, meta: dict[str, Any], *, checkpoint: CheckpointRecord | None = None,
                   ) -> tuple[StateWrite, dict[str, Any], list[bytes]]:
        """The write that replaces only the meta (the history stays, unsent), with an optional
        ``checkpoint`` stored atomically with it."""
        now = time.time()
        meta = dict(meta, updated_at=now)
        write = StateWrite(self.key, self.revision, _codec.encode(meta), [], base_count=len(self.messages),
                           updated_at=now, expires_at=self._expires(now, meta),
                           first_revision=self._first_revision(),
                           owner=self.owner, checkpoint=checkpoint)
        return write, meta, self.messages

    def replace_write(self, messages: list[bytes], meta: dict[str, Any], *, updated_at: float | None = None,
                      keep_recent_turns: bool = False, checkpoint: CheckpointRecord | None = None,
                      ) -> tuple[StateWrite, dict[str, Any], list[bytes]]:
        """The write that replaces the whole history (encoded ``messages``) and the meta.

        The recent turn ids point into the old history, so they go with it (a resent turn
        is then asked again, never answered with another message's reply), unless
        ``keep_recent_turns`` (an import brings the history they point into). Recent operation
        ids stay: they point into no history. ``checkpoint`` is stored atomically with it.
        """
        now = time.time()
        meta = dict(meta, updated_at=updated_at or now)
        if not keep_recent_turns:
            meta["recent_turns"] = []
            meta.pop("window", None)  # its start and summary describe the old history
        write = StateWrite(self.key, self.revision, _codec.encode(meta), list(messages), replace=True,
                           updated_at=meta["updated_at"], expires_at=self._expires(now, meta),
                           first_revision=self._first_revision(), owner=self.owner, checkpoint=checkpoint)
        return write, meta, list(messages)

    def applied(self, revision: int, meta: dict[str, Any], messages: list[bytes]) -> None:
        kept = self._packed
        if kept is not None and kept.messages is self.messages and messages is self._appended:
            kept.messages = messages  # an append: the packed messages are still its first ones
        self._appended = None
        self.revision, self.meta, self.messages = revision, meta, messages

    def public_state(self) -> dict[str, Any]:
        """The documented plain-dict form of the state (see Session.get_state)."""
        m = self.meta
        return {"schema": SCHEMA_VERSION, "session_id": m["session_id"], "user_id": m["user_id"],
                "history": self.history(), "user_data": m["user_data"], "user_profile": m["user_profile"],
                "metadata": m["metadata"], "created_at": m["created_at"], "updated_at": m["updated_at"],
                "turns": m["turns"], "revision": self.revision,
                "metrics": {name: m.get("metrics", {}).get(name, 0) for name in schema.METRICS},
                "agent": m.get("agent"), "agents": m.get("agents", {}), "agent_changes": m.get("agent_changes", []),
                "ratings": [{"score": r[0], "at": r[1], "comment": r[2]} for r in m.get("ratings", ())],
                "context": m.get("context"), "window": m.get("window"),
                "shared_state_id": m.get("shared_state_id")}
