"""Administration of stored sessions: list, clean up, export, import.

Store reads run on the sync portal's loop (store objects are loop-bound); anything that
changes a session goes through its host (``Runtime.call``), so a resident copy never
outlives a delete and an import is written under the session's mailbox.

Export formats. A path ending in ``.jsonl`` is one file, one session per line (UTF-8 JSON,
``\\n``-terminated); bytes are base64 (standard alphabet) of repertory's codec records, so
each keeps its checksum::

    {"format": "repertory.session.v1",
     "key": "alice/s1", "session_id": "s1", "user_id": "alice",   # readable; checked on import
     "version": 7,                                                # store revision when exported
     "meta": "<base64 codec record: the meta dict>",
     "messages": ["<base64 codec record: one message>", ...],
     "checkpoints": [{"info": {"id": 1, "cp_id": "c1", "kind": "checkpoint", "turn": 2,
                               "timestamp": 1717000000.0, "label": "auto at turn 2"},
                      "data": "<base64 codec record: the snapshot>"}, ...]}

Any other path is a folder of session files (``Session.save``'s format), one per session,
named after the storage key with ``/`` replaced by ``__``, suffix ``.rps``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from repertory.stores.base import SessionInfo
from repertory.stores.codec import MsgpackCodec

from repertory._sync import on_portal, run_sync
from repertory.runtimes.current import get_runtime
from repertory.errors import CorruptState, InvalidInput, SessionNotFound
from repertory.state.files import AtomicFile, read_session_file, write_session_file
from repertory.ids import SessionRef, validate_user_id
from repertory.jsonl import JsonlLineError, read_jsonl
from repertory.shared.core import SHARED_STATE_PREFIX
from repertory.state.schema import check_export_doc
from repertory.logs import get_logger
from repertory.runtimes.base import Runtime

__all__ = [
    "ImportResult", "SessionSummary", "acleanup", "aexport_sessions", "aimport_sessions",
    "alist_sessions", "cleanup", "export_sessions", "import_sessions", "list_sessions", "parse_duration",
]

log = get_logger("repertory.admin")
_codec = MsgpackCodec()
JSONL_FORMAT = "repertory.session.v1"
_CONCURRENCY = 32  # host calls in flight during a cleanup
Progress = Callable[[int, int], None]  # (done, total)


@dataclass(slots=True, frozen=True)
class SessionSummary:
    """One stored session, as listed (times are UTC-aware)."""

    session_id: str
    user_id: str | None
    key: str
    n_messages: int
    updated_at: datetime
    expires_at: datetime | None
    revision: int


class ImportResult(int):
    """The number of sessions an import wrote (it *is* that int), plus the keys it skipped."""

    skipped: tuple[str, ...]

    def __new__(cls, imported: int, skipped: Iterable[str] = ()) -> ImportResult:
        obj = super().__new__(cls, imported)
        obj.skipped = tuple(skipped)
        return obj

    def __repr__(self) -> str:
        return f"ImportResult({int(self)}, skipped={self.skipped!r})"


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _summary(info: SessionInfo) -> SessionSummary:
    user_id, _, session_id = info.key.rpartition("/")  # ids never hold '/', see storage_key
    return SessionSummary(session_id, user_id or None, info.key, info.n_messages, _utc(info.updated_at),
                          None if info.expires_at is None else _utc(info.expires_at), info.revision)


# -- durations --------------------------------------------------------------------------
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"45m"``, ``"12h"``, ``"30d"``, ``"2w"`` (or combined, ``"1d12h"``) as a timedelta."""
    compact = "".join(text.split()).lower() if isinstance(text, str) else ""
    parts = _PART.findall(compact)
    try:
        if compact and "".join(n + u for n, u in parts) == compact:
            return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))
    except OverflowError:
        pass
    raise InvalidInput(f"cannot read the duration {text!r}; write a number and a unit "
                       "(s, m, h, d, w), e.g. 90s, 45m, 12h, 30d, 2w, or combined: 1d12h")


Age = timedelta | int | float | str  # a timedelta, a number of days, or "30d", "12h", ...


def as_age(older_than: Age) -> timedelta:
    """``older_than`` as a timedelta: a timedelta, a number of days, or a duration text."""
    if isinstance(older_than, str):
        age = parse_duration(older_than)
    elif isinstance(older_than, (int, float)) and not isinstance(older_than, bool):
        if not math.isfinite(older_than):
            raise InvalidInput(f"older_than must be a finite number of days, got {older_than!r}")
        age = timedelta(days=older_than)
    elif isinstance(older_than, timedelta):
        age = older_than
    else:
        raise InvalidInput("older_than takes a datetime.timedelta, a number of days, or a duration "
                           f"such as '30d'; got {older_than!r}")
    if age < timedelta(0):
        raise InvalidInput(f"older_than must not be negative, got {older_than!r}")
    return age


def _cutoff(older_than: Age) -> float:
    return time.time() - as_age(older_than).total_seconds()


