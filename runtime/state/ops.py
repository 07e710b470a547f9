"""Durable operations on one session's state: checkpoints, versions, edits, import/export.

Each function takes the store and the resident :class:`SessionState` (the host holds the
session's mailbox lock while it runs) and commits with compare-and-set, so a lost race
surfaces as ConcurrentUpdate and the host retries on fresh state. Restores never move the
revision backwards: they write the old content as a new revision.
"""

from __future__ import annotations

import time
from typing import Any

from repertory.stores.base import CheckpointInfo, CheckpointRecord, Store
from repertory.stores.codec import MsgpackCodec

from repertory.errors import InvalidInput, SessionNotFound
from repertory.state import schema
from repertory.state.session_state import SessionState, check_history

__all__ = ["checkpoint_snapshot", "commit_replace", "create_checkpoint", "edit_message", "export_session",
           "import_session", "list_checkpoints", "pop_turn", "read_fields", "restore_checkpoint", "set_history",
           "set_state", "set_ttl", "truncate", "unsnapshot", "update_fields", "update_item", "update_workflow"]

_codec = MsgpackCodec()
CHECKPOINT, VERSION = "checkpoint", "version"
# Meta fields that describe the live session rather than a point in its past: a restore
# keeps the session's agents and never erases a recorded agent change.
_LIVE_FIELDS = ("session_id", "user_id", "created_at", "ttl", "agent", "agents", "agent_changes")


def snapshot(state: SessionState) -> bytes:
    return _codec.encode({"meta": state.meta, "messages": state.messages, "revision": state.revision})


def unsnapshot(data: bytes, source: str) -> dict[str, Any]:
    snap = _codec.decode(data, source=source)
    if not isinstance(snap, dict) or "meta" not in snap or "messages" not in snap:
        from repertory.errors import CorruptState

        raise CorruptState(f"{source} is not a session snapshot")
    return snap


async def commit_replace(store: Store, state: SessionState, messages_raw: list[bytes],
                         meta: dict[str, Any], *, updated_at: float | None = None,
                         keep_recent_turns: bool = False) -> int:
    """Replace the stored history and meta in one compare-and-set write; returns the revision.

    Recent turn ids survive only when the history is the one they point into: unchanged
    (the same list), or imported with them (``keep_recent_turns``).
    """
    keep = keep_recent_turns or messages_raw is state.messages
    write, meta, messages = state.replace_write(messages_raw, meta, updated_at=updated_at, keep_recent_turns=keep)
    revision = await store.commit(write)
    state.applied(revision, meta, messages)
    return revision


async def create_checkpoint(store: Store, state: SessionState, label: str = "", kind: str = CHECKPOINT,
                            keep: int | None = None) -> dict[str, Any]:
    if not isinstance(label, str):
        raise InvalidInput(f"a checkpoint label is a str, got {type(label).__name__}")
    if kind not in (CHECKPOINT, VERSION):
        raise InvalidInput(f"kind is {CHECKPOINT!r} or {VERSION!r}, not {kind!r}")
    existing = await store.list_checkpoints(state.key, kind)
    seq = max((c.seq for c in existing), default=0 if kind == CHECKPOINT else -1) + 1
    info = CheckpointInfo(state.key, f"{kind[0]}{seq}", kind, seq, time.time(), state.meta["turns"], label or "")
    await store.put_checkpoint(CheckpointRecord(info, snapshot(state)))
    if keep is not None and kind == CHECKPOINT and len(existing) + 1 > keep:
        drop = [c.cp_id for c in existing[: len(existing) + 1 - keep]]
        await store.delete_checkpoints(state.key, drop)
    return _info_dict(info)


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


async def restore_checkpoint(store: Store, state: SessionState, ref: int | str, kind: str = CHECKPOINT) -> int:
    rec = await _find(store, state, ref, kind)
    snap = unsnapshot(rec.data, f"{kind} {ref!r} of session {state.key!r}")
    meta = dict(snap["meta"])
    for f in _LIVE_FIELDS:
        if f in state.meta:
            meta[f] = state.meta[f]
    return await commit_replace(store, state, snap["messages"], meta)


async def list_checkpoints(store: Store, state: SessionState, kind: str = CHECKPOINT) -> list[dict[str, Any]]:
    return [_info_dict(c) for c in await store.list_checkpoints(state.key, kind)]


