"""Export and import of stored sessions: to and from a JSONL file or a folder of session files.

Every session is read and written through its host, under its mailbox, so an import never
races a turn and an overwrite is one replace.

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

A runtime with an encryption key writes encrypted exports unless asked for ``plaintext``: each
session file is sealed whole, and a JSONL line carries the sealed session file instead of its
records (``{"format": ..., "key": ..., "sealed": "<base64 envelope>"}``). Imports read both.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from repertory._sync import run_sync
from repertory.admin.listing import Progress, list_summaries
from repertory.errors import CorruptState, InvalidInput, SessionNotFound
from repertory.ids import SessionRef
from repertory.jsonl import JsonlLineError, read_jsonl
from repertory.logs import get_logger
from repertory.runtimes.base import Runtime
from repertory.runtimes.current import get_runtime
from repertory.state.files import (AtomicFile, decode_session_doc, encode_session_doc, read_session_file,
                                   write_session_file)
from repertory.state.schema import check_export_doc
from repertory.stores.codec import MsgpackCodec
from repertory.stores.crypto import KeyRing

__all__ = ["JSONL_FORMAT", "ImportResult", "aexport_sessions", "aimport_sessions", "export_sessions",
           "import_sessions"]

log = get_logger("repertory.admin")
_codec = MsgpackCodec()
JSONL_FORMAT = "repertory.session.v1"


class ImportResult(int):
    """The number of sessions an import wrote (it *is* that int), plus the keys it skipped."""

    skipped: tuple[str, ...]

    def __new__(cls, imported: int, skipped: Iterable[str] = ()) -> ImportResult:
        obj = super().__new__(cls, imported)
        obj.skipped = tuple(skipped)
        return obj

    def __repr__(self) -> str:
        return f"ImportResult({int(self)}, skipped={self.skipped!r})"


# -- export -----------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _jsonl_line(doc: dict[str, Any], keys: KeyRing | None) -> bytes:
    meta = doc["meta"]
    if keys is not None:
        obj: dict[str, Any] = {"format": JSONL_FORMAT, "key": doc["key"], "sealed": _b64(encode_session_doc(doc, keys))}
        return json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n"
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
                  progress: Progress | None, plaintext: bool = False) -> int:
    target = Path(path).expanduser()
    keys = None if plaintext else rt.settings.keyring()
    jsonl = target.name.endswith(".jsonl")
    sessions = await list_summaries(rt, prefix, None, None, None)
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
                    out.file.write(_jsonl_line(doc, keys))
                else:
                    await asyncio.to_thread(write_session_file, target / _file_name(s.key, used), doc, keys)
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
    log.info("sessions_exported", sessions=n, path=str(target), encrypted=keys is not None)
    return n


async def aexport_sessions(path: str | os.PathLike[str], prefix: str = "", with_checkpoints: bool = True,
                           *, progress: Progress | None = None, plaintext: bool = False) -> int:
    """Write the sessions whose key starts with ``prefix`` to ``path``; returns how many.

    ``path`` ending in ``.jsonl``: one file, one session a line (see the module docstring);
    otherwise a folder of session files. ``progress(done, total)`` is called after each session.
    With an encryption key the export is encrypted with it, unless ``plaintext``.
    """
    return await _export(get_runtime(), path, prefix, with_checkpoints, progress, plaintext)


def export_sessions(path: str | os.PathLike[str], prefix: str = "", with_checkpoints: bool = True,
                    *, progress: Progress | None = None, plaintext: bool = False) -> int:
    """Sync :func:`aexport_sessions`."""
    return run_sync(_export, get_runtime(), path, prefix, with_checkpoints, progress, plaintext)


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


def _parse_line(obj: Any, where: str, keys: KeyRing | None) -> dict[str, Any]:
    if not isinstance(obj, dict) or obj.get("format") != JSONL_FORMAT:
        raise CorruptState(f"{where} is not a repertory session line (format {JSONL_FORMAT!r}); nothing was imported")
    if "sealed" in obj:
        doc = decode_session_doc(_unb64(obj["sealed"], f"{where} sealed"), keys, source=where)
        if doc.get("key") != obj.get("key"):
            raise CorruptState(f"{where}: the sealed session is {doc.get('key')!r}, the line says "
                               f"{obj.get('key')!r}; nothing was imported")
        return doc
    cps = obj.get("checkpoints") or []
    if not isinstance(cps, list) or not isinstance(obj.get("messages"), list):
        raise CorruptState(f"{where}: messages and checkpoints must be lists; nothing was imported")
    return {"kind": "repertory.session", "key": obj.get("key"), "version": obj.get("version", 0),
            "meta": _codec.decode(_unb64(obj.get("meta"), f"{where} meta"), source=f"{where} meta"),
            "messages": [_unb64(m, f"{where} message {i}") for i, m in enumerate(obj["messages"])],
            "checkpoints": [{"info": cp.get("info") if isinstance(cp, dict) else None,
                             "data": _unb64(cp.get("data") if isinstance(cp, dict) else None,
                                            f"{where} checkpoint {j}")} for j, cp in enumerate(cps)]}


def _read_docs(source: Path, keys: KeyRing | None) -> Iterator[tuple[SessionRef, dict[str, Any]]]:
    """The validated sessions of an export, in file order."""
    if source.name.endswith(".jsonl"):
        for n, obj in read_jsonl(source, require_newline=True):
            where = f"{source} line {n}"
            if isinstance(obj, JsonlLineError):
                raise CorruptState(f"{obj}; it may be truncated. Nothing was imported") from obj
            yield _check_doc(_parse_line(obj, where, keys), where)
        return
    if not source.is_dir():
        raise InvalidInput(f"{source} is neither a .jsonl export nor a folder of session files")
    for p in sorted(source.glob("*.rps")):
        yield _check_doc(read_session_file(p, keys), f"session file {p}")


async def _import(rt: Runtime, path: str | os.PathLike[str], overwrite: bool,
                  progress: Progress | None) -> ImportResult:
    source = Path(path).expanduser()
    # Check everything first: a corrupt line or file stops the import before any write.
    keys = rt.settings.keyring()
    total = await asyncio.to_thread(lambda: sum(1 for _ in _read_docs(source, keys)))
    imported, skipped = 0, []
    for i, (ref, doc) in enumerate(_read_docs(source, keys), 1):
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
