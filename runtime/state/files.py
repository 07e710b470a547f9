"""Session files: atomic writes and safe reads of the codec format (never pickle)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from repertory.stores.codec import MsgpackCodec

from repertory.errors import CorruptState, InvalidInput, SessionFileNotFound

__all__ = ["read_session_file", "write_atomic", "write_session_file"]

_codec = MsgpackCodec()


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return target


def write_session_file(path: str | os.PathLike[str], doc: dict[str, Any]) -> Path:
    """Save an exported session (whatever the file's suffix, ``.pkl`` included: our format)."""
    return write_atomic(path, _codec.encode(doc))


def read_session_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a file written by :func:`write_session_file`; typed errors for anything else."""
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise SessionFileNotFound(f"no session file at {p}; check the path (save() writes it)") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read session file {p}: {exc}") from exc
    doc = _codec.decode(data, source=f"session file {p}")
    if not isinstance(doc, dict) or doc.get("kind") != "repertory.session":
        raise CorruptState(f"session file {p} holds repertory data but not a session")
    for field in ("meta", "messages"):
        if field not in doc:
            raise CorruptState(f"session file {p} lacks {field!r}; it is incomplete")
    return doc
