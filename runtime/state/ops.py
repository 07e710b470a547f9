"""Durable operations on one session's state: checkpoints, versions, edits, import/export.

Each function takes the store and the resident :class:`SessionState` (the host holds the
session's mailbox lock while it runs) and commits with compare-and-set, so a lost race
surfaces as ConcurrentUpdate and the host retries on fresh state. Restores never move the
revision backwards: they write the old content as a new revision.

Applied once. Every writing operation takes an ``op_id`` (made once per call by the runtime
and resent with it when a host died). The id is recorded in the session's meta
(``recent_ops``, the last ``session_state.RECENT_OPS``) by the same compare-and-set write as the
operation's effect, so it is recorded if and only if the effect landed. An operation whose
id is recorded is answered, not applied again. What answers it:

* revisions (set_history, set_state, restore, import): the session's revision now;
* values (update_fields, update_item, update_workflow): the value now, read from the state;
* create_checkpoint: the checkpoint's info, read back from the store (its id is recorded);
* pop_turn, truncate, edit_message: what they removed, rebuilt from the checkpoint the edit
  takes of the state before it (written in the same write). Only ``[checkpoint id, start,
  stop]`` is recorded, since removed messages can be large.

Records stay a few dozen bytes because every turn rewrites the meta (64 records add ~3 KB
and ~10 µs of encoding to a turn). ``keep`` never prunes the checkpoint of a recorded edit.
A resend whose checkpoint is gone all the same (an import over the session; for
create_checkpoint, pruned by ``keep`` of later calls before the resend arrived) fails with
StoreError: it was applied once, but what answers it is gone.

``delete`` carries no id: a deleted session has no meta to record it in (see HostAPI.delete).
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from repertory.stores.base import CheckpointInfo, CheckpointRecord, Store
from repertory.stores.codec import MsgpackCodec, pack_array, unpack_array

from repertory.errors import InvalidInput, SessionNotFound, StoreError
from repertory.agents.tool_calls import repair_history
from repertory.state import schema
from repertory.state import snapshots
from repertory.state.session_state import SessionState, check_history

__all__ = ["add_rating", "checkpoint_snapshot", "commit_replace", "create_checkpoint", "delete_checkpoints",
           "edit_message", "export_session", "import_session", "list_checkpoints", "pop_turn", "read_fields", "restore_checkpoint", "set_history",
           "set_state", "set_ttl", "truncate", "unsnapshot", "update_fields", "update_item", "update_workflow"]

_codec = MsgpackCodec()
log = structlog.get_logger("repertory.state")
CHECKPOINT, VERSION = "checkpoint", "version"
# Meta fields that describe the live session rather than a point in its past: a restore
# keeps the session's agents and never erases a recorded agent change.
# Ratings are feedback on the session and window settings a choice about it: both stay too.
_LIVE_FIELDS = ("session_id", "user_id", "created_at", "ttl", "agent", "agents", "agent_changes", "ratings",
                "context")


def snapshot(state: SessionState, shared: dict[str, Any] | None = None) -> bytes:
    """A self-contained copy of the state (the export format of a checkpoint, format 1);
    ``shared``: the copy of the session's shared state taken with it
    (:func:`repertory.shared.core.stored_shared_state`), restored with it."""
    snap = {"meta": state.meta, "messages": state.messages, "revision": state.revision}
    if shared is not None:
        snap["shared_state"] = shared
    return _codec.encode(snap)


async def unsnapshot(store: Store, state: SessionState, data: bytes, source: str) -> dict[str, Any]:
    """A stored checkpoint's state (meta, messages, revision), its prefix read from the live history."""
    return await snapshots.read_snapshot(store, state.key, data, state.messages, source)


def _replayed(state: SessionState, op_id: str | None) -> list[Any] | None:
    """The record of ``op_id`` if the operation was applied already (a resend), else None."""
    entry = state.recorded_op(op_id)
    if entry is not None:
        log.info("operation_replayed", session=state.key, op_id=op_id)
    return entry


