"""Session files: atomic writes and safe reads of the codec format (never pickle)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any

from repertory.stores.codec import MsgpackCodec

from repertory.errors import CorruptState, InvalidInput, SessionFileNotFound

__all__ = ["AtomicFile", "read_session_file", "write_atomic", "write_session_file"]

_codec = MsgpackCodec()


class AtomicFile:
    """A file that appears under its name only once complete (temp file, fsync, rename, fsync
    of the folder), so readers see the old file or the new one, never half. Mode 0600: session
    data is private to its owner."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.target = Path(path).expanduser()
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent)
        self.file: IO[bytes] = os.fdopen(fd, "wb")  # mkstemp creates it 0600

    def commit(self) -> Path:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.target)
        except BaseException:
            self.abort()
            raise
        try:  # make the rename itself durable
            dfd = os.open(self.target.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        return self.target

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        Path(self.tmp).unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :class:`AtomicFile`)."""
    out = AtomicFile(path)
    try:
        out.file.write(data)
    except BaseException:
        out.abort()
        raise
    return out.commit()


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