# -- listing and cleanup ----------------------------------------------------------------
async def _list(rt: Runtime, prefix: str, user_id: str | None, older_than: Age | None,
                limit: int | None) -> list[SessionSummary]:
    if not isinstance(prefix, str):
        raise InvalidInput(f"prefix must be a str, got {type(prefix).__name__}")
    user_id = validate_user_id(user_id)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInput(f"limit must be a positive int or None, got {limit!r}")
    before = None if older_than is None else _cutoff(older_than)
    key_prefix = prefix if user_id is None else f"{user_id}/{prefix}"
    store = rt.admin_store()

    async def read() -> list[SessionInfo]:
        # Shared states live under keys no session id can take ('~' cannot start an id): they
        # are not sessions, and listing, export and cleanup leave them alone.
        ask = limit
        while True:
            rows = await store.list_sessions(prefix=key_prefix, updated_before=before, limit=ask)
            sessions = [r for r in rows if not r.key.startswith(SHARED_STATE_PREFIX)]
            if limit is None or len(sessions) >= limit or len(rows) < ask:
                return sessions[:limit]
            ask += len(rows) - len(sessions)

    return [_summary(i) for i in await on_portal(read)]


async def alist_sessions(prefix: str = "", user_id: str | None = None, older_than: Age | None = None,
                         limit: int | None = None) -> list[SessionSummary]:
    """Stored sessions, least recently updated first.

    ``prefix`` matches the storage key (``session_id``, or ``user_id/session_id``); with
    ``user_id`` it matches session ids of that user. ``older_than``: only sessions not
    updated for that long. Expired sessions are not listed.
    """
    return await _list(get_runtime(), prefix, user_id, older_than, limit)


def list_sessions(prefix: str = "", user_id: str | None = None, older_than: Age | None = None,
                  limit: int | None = None) -> list[SessionSummary]:
    """Sync :func:`alist_sessions`."""
    return run_sync(_list, get_runtime(), prefix, user_id, older_than, limit)  # init off the portal


async def _cleanup(rt: Runtime, older_than: Age, dry_run: bool) -> list[SessionSummary]:
    older_than = as_age(older_than)
    cutoff = time.time() - older_than.total_seconds()
    stale = await _list(rt, "", None, older_than, None)
    if dry_run or not stale:
        return stale
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def drop(s: SessionSummary) -> bool:
        async with gate:
            # Through the host, under the session's lock: a resident copy goes too, and a
            # session used since it was listed is kept.
            return await rt.delete(SessionRef.from_key(s.key), cutoff)

    existed = await asyncio.gather(*(drop(s) for s in stale))
    removed = [s for s, gone in zip(stale, existed) if gone]
    log.info("sessions_cleaned", removed=len(removed), older_than_s=older_than.total_seconds())
    return removed


async def acleanup(older_than: Age, *, dry_run: bool = False) -> list[SessionSummary]:
    """Delete sessions not updated for ``older_than``; returns what was (or, dry run, would be) removed.

    ``older_than`` is a timedelta, a number of days (``cleanup(30)``) or a duration text
    (``"12h"``). Each delete runs under the session's lock and keeps a session that was
    updated after it was listed, so a live session is never removed by a cleanup.
    """
    return await _cleanup(get_runtime(), older_than, dry_run)


def cleanup(older_than: Age, *, dry_run: bool = False) -> list[SessionSummary]:
    """Sync :func:`acleanup`."""
    return run_sync(_cleanup, get_runtime(), older_than, dry_run)


# -- export -----------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _jsonl_line(doc: dict[str, Any]) -> bytes:
    meta = doc["meta"]
    obj = {"format": JSONL_FORMAT, "key": doc["key"], "session_id": meta["session_id"],
           "user_id": meta.get("user_id"), "version": doc.get("version", 0),
           "meta": _b64(_codec.encode(meta)), "messages": [_b64(m) for m in doc["messages"]],
           "checkpoints": [{"info": cp["info"], "data": _b64(cp["data"])} for cp in doc.get("checkpoints") or []]}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _file_name(key: str, used: set[str]) -> str:
    name = key.replace("/", "__")
    if name in used:  # 'u__s' (no user) and 'u/s' map to one name: keep both files
        name += "." + hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
    used.add(name)
    return name + ".rps"


async def _export(rt: Runtime, path: str | os.PathLike[str], prefix: str, with_checkpoints: bool,
                  progress: Progress | None) -> int:
    target = Path(path).expanduser()
    jsonl = target.name.endswith(".jsonl")
    sessions = await _list(rt, prefix, None, None, None)
    out: AtomicFile | None = None
    try:
        if jsonl:
            out = AtomicFile(target)
        else:
            target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"cannot write the export to {target}: {exc}") from exc
    used: set[str] = set()
    n = 0
    try:
        for i, s in enumerate(sessions, 1):
            try:
                doc = await rt.export_session(SessionRef(s.session_id, s.user_id), with_checkpoints)
            except SessionNotFound:
                doc = None  # deleted or expired since it was listed
            if doc is not None:
                if out is not None:
                    out.file.write(_jsonl_line(doc))
                else:
                    await asyncio.to_thread(write_session_file, target / _file_name(s.key, used), doc)
                n += 1
            if progress is not None:
                progress(i, len(sessions))
        if out is not None:
            await asyncio.to_thread(out.commit)
    except OSError as exc:
        raise InvalidInput(f"cannot write the export to {target}: {exc}") from exc
    finally:
        if out is not None and not out.file.closed:
            out.abort()
    log.info("sessions_exported", sessions=n, path=str(target))
    return n