async def commit_replace(store: Store, state: SessionState, messages_raw: list[bytes],
                         meta: dict[str, Any], *, updated_at: float | None = None,
                         keep_recent_turns: bool = False, op_id: str | None = None, result: Any = None,
                         checkpoint: CheckpointRecord | None = None) -> int:
    """Replace the stored history and meta in one compare-and-set write; returns the revision.

    Checkpoints that reference live messages this replace changes are copied on write first
    (:func:`snapshots.preserve`), ``checkpoint`` (of the state before the replace) with them.

    Recent turn ids survive only when the history is the one they point into: unchanged
    (the same list), or imported with them (``keep_recent_turns``). ``op_id`` (with what
    answers its resend, ``result``) and ``checkpoint`` are recorded by the same write.
    """
    keep = keep_recent_turns or messages_raw is state.messages
    if messages_raw is not state.messages:
        checkpoint = await snapshots.preserve(store, state.key, state.messages,
                                              snapshots.common_prefix(state.messages, messages_raw), checkpoint)
    write, meta, messages = state.replace_write(messages_raw, state.with_op(meta, op_id, result),
                                                updated_at=updated_at, keep_recent_turns=keep, checkpoint=checkpoint)
    revision = await store.commit(write)
    state.applied(revision, meta, messages)
    return revision


async def _new_checkpoint(store: Store, state: SessionState, label: str, kind: str,
                          shared: dict[str, Any] | None = None) -> tuple[CheckpointRecord, list[CheckpointInfo]]:
    """A checkpoint of the state as it is (not yet stored), and the existing ones of ``kind``."""
    existing = await store.list_checkpoints(state.key, kind)
    seq = max((c.seq for c in existing), default=0 if kind == CHECKPOINT else -1) + 1
    info = CheckpointInfo(state.key, f"{kind[0]}{seq}", kind, seq, time.time(), state.meta["turns"], label or "")
    return CheckpointRecord(info, snapshots.snapshot(state.meta, state.revision, state.messages, shared=shared)), existing


async def create_checkpoint(store: Store, state: SessionState, label: str = "", kind: str = CHECKPOINT,
                            keep: int | None = None, op_id: str | None = None,
                            shared: dict[str, Any] | None = None) -> dict[str, Any]:
    """Checkpoint (or version) the state. With ``op_id`` the checkpoint and the record of the
    id are one write of the session; without (automatic checkpoints after a turn) the
    checkpoint alone is written. ``shared``: the session's shared state, recorded with it."""
    if (done := _replayed(state, op_id)) is not None:
        rec = await store.get_checkpoint(state.key, done[1])
        if rec is None:
            raise _gone("create_checkpoint", state, done[1])
        return _info_dict(rec.info)
    if not isinstance(label, str):
        raise InvalidInput(f"a checkpoint label is a str, got {type(label).__name__}")
    if kind not in (CHECKPOINT, VERSION):
        raise InvalidInput(f"kind is {CHECKPOINT!r} or {VERSION!r}, not {kind!r}")
    record, existing = await _new_checkpoint(store, state, label, kind, shared)
    info = _info_dict(record.info)
    if op_id is None:
        await store.put_checkpoint(record)
    else:
        write, meta, messages = state.meta_write(state.with_op(state.meta, op_id, info["cp_id"]), checkpoint=record)
        state.applied(await store.commit(write), meta, messages)
    if keep is not None and kind == CHECKPOINT and len(existing) + 1 > keep:
        # A checkpoint that answers a recent edit's resend (what it removed) stays. Checkpoints
        # made by create_checkpoint are not pinned, so that ``keep`` holds.
        pinned = {r[1][0] for r in state.meta.get("recent_ops", ()) if isinstance(r[1], list)}
        drop = [c.cp_id for c in existing[: len(existing) + 1 - keep] if c.cp_id not in pinned]
        if drop:
            await delete_checkpoints(store, state, drop)
    return info


async def delete_checkpoints(store: Store, state: SessionState, cp_ids: list[str]) -> int:
    """Delete checkpoints (or versions) and the frozen segments only they referenced."""
    n = await store.delete_checkpoints(state.key, cp_ids)
    await snapshots.collect(store, state.key)
    return n


def _gone(what: str, state: SessionState, cp_id: str) -> StoreError:
    return StoreError(f"{what} on session {state.key!r} was applied, but checkpoint {cp_id!r}, which answers "
                      "its resend, is gone (imported over or deleted); read the session instead")


def _info_dict(info: CheckpointInfo) -> dict[str, Any]:
    return {"id": info.seq, "cp_id": info.cp_id, "kind": info.kind, "turn": info.turn,
            "timestamp": info.created_at, "label": info.label}


async def _find(store: Store, state: SessionState, ref: int | str, kind: str) -> CheckpointRecord:
    cp_id = ref if isinstance(ref, str) else f"{kind[0]}{ref}"
    rec = await store.get_checkpoint(state.key, cp_id)
    if rec is None or rec.info.kind != kind:
        known = [c.seq for c in await store.list_checkpoints(state.key, kind)]
        raise InvalidInput(f"session {state.key!r} has no {kind} {ref!r}; it has {kind}s {known}")
    return rec


