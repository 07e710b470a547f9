"""Checkpoint data in linear storage: a reference to a prefix of the live history plus what changed.

A session's messages are append-only between edits, so a checkpoint taken at message count
``n`` needs no copy of them: it records ``base = n`` (and a crc32 of those ``n`` messages) and
reads them from the live history when it is restored. Only the meta is stored per checkpoint,
so storage grows with the history, not with history × checkpoints.

Copy-on-write. An edit, truncate, pop, restore or import replaces the live history; the first
``p`` messages (the common prefix of the old and the new history) stay. Before the replace is
written, the old messages ``p:hi`` that checkpoints still reference (``hi``: the largest base
past ``p``) are frozen once into a *segment* record (kind ``"segment"``, beside the session's
checkpoints), and every checkpoint whose base reaches past ``p`` is rewritten as ``base = p``
plus a reference to the part of the segment it needs. An edit therefore stores the changed tail
once, however many checkpoints reference it. Each rewritten record reads the same under the old
history and under the new one, so "store the segment, rewrite the checkpoints, commit the
replace" is safe whatever fails in between (a crash or a lost compare-and-set leaves at worst
an unreferenced segment, collected later).

A linear record: ``{"format": 2, "meta", "revision", "base", "base_crc", "segs", "tail"}``
reads as ``live[:base] + segment[start:start + count] for each [seg_id, start, count] in segs
+ tail``. A segment record: ``{"format": 2, "segment": [message, ...]}``; segments never
reference other records.

Invariants (docs/architecture.md, "Store layout"):

1. A linear record reads back as above with ``crc32(live[:base]) == base_crc``; a mismatch or a
   missing segment is CorruptState (the history was replaced without copy-on-write), never a
   wrong answer.
2. The live history only changes after ``p`` once every record with ``base > p`` references a
   stored segment instead; appends (turns) never change the prefix.
3. A segment is kept while a checkpoint references it; :func:`collect` removes the others, so
   deleting checkpoints reclaims what only they referenced.
4. Records written before linear storage (format 1: ``{"meta", "messages", "revision"}``, a full
   copy) read as before; a format newer than this release's is UnsupportedFormat.

The crc covers the messages as the session holds them (current codec version); a codec format
bump that re-encodes messages must rewrite the ``base_crc`` of linear records.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Sequence
from typing import Any

from repertory.errors import CorruptState, UnsupportedFormat
from repertory.stores.base import CheckpointInfo, CheckpointRecord, Store
from repertory.stores.codec import MsgpackCodec

__all__ = ["FULL", "LINEAR", "SEGMENT", "collect", "common_prefix", "linear_from", "preserve", "prefix_crc",
           "read_snapshot", "snapshot"]

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


def _linear(meta: dict[str, Any], revision: int, live: Sequence[bytes], base: int, tail: list[bytes],
            segs: list[list[Any]] | None = None, shared: dict[str, Any] | None = None) -> bytes:
    record = {"format": LINEAR, "meta": meta, "revision": revision, "base": base,
              "base_crc": prefix_crc(live, base), "tail": tail}
    if segs:
        record["segs"] = segs
    if shared is not None:
        record["shared_state"] = shared
    return _codec.encode(record)


def snapshot(meta: dict[str, Any], revision: int, live: Sequence[bytes], base: int | None = None,
             shared: dict[str, Any] | None = None) -> bytes:
    """The data of a checkpoint of the state (``meta``, ``live`` messages, ``revision``).

    ``base``: the live messages it references (all by default); the others are copied into its
    tail. A checkpoint written with a replace of the history passes the common prefix.
    ``shared``: the copy of the session's shared state taken with it
    (:func:`repertory.shared.core.stored_shared_state`), restored with it.
    """
    base = len(live) if base is None else base
    return _linear(meta, revision, live, base, list(live[base:]), shared=shared)


def _decode(data: bytes, source: str) -> dict[str, Any]:
    snap = _codec.decode(data, source=source)
    if not isinstance(snap, dict) or "meta" not in snap:
        raise CorruptState(f"{source} is not a session snapshot; delete it or restore another checkpoint")
    fmt = snap.get("format", FULL)
    if fmt == FULL:
        if not isinstance(snap.get("messages"), list):
            raise CorruptState(f"{source} is not a session snapshot; delete it or restore another checkpoint")
    elif fmt == LINEAR:
        segs = snap.get("segs", [])
        if (not isinstance(snap.get("base"), int) or snap["base"] < 0 or not isinstance(snap.get("tail"), list)
                or not isinstance(snap.get("base_crc"), int) or not isinstance(segs, list)
                or not all(isinstance(g, list) and len(g) == 3 and isinstance(g[0], str) for g in segs)):
            raise CorruptState(f"{source} is a damaged checkpoint record; delete it or restore another checkpoint")
    elif isinstance(fmt, int) and fmt > LINEAR:
        raise UnsupportedFormat(f"{source} has checkpoint format {fmt}; this release reads up to {LINEAR}. "
                                "Upgrade repertory to read it")
    else:
        raise CorruptState(f"{source} has an unknown checkpoint format {fmt!r}; delete it")
    return snap


SEGMENT = "segment"  # the kind of a frozen segment's record


def _resolve(snap: dict[str, Any], live: Sequence[bytes], segments: dict[str, list[bytes]],
             source: str) -> dict[str, Any]:
    if snap.get("format", FULL) == FULL:
        return snap
    base = snap["base"]
    if base > len(live) or prefix_crc(live, base) != snap["base_crc"]:
        raise CorruptState(f"{source} references {base} messages of the history that have changed since it "
                           "was taken (written without copy-on-write); restore another checkpoint or a backup")
    messages = list(live[:base])
    for seg_id, start, count in snap.get("segs", ()):
        messages += segments[seg_id][start:start + count]
    messages += snap["tail"]
    resolved = {"meta": snap["meta"], "messages": messages, "revision": snap.get("revision", 0)}
    if "shared_state" in snap:
        resolved["shared_state"] = snap["shared_state"]
    return resolved


async def _segments(store: Store, key: str, snap: dict[str, Any], source: str,
                    cache: dict[str, list[bytes]] | None = None) -> dict[str, list[bytes]]:
    """The segments ``snap`` references, read from the store (once each, through ``cache``)."""
    cache = {} if cache is None else cache
    for seg_id, _, _ in snap.get("segs", ()):
        if seg_id in cache:
            continue
        rec = await store.get_checkpoint(key, seg_id)
        if rec is None or rec.info.kind != SEGMENT:
            raise CorruptState(f"{source} references the segment {seg_id!r}, which is gone; restore another "
                               "checkpoint or a backup")
        seg = _codec.decode(rec.data, source=f"segment {seg_id!r} of session {key!r}")
        if not isinstance(seg, dict) or not isinstance(seg.get("segment"), list):
            raise CorruptState(f"segment {seg_id!r} of session {key!r} is damaged; restore a backup")
        cache[seg_id] = seg["segment"]
    return cache


async def read_snapshot(store: Store, key: str, data: bytes, live: Sequence[bytes], source: str) -> dict[str, Any]:
    """A checkpoint's state as ``{"meta", "messages", "revision"}``, its prefix read from ``live``
    and its frozen segments from ``store``."""
    snap = _decode(data, source)
    return _resolve(snap, live, await _segments(store, key, snap, source), source)


def linear_from(data: bytes, live: Sequence[bytes], source: str) -> bytes:
    """A self-contained record (format 1, as exports hold) as a linear record against ``live``:
    what an import stores."""
    snap = _decode(data, source)
    if snap.get("format", FULL) != FULL:
        raise CorruptState(f"{source} is not a self-contained checkpoint; re-export the session")
    messages = snap["messages"]
    p = common_prefix(live, messages)
    return _linear(snap["meta"], snap.get("revision", 0), live, p, list(messages[p:]), shared=snap.get("shared_state"))


def _rebased(snap: dict[str, Any], live: Sequence[bytes], keep: int, seg_id: str) -> bytes:
    """``snap`` (linear, base > keep) referencing ``keep`` live messages and the frozen rest."""
    segs = [[seg_id, 0, snap["base"] - keep], *snap.get("segs", ())]
    return _linear(snap["meta"], snap.get("revision", 0), live, keep, snap["tail"], segs,
                   shared=snap.get("shared_state"))


async def preserve(store: Store, key: str, live: Sequence[bytes], keep: int,
                   pending: CheckpointRecord | None = None) -> CheckpointRecord | None:
    """Copy-on-write before the live history changes after its first ``keep`` messages.

    Freezes the messages past ``keep`` that checkpoints reference into one segment and rewrites
    those checkpoints to reference it. ``pending`` (a checkpoint of the live state, to be stored
    with the replace) is rebased the same way and returned, not stored.
    """
    if keep >= len(live):
        return pending
    affected: list[tuple[CheckpointRecord, dict[str, Any]]] = []
    for info in await store.list_checkpoints(key):
        if info.kind == SEGMENT:
            continue
        rec = await store.get_checkpoint(key, info.cp_id)
        if rec is None:
            continue
        snap = _decode(rec.data, f"{info.kind} {info.cp_id!r} of session {key!r}")
        if snap.get("format", FULL) == LINEAR and snap["base"] > keep:
            affected.append((rec, snap))
    pending_snap = None if pending is None else _decode(pending.data, f"the new checkpoint of session {key!r}")
    if pending_snap is not None and pending_snap["base"] <= keep:
        pending_snap = None
    bases = [snap["base"] for _, snap in affected] + ([pending_snap["base"]] if pending_snap else [])
    if not bases:
        return pending
    seg_id = f"s{uuid.uuid4().hex[:16]}"
    seg_info = CheckpointInfo(key, seg_id, SEGMENT, 0, time.time(), 0, "")
    # The segment first: a checkpoint never references a segment that is not stored.
    await store.put_checkpoint(CheckpointRecord(seg_info, _codec.encode({"format": LINEAR,
                                                                         "segment": list(live[keep:max(bases)])})))
    for rec, snap in affected:
        await store.put_checkpoint(CheckpointRecord(rec.info, _rebased(snap, live, keep, seg_id)))
    if pending_snap is None:
        return pending
    return CheckpointRecord(pending.info, _rebased(pending_snap, live, keep, seg_id))


async def collect(store: Store, key: str) -> int:
    """Delete the segments of ``key`` that no checkpoint references; returns how many."""
    infos = await store.list_checkpoints(key)
    segments = {i.cp_id for i in infos if i.kind == SEGMENT}
    if not segments:
        return 0
    used: set[str] = set()
    for info in infos:
        if info.kind == SEGMENT:
            continue
        rec = await store.get_checkpoint(key, info.cp_id)
        if rec is not None:
            snap = _decode(rec.data, f"{info.kind} {info.cp_id!r} of session {key!r}")
            used.update(seg_id for seg_id, _, _ in snap.get("segs", ()))
    unused = sorted(segments - used)
    return await store.delete_checkpoints(key, unused) if unused else 0
