"""Stream event ids: where a streamed reply stands, so that a reconnecting client continues it.

An event id is ``"<turn_id>:<offset>"``: the turn, and how many characters of its reply the
client has received with that chunk. Offsets, not chunk numbers, so a stream continues from the
same point whether the rest comes live from the host that runs the turn or, once the turn is
acknowledged, from the reply stored in the history (re-chunked by :func:`rechunk`).
"""

from __future__ import annotations

from collections.abc import Iterator

from repertory.errors import InvalidInput

__all__ = ["StreamChunk", "event_id", "parse_event_id", "rechunk"]

MAX_TURN_ID = 128  # as Session.achat's turn_id


class StreamChunk(str):
    """A streamed piece of a reply (a ``str``) with its :attr:`event_id`: resume the stream
    after this chunk with ``astream(..., resume_from=chunk.event_id)``."""

    __slots__ = ("event_id",)
    event_id: str

    def __new__(cls, text: str, event_id: str) -> StreamChunk:
        chunk = super().__new__(cls, text)
        chunk.event_id = event_id
        return chunk


def event_id(turn_id: str, offset: int) -> str:
    """The id of the event that brings a turn's reply to ``offset`` characters."""
    return f"{turn_id}:{offset}"


def parse_event_id(value: object) -> tuple[str, int]:
    """``(turn_id, offset)`` of an event id; :class:`InvalidInput` for anything else."""
    if isinstance(value, str):
        turn_id, sep, offset = value.rpartition(":")
        if sep and 0 < len(turn_id) <= MAX_TURN_ID and offset.isascii() and offset.isdigit():
            return turn_id, int(offset)
    raise InvalidInput(f"{value!r:.60} is not a stream event id; pass the event_id of the last chunk "
                       "received (\"<turn_id>:<offset>\")")


def rechunk(text: str, offset: int = 0) -> Iterator[tuple[str, int]]:
    """``(piece, end offset)`` for ``text`` split after each space, numbered from ``offset``:
    how a stored reply is streamed again (deterministic, so every replay has the same ids)."""
    start = 0
    for i, ch in enumerate(text):
        if ch == " ":
            yield text[start:i + 1], offset + i + 1
            start = i + 1
    if start < len(text):
        yield text[start:], offset + len(text)
