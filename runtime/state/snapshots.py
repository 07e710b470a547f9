"""Checkpoint data in linear storage: a reference to a prefix of the live history plus what changed.

A session's messages are append-only between edits, so a checkpoint taken at message count
``n`` needs no copy of them: it records ``base = n`` (and a crc32 of those ``n`` messages) and
reads them from the live history when it is restored. Only the meta (and later a tail, see
below) is stored per checkpoint, so storage grows with the history, not with history ×
checkpoints.

Copy-on-write. An edit, truncate, pop or restore replaces the live history; the messages
before the first changed one (the common prefix, length ``p``) stay. Before the replace is
written, every checkpoint whose base reaches past ``p`` is rewritten as ``base = p`` plus the
messages ``p:base`` it still needs, copied into its ``tail``. Such a rewritten record reads the
same under the old history and under the new one, so the order "rewrite checkpoints, then
commit the replace" is safe whatever fails between the two (a crash, a lost compare-and-set).

Invariants (docs/architecture.md, "Store layout"):

1. A linear record reads back as ``live[:base] + tail``, with ``crc32(live[:base]) == base_crc``;
   a mismatch is CorruptState (the history was replaced without copy-on-write), never a wrong
   answer.
2. The live history only changes at or after ``p`` without every record with ``base > p`` being
   rewritten first; appends (turns) never change the prefix.
3. A record owns its tail alone: deleting a checkpoint reclaims everything only it referenced.
4. Records written before linear storage (format 1: ``{"meta", "messages", "revision"}``, a full
   copy) read as before; a format newer than this release's is UnsupportedFormat.

The crc covers the messages as the session holds them (current codec version); a codec format
bump that re-encodes messages must rewrite the ``base_crc`` of linear records.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from repertory.errors import CorruptState, UnsupportedFormat
from repertory.stores.base import CheckpointRecord, Store
from repertory.stores.codec import MsgpackCodec

__all__ = ["FULL", "LINEAR", "common_prefix", "linear_from", "preserve", "prefix_crc", "read_snapshot",
           "snapshot"]

FULL, LINEAR = 1, 2  # record formats: a full copy (before linear storage), a prefix reference + tail
_codec = MsgpackCodec()


def prefix_crc(messages: Sequence[bytes], n: int) -> int:
    """crc32 of the first ``n`` encoded messages, chained."""
    crc = 0
    for m in messages[:n]:
        crc = zlib.crc32(m, crc)
    return crc


def common_prefix(a: Sequence[bytes], b: Sequence[bytes]) -> int:
    """How many leading messages ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] is not b[i] and a[i] != b[i]:
            return i
    return n


def _linear(meta: dict[str, Any], revision: int, live: Sequence[bytes], base: int, tail: list[bytes]) -> bytes:
    return _codec.encode({"format": LINEAR, "meta": meta, "revision": revision, "base": base,
                          "base_crc": prefix_crc(live, base), "tail": tail})


def snapshot(meta: dict[str, Any], revision: int, live: Sequence[bytes], base: int | None = None) -> bytes:
    """The data of a checkpoint of the state (``meta``, ``live`` messages, ``revision``).

    ``base``: the live messages it references (all by default); the others are copied into its
    tail. A checkpoint written with a replace of the history passes the common prefix.
    """
    base = len(live) if base is None else base
    return _linear(meta, revision, live, base, list(live[base:]))


def _decode(data: bytes, source: str) -> dict[str, Any]:
    snap = _codec.decode(data, source=source)
    if not isinstance(snap, dict) or "meta" not in snap:
        raise CorruptState(f"{source} is not a session snapshot; delete it or restore another checkpoint")
    fmt = snap.get("format", FULL)
    if fmt == FULL:
        if not isinstance(snap.get("messages"), list):
            raise CorruptState(f"{source} is not a session snapshot; delete it or restore another checkpoint")
    elif fmt == LINEAR:
        if (not isinstance(snap.get("base"), int) or snap["base"] < 0 or not isinstance(snap.get("tail"), list)
                or not isinstance(snap.get("base_crc"), int)):
            raise CorruptState(f"{source} is a damaged checkpoint record; delete it or restore another checkpoint")
    elif isinstance(fmt, int) and fmt > LINEAR:
        raise UnsupportedFormat(f"{source} has checkpoint format {fmt}; this release reads up to {LINEAR}. "
                                "Upgrade repertory to read it")
    else:
        raise CorruptState(f"{source} has an unknown checkpoint format {fmt!r}; delete it")
    return snap


def read_snapshot(data: bytes, live: Sequence[bytes], source: str) -> dict[str, Any]:
    """A checkpoint's state as ``{"meta", "messages", "revision"}``, its prefix read from ``live``."""
    snap = _decode(data, source)
    if snap.get("format", FULL) == FULL:
        return snap
    base = snap["base"]
    if base > len(live) or prefix_crc(live, base) != snap["base_crc"]:
        raise CorruptState(f"{source} references {base} messages of the history that have changed since it "
                           "was taken (written without copy-on-write); restore another checkpoint or a backup")
    return {"meta": snap["meta"], "messages": [*live[:base], *snap["tail"]], "revision": snap.get("revision", 0)}


def linear_from(data: bytes, live: Sequence[bytes], source: str) -> bytes:
    """``data`` (any format) as a linear record against ``live``: what an import stores."""
    snap = read_snapshot(data, live, source)
    messages = snap["messages"]
    p = common_prefix(live, messages)
    return _linear(snap["meta"], snap.get("revision", 0), live, p, list(messages[p:]))


async def preserve(store: Store, key: str, live: Sequence[bytes], keep: int) -> int:
    """Copy-on-write before the live history changes after its first ``keep`` messages: every
    linear checkpoint of ``key`` that references more is rewritten to reference ``keep`` and
    hold the rest in its tail. Returns how many were rewritten."""
    if keep >= len(live):
        return 0
    rewritten = 0
    for info in await store.list_checkpoints(key):
        rec = await store.get_checkpoint(key, info.cp_id)
        if rec is None:
            continue
        source = f"{info.kind} {info.cp_id!r} of session {key!r}"
        snap = _decode(rec.data, source)
        if snap.get("format", FULL) == FULL or snap["base"] <= keep:
            continue
        full = read_snapshot(rec.data, live, source)["messages"]
        data = _linear(snap["meta"], snap.get("revision", 0), live, keep, full[keep:])
        await store.put_checkpoint(CheckpointRecord(info, data))
        rewritten += 1
    return rewritten