async def _cut(store: Store, state: SessionState, what: str, messages: list[bytes], removed: list[dict[str, Any]],
               meta: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Write an edited history, after a checkpoint of the state before the edit."""
    if removed:
        await create_checkpoint(store, state, label=f"before {what}")
        await commit_replace(store, state, messages, state.meta if meta is None else meta)
    return removed


async def pop_turn(store: Store, state: SessionState) -> list[dict[str, Any]]:
    """Remove the last user message and everything after it; returns what was removed."""
    history = state.history()
    last_user = next((i for i in range(len(history) - 1, -1, -1) if history[i]["role"] == "user"), None)
    if last_user is None:
        return []
    meta = dict(state.meta, turns=max(state.meta["turns"] - 1, 0))
    return await _cut(store, state, "pop_turn", state.messages[:last_user], history[last_user:], meta)


async def truncate(store: Store, state: SessionState, keep: int) -> list[dict[str, Any]]:
    """Keep the first ``keep`` messages; returns the removed ones."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise InvalidInput("truncate takes a number of messages to keep (>= 0)")
    return await _cut(store, state, "truncate", state.messages[:keep], state.history()[keep:])


async def edit_message(store: Store, state: SessionState, index: int, content: str) -> list[dict[str, Any]]:
    """Replace the content of message ``index``; returns the message as it was."""
    history = state.history()
    if isinstance(index, bool) or not isinstance(index, int) or not -len(history) <= index < len(history):
        raise InvalidInput(f"no message at index {index!r}; the history has {len(history)} messages")
    if not isinstance(content, str):
        raise InvalidInput("edit_message takes the new content as a str")
    messages = list(state.messages)
    messages[index] = _codec.encode(dict(history[index], content=content, edited_at=time.time()))
    return await _cut(store, state, "edit", messages, [history[index]])


async def update_fields(store: Store, state: SessionState, field: str, updates: dict[str, Any],
                        replace: bool = False) -> dict[str, Any]:
    """Update (or replace) ``user_data``, ``user_profile`` or ``metadata``."""
    if field not in ("user_data", "user_profile", "metadata"):
        raise InvalidInput(f"cannot update {field!r}")
    if not isinstance(updates, dict):
        raise InvalidInput(f"{field} takes a dict")
    _codec.encode(updates)  # refuse what cannot be stored before anything changes
    value = dict(updates) if replace else {**state.meta.get(field, {}), **updates}
    await commit_replace(store, state, state.messages, dict(state.meta, **{field: value}))
    return value


async def update_item(store: Store, state: SessionState, field: str, key: str, value: Any,
                      mode: str) -> Any:
    """Merge ``value`` into the dict at ``field[key]`` (mode "merge") or append it to the list
    there ("append"), in one write under the session's lock: concurrent callers lose nothing."""
    current = state.meta.get(field, {}).get(key)
    if mode == "merge":
        new = {**(current or {}), **value}
    elif mode == "append":
        new = [*(current or []), value]
    else:
        raise InvalidInput(f"unknown update mode {mode!r}")
    await update_fields(store, state, field, {key: new})
    return new


async def read_fields(store: Store, state: SessionState) -> dict[str, Any]:
    """Everything but the history: reading user data does not decode or ship the messages.
    ``agent`` and ``agents`` are the stored definitions a handle without ``agent=`` continues with."""
    m = state.meta
    return {"user_data": m["user_data"], "user_profile": m["user_profile"], "metadata": m["metadata"],
            "created_at": m["created_at"], "updated_at": m["updated_at"], "turns": m["turns"],
            "revision": state.revision, "agent": m.get("agent"), "agents": m.get("agents", {})}


async def set_ttl(store: Store, state: SessionState, ttl: float | None) -> None:
    meta = dict(state.meta, ttl=schema.check_ttl(ttl))
    await commit_replace(store, state, state.messages, meta)


async def set_history(store: Store, state: SessionState, messages: list[dict[str, Any]]) -> int:
    """Replace the history with ``messages``; returns the revision."""
    return await commit_replace(store, state, [_codec.encode(m) for m in check_history(messages)], state.meta)


async def set_state(store: Store, state: SessionState, new: dict[str, Any]) -> int:
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
    return await commit_replace(store, state, messages, meta)


async def export_session(store: Store, state: SessionState, with_checkpoints: bool = False) -> dict[str, Any]:
    if state.revision == 0:
        raise SessionNotFound(f"session {state.key!r} does not exist; nothing to export")
    out: dict[str, Any] = {"kind": "repertory.session", "key": state.key, "meta": state.meta,
                           "messages": state.messages, "version": state.revision, "checkpoints": []}
    if with_checkpoints:
        for info in await store.list_checkpoints(state.key):
            rec = await store.get_checkpoint(state.key, info.cp_id)
            if rec is not None:
                out["checkpoints"].append({"info": _info_dict(info), "data": rec.data})
    return out


async def import_session(store: Store, state: SessionState, doc: dict[str, Any], overwrite: bool = True) -> int:
    """Write an exported session as this one, checked whole first (nothing is written from a
    bad document). Overwriting is one compare-and-set replace under the session's lock, and
    the old checkpoints the document does not bring are removed after it: never a delete
    followed by a write that could fail half-way."""
    if not overwrite and state.revision > 0:
        raise InvalidInput(f"session {state.key!r} already exists; delete it or import with overwrite")
    doc = schema.check_export_doc(doc, f"the session imported as {state.key!r}")
    meta = dict(doc["meta"], session_id=state.meta["session_id"], user_id=state.meta["user_id"])
    if "ttl" not in meta:
        meta["ttl"] = state.meta.get("ttl")
    # An imported session keeps its age, so listing and cleanup see when it was last used.
    old = await store.list_checkpoints(state.key) if state.revision > 0 else []
    revision = await commit_replace(store, state, doc["messages"], meta, updated_at=doc["meta"].get("updated_at"),
                                    keep_recent_turns=True)
    brought = set()
    for cp in doc.get("checkpoints") or []:
        i = cp["info"]
        info = CheckpointInfo(state.key, i["cp_id"], i["kind"], i["id"], i["timestamp"], i["turn"], i["label"])
        await store.put_checkpoint(CheckpointRecord(info, cp["data"]))
        brought.add(i["cp_id"])
    stale = [c.cp_id for c in old if c.cp_id not in brought]
    if stale:
        await store.delete_checkpoints(state.key, stale)
    return revision


async def checkpoint_snapshot(store: Store, state: SessionState, ref: int | str,
                                  kind: str = CHECKPOINT) -> dict[str, Any]:
    rec = await _find(store, state, ref, kind)
    snap = unsnapshot(rec.data, f"{kind} {ref!r} of session {state.key!r}")
    return {"kind": "repertory.session", "key": state.key, "meta": snap["meta"],
            "messages": snap["messages"], "version": snap.get("version", 0), "checkpoints": []}


async def update_workflow(store: Store, state: SessionState, workflow_id: str,
                          tasks: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    """Merge task entries into ``metadata["workflows"][workflow_id]`` atomically (parallel tasks)."""
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
    await commit_replace(store, state, state.messages, meta)
    return wf