async def restore_checkpoint(store: Store, state: SessionState, ref: int | str, kind: str = CHECKPOINT,
                             op_id: str | None = None) -> int:
    if _replayed(state, op_id) is not None:
        return state.revision
    rec = await _find(store, state, ref, kind)
    snap = await unsnapshot(store, state, rec.data, f"{kind} {ref!r} of session {state.key!r}")
    meta = dict(snap["meta"])
    for f in _LIVE_FIELDS:
        if f in state.meta:
            meta[f] = state.meta[f]
    # The operations applied since the checkpoint stay applied: a resend is still answered.
    meta["recent_ops"] = list(state.meta.get("recent_ops", ()))
    return await commit_replace(store, state, snap["messages"], meta, op_id=op_id)


async def list_checkpoints(store: Store, state: SessionState, kind: str = CHECKPOINT) -> list[dict[str, Any]]:
    return [_info_dict(c) for c in await store.list_checkpoints(state.key, kind)]


async def _cut(store: Store, state: SessionState, what: str, messages: list[bytes], removed: list[dict[str, Any]],
               start: int, op_id: str | None, meta: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Write an edited history and a checkpoint of the state before the edit, in one write.

    ``removed`` were the messages ``start:start + len(removed)`` before the edit: the
    operation's record points there in the checkpoint, which answers a resend.
    """
    if removed:
        # commit_replace freezes what the edit changes for it (copy-on-write).
        record, _ = await _new_checkpoint(store, state, f"before {what}", CHECKPOINT)
        await commit_replace(store, state, messages, state.meta if meta is None else meta, op_id=op_id,
                             result=[record.info.cp_id, start, start + len(removed)], checkpoint=record)
    return removed


async def _removed(store: Store, state: SessionState, what: str, result: list[Any]) -> list[dict[str, Any]]:
    """What an applied edit removed, read back from the checkpoint it took before the edit."""
    cp_id, start, stop = result
    rec = await store.get_checkpoint(state.key, cp_id)
    if rec is None:
        raise _gone(what, state, cp_id)
    snap = await unsnapshot(store, state, rec.data, f"checkpoint {cp_id!r} of session {state.key!r}")
    return unpack_array(pack_array(snap["messages"][start:stop]))


async def pop_turn(store: Store, state: SessionState, op_id: str | None = None) -> list[dict[str, Any]]:
    """Remove the last user message and everything after it; returns what was removed."""
    if (done := _replayed(state, op_id)) is not None:
        return await _removed(store, state, "pop_turn", done[1])
    history = state.history()
    last_user = next((i for i in range(len(history) - 1, -1, -1) if history[i]["role"] == "user"), None)
    if last_user is None:
        return []
    meta = dict(state.meta, turns=max(state.meta["turns"] - 1, 0))
    return await _cut(store, state, "pop_turn", state.messages[:last_user], history[last_user:], last_user,
                      op_id, meta)


async def truncate(store: Store, state: SessionState, keep: int, op_id: str | None = None) -> list[dict[str, Any]]:
    """Keep the first ``keep`` messages; returns the removed ones."""
    if (done := _replayed(state, op_id)) is not None:
        return await _removed(store, state, "truncate", done[1])
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise InvalidInput("truncate takes a number of messages to keep (>= 0)")
    return await _cut(store, state, "truncate", state.messages[:keep], state.history()[keep:], keep, op_id)


async def edit_message(store: Store, state: SessionState, index: int, content: str,
                       op_id: str | None = None) -> list[dict[str, Any]]:
    """Replace the content of message ``index``; returns the message as it was."""
    if (done := _replayed(state, op_id)) is not None:
        return await _removed(store, state, "edit_message", done[1])
    history = state.history()
    if isinstance(index, bool) or not isinstance(index, int) or not -len(history) <= index < len(history):
        raise InvalidInput(f"no message at index {index!r}; the history has {len(history)} messages")
    if not isinstance(content, str):
        raise InvalidInput("edit_message takes the new content as a str")
    messages = list(state.messages)
    messages[index] = _codec.encode(dict(history[index], content=content, edited_at=time.time()))
    return await _cut(store, state, "edit", messages, [history[index]], index % len(history), op_id)


async def update_fields(store: Store, state: SessionState, field: str, updates: dict[str, Any],
                        replace: bool = False, op_id: str | None = None) -> dict[str, Any]:
    """Update (or replace) ``user_data``, ``user_profile`` or ``metadata``."""
    if _replayed(state, op_id) is not None:
        return state.meta.get(field, {})
    if field not in ("user_data", "user_profile", "metadata"):
        raise InvalidInput(f"cannot update {field!r}")
    if not isinstance(updates, dict):
        raise InvalidInput(f"{field} takes a dict")
    _codec.encode(updates)  # refuse what cannot be stored before anything changes
    value = dict(updates) if replace else {**state.meta.get(field, {}), **updates}
    await commit_replace(store, state, state.messages, dict(state.meta, **{field: value}), op_id=op_id)
    return value


async def update_item(store: Store, state: SessionState, field: str, key: str, value: Any,
                      mode: str, op_id: str | None = None) -> Any:
    """Merge ``value`` into the dict at ``field[key]`` (mode "merge") or append it to the list
    there ("append"), in one write under the session's lock: concurrent callers lose nothing."""
    if _replayed(state, op_id) is not None:
        return state.meta.get(field, {}).get(key)
    current = state.meta.get(field, {}).get(key)
    if mode == "merge":
        new = {**(current or {}), **value}
    elif mode == "append":
        new = [*(current or []), value]
    else:
        raise InvalidInput(f"unknown update mode {mode!r}")
    await update_fields(store, state, field, {key: new}, op_id=op_id)
    return new


async def read_fields(store: Store, state: SessionState) -> dict[str, Any]:
    """Everything but the history: reading user data does not decode or ship the messages.
    ``agent`` and ``agents`` are the stored definitions a handle without ``agent=`` continues with."""
    m = state.meta
    return {"user_data": m["user_data"], "user_profile": m["user_profile"], "metadata": m["metadata"],
            "created_at": m["created_at"], "updated_at": m["updated_at"], "turns": m["turns"],
            "revision": state.revision, "agent": m.get("agent"), "agents": m.get("agents", {})}


async def add_rating(store: Store, state: SessionState, score: float, comment: str | None = None,
                     op_id: str | None = None) -> int:
    """Record an explicit rating (0 to 1) of the session; returns how many it keeps."""
    if _replayed(state, op_id) is not None:
        return len(state.meta.get("ratings", ()))
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        raise InvalidInput(f"a rating is a number from 0 (unhappy) to 1 (happy), got {score!r:.40}; "
                           "for 4 stars out of 5 pass 4 / 5")
    if comment is not None and not isinstance(comment, str):
        raise InvalidInput(f"a rating's comment is a str or None, got {type(comment).__name__}")
    ratings = [*state.meta.get("ratings", ())[-(schema.RATINGS_KEPT - 1):], [float(score), time.time(), comment]]
    await commit_replace(store, state, state.messages, dict(state.meta, ratings=ratings), op_id=op_id)
    return len(ratings)


async def set_ttl(store: Store, state: SessionState, ttl: float | None, op_id: str | None = None) -> None:
    if _replayed(state, op_id) is not None:
        return
    meta = dict(state.meta, ttl=schema.check_ttl(ttl))
    await commit_replace(store, state, state.messages, meta, op_id=op_id)


async def set_history(store: Store, state: SessionState, messages: list[dict[str, Any]],
                      op_id: str | None = None) -> int:
    """Replace the history with ``messages``; returns the revision. Tool calls that no tool
    message answers get a recorded "tool call interrupted" result (agents.tool_calls), so that
    providers accept the history as a prompt."""
    if _replayed(state, op_id) is not None:
        return state.revision
    return await commit_replace(store, state, [_codec.encode(m) for m in repair_history(check_history(messages))],
                                state.meta, op_id=op_id)


async def set_state(store: Store, state: SessionState, new: dict[str, Any], op_id: str | None = None) -> int:
    if _replayed(state, op_id) is not None:
        return state.revision
    if not isinstance(new, dict):
        raise InvalidInput("set_state takes the dict that get_state returns")
    meta = dict(state.meta)
    for f in ("user_data", "user_profile", "metadata"):
        if f in new:
            if not isinstance(new[f], dict):
                raise InvalidInput(f"state[{f!r}] must be a dict")
            meta[f] = new[f]
    if "turns" in new:
        meta["turns"] = int(new["turns"])
    messages = state.messages
    if "history" in new:
        messages = [_codec.encode(m) for m in check_history(new["history"])]
    return await commit_replace(store, state, messages, meta, op_id=op_id)


async def export_session(store: Store, state: SessionState, with_checkpoints: bool = False) -> dict[str, Any]:
    if state.revision == 0:
        raise SessionNotFound(f"session {state.key!r} does not exist; nothing to export")
    out: dict[str, Any] = {"kind": "repertory.session", "key": state.key, "meta": state.meta,
                           "messages": state.messages, "version": state.revision, "checkpoints": []}
    if with_checkpoints:
        for info in await store.list_checkpoints(state.key):
            if info.kind == snapshots.SEGMENT:
                continue
            rec = await store.get_checkpoint(state.key, info.cp_id)
            if rec is not None:
                # Exported checkpoints are self-contained (format 1): a file holds no live history.
                snap = await unsnapshot(store, state, rec.data,
                                        f"{info.kind} {info.cp_id!r} of session {state.key!r}")
                full = {"meta": snap["meta"], "messages": snap["messages"], "revision": snap.get("revision", 0)}
                if "shared_state" in snap:
                    full["shared_state"] = snap["shared_state"]
                data = _codec.encode(full, checked=True)
                out["checkpoints"].append({"info": _info_dict(info), "data": data})
    return out


async def import_session(store: Store, state: SessionState, doc: dict[str, Any], overwrite: bool = True,
                         op_id: str | None = None) -> int:
    """Write an exported session as this one, checked whole first (nothing is written from a
    bad document). Overwriting is one compare-and-set replace under the session's lock, and
    the old checkpoints the document does not bring are removed after it: never a delete
    followed by a write that could fail half-way. The document's recent turn and operation
    ids come with it (they describe its history)."""
    if _replayed(state, op_id) is not None:
        return state.revision
    if not overwrite and state.revision > 0:
        raise InvalidInput(f"session {state.key!r} already exists; delete it or import with overwrite")
    doc = schema.check_export_doc(doc, f"the session imported as {state.key!r}")
    meta = dict(doc["meta"], session_id=state.meta["session_id"], user_id=state.meta["user_id"])
    if "ttl" not in meta:
        meta["ttl"] = state.meta.get("ttl")
    # An imported session keeps its age, so listing and cleanup see when it was last used.
    old = await store.list_checkpoints(state.key) if state.revision > 0 else []
    revision = await commit_replace(store, state, doc["messages"], meta, updated_at=doc["meta"].get("updated_at"),
                                    keep_recent_turns=True, op_id=op_id)
    brought = set()
    for cp in doc.get("checkpoints") or []:
        i = cp["info"]
        info = CheckpointInfo(state.key, i["cp_id"], i["kind"], i["id"], i["timestamp"], i["turn"], i["label"])
        # Stored linear against the imported history: an import grows with it, not with its copies.
        data = snapshots.linear_from(cp["data"], state.messages, f"the imported {i['kind']} {i['cp_id']!r}")
        await store.put_checkpoint(CheckpointRecord(info, data))
        brought.add(i["cp_id"])
    stale = [c.cp_id for c in old if c.cp_id not in brought]
    if stale:
        await store.delete_checkpoints(state.key, stale)
    await snapshots.collect(store, state.key)  # the old checkpoints' segments
    return revision


async def checkpoint_snapshot(store: Store, state: SessionState, ref: int | str,
                                  kind: str = CHECKPOINT) -> dict[str, Any]:
    rec = await _find(store, state, ref, kind)
    snap = await unsnapshot(store, state, rec.data, f"{kind} {ref!r} of session {state.key!r}")
    doc = {"kind": "repertory.session", "key": state.key, "meta": snap["meta"],
           "messages": snap["messages"], "version": snap.get("version", 0), "checkpoints": []}
    if "shared_state" in snap:  # not part of an export document: the handle takes it out
        doc["shared_state"] = snap["shared_state"]
    return doc


async def update_workflow(store: Store, state: SessionState, workflow_id: str,
                          tasks: dict[str, Any], status: str | None = None, op_id: str | None = None) -> dict[str, Any]:
    """Merge task entries into ``metadata["workflows"][workflow_id]`` atomically (parallel tasks)."""
    if _replayed(state, op_id) is not None:
        return state.meta.get("metadata", {}).get("workflows", {}).get(workflow_id, {})
    meta = dict(state.meta)
    metadata = dict(meta.get("metadata", {}))
    workflows = dict(metadata.get("workflows", {}))
    wf = dict(workflows.get(workflow_id, {"tasks": {}, "status": "running"}))
    wf["tasks"] = {**wf.get("tasks", {}), **tasks}
    if status is not None:
        wf["status"] = status
    wf["updated_at"] = time.time()
    workflows[workflow_id] = wf
    metadata["workflows"] = workflows
    meta["metadata"] = metadata
    await commit_replace(store, state, state.messages, meta, op_id=op_id)
    return wf