async def aexport_sessions(path: str | os.PathLike[str], prefix: str = "", with_checkpoints: bool = True,
                           *, progress: Progress | None = None) -> int:
    """Write the sessions whose key starts with ``prefix`` to ``path``; returns how many.

    ``path`` ending in ``.jsonl``: one file, one session a line (see the module docstring);
    otherwise a folder of session files. ``progress(done, total)`` is called after each session.
    """
    return await _export(get_runtime(), path, prefix, with_checkpoints, progress)


def export_sessions(path: str | os.PathLike[str], prefix: str = "", with_checkpoints: bool = True,
                    *, progress: Progress | None = None) -> int:
    """Sync :func:`aexport_sessions`."""
    return run_sync(_export, get_runtime(), path, prefix, with_checkpoints, progress)


# -- import -----------------------------------------------------------------------------
def _check_doc(doc: Any, where: str) -> tuple[SessionRef, dict[str, Any]]:
    """Validate an exported session fully (every record) before anything is written."""
    clean = check_export_doc(doc, where)
    meta = clean["meta"]
    return SessionRef(meta["session_id"], meta["user_id"]), clean


def _unb64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise CorruptState(f"{where} is not base64 text; nothing was imported")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CorruptState(f"{where} is not valid base64 ({exc}); nothing was imported") from exc


def _parse_line(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or obj.get("format") != JSONL_FORMAT:
        raise CorruptState(f"{where} is not a repertory session line (format {JSONL_FORMAT!r}); nothing was imported")
    cps = obj.get("checkpoints") or []
    if not isinstance(cps, list) or not isinstance(obj.get("messages"), list):
        raise CorruptState(f"{where}: messages and checkpoints must be lists; nothing was imported")
    return {"kind": "repertory.session", "key": obj.get("key"), "version": obj.get("version", 0),
            "meta": _codec.decode(_unb64(obj.get("meta"), f"{where} meta"), source=f"{where} meta"),
            "messages": [_unb64(m, f"{where} message {i}") for i, m in enumerate(obj["messages"])],
            "checkpoints": [{"info": cp.get("info") if isinstance(cp, dict) else None,
                             "data": _unb64(cp.get("data") if isinstance(cp, dict) else None,
                                            f"{where} checkpoint {j}")} for j, cp in enumerate(cps)]}


def _read_docs(source: Path) -> Iterator[tuple[SessionRef, dict[str, Any]]]:
    """The validated sessions of an export, in file order."""
    if source.name.endswith(".jsonl"):
        for n, obj in read_jsonl(source, require_newline=True):
            where = f"{source} line {n}"
            if isinstance(obj, JsonlLineError):
                raise CorruptState(f"{obj}; it may be truncated. Nothing was imported") from obj
            yield _check_doc(_parse_line(obj, where), where)
        return
    if not source.is_dir():
        raise InvalidInput(f"{source} is neither a .jsonl export nor a folder of session files")
    for p in sorted(source.glob("*.rps")):
        yield _check_doc(read_session_file(p), f"session file {p}")


async def _import(rt: Runtime, path: str | os.PathLike[str], overwrite: bool,
                  progress: Progress | None) -> ImportResult:
    source = Path(path).expanduser()
    # Check everything first: a corrupt line or file stops the import before any write.
    total = await asyncio.to_thread(lambda: sum(1 for _ in _read_docs(source)))
    imported, skipped = 0, []
    for i, (ref, doc) in enumerate(_read_docs(source), 1):
        if not overwrite and await rt.exists(ref):
            skipped.append(ref.key)
        else:
            try:
                await rt.import_session(ref, doc, overwrite)
                imported += 1
            except InvalidInput:
                if overwrite or not await rt.exists(ref):
                    raise
                skipped.append(ref.key)  # created by someone else since the check
        if progress is not None:
            progress(i, total)
    if skipped:
        log.info("import_skipped_existing", sessions=len(skipped), keys=skipped[:20])
    log.info("sessions_imported", sessions=imported, skipped=len(skipped), path=str(source))
    return ImportResult(imported, skipped)


async def aimport_sessions(path: str | os.PathLike[str], overwrite: bool = False,
                           *, progress: Progress | None = None) -> ImportResult:
    """Import an export (``.jsonl`` file or folder); returns how many sessions were written.

    Existing sessions are skipped unless ``overwrite`` (then replaced, checkpoints included);
    the result's ``.skipped`` lists their keys. The whole input is checked before the first
    write: corrupt input raises :class:`CorruptState` naming the line or file.
    """
    return await _import(get_runtime(), path, overwrite, progress)


def import_sessions(path: str | os.PathLike[str], overwrite: bool = False,
                    *, progress: Progress | None = None) -> ImportResult:
    """Sync :func:`aimport_sessions`."""
    return run_sync(_import, get_runtime(), path, overwrite, progress)
