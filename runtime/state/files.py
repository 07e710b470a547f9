"""Session files: atomic writes and safe reads of the codec format (never pickle).

With keys (encryption at rest), a session file is one encryption envelope around the encoded
document (:mod:`repertory.stores.crypto`); reading one needs a key it was sealed with.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any

from repertory.stores.codec import MsgpackCodec
from repertory.stores.crypto import KeyRing, is_encrypted

from repertory.errors import CorruptState, EncryptionKeyMissing, InvalidInput, SessionFileNotFound

__all__ = ["AtomicFile", "decode_session_doc", "encode_session_doc", "read_session_file", "write_atomic",
           "write_session_file"]

_codec = MsgpackCodec()
_FILE_CONTEXT = b"repertory:session-file"


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


def encode_session_doc(doc: dict[str, Any], keys: KeyRing | None = None) -> bytes:
    """An exported session as bytes: the codec record, sealed when ``keys`` are given."""
    data = _codec.encode(doc)
    return data if keys is None else keys.encrypt(data, _FILE_CONTEXT)


def decode_session_doc(data: bytes, keys: KeyRing | None = None, *, source: str) -> dict[str, Any]:
    """What :func:`encode_session_doc` wrote (sealed or not); typed errors for anything else."""
    if is_encrypted(data):
        if keys is None:
            raise EncryptionKeyMissing(f"{source} is encrypted and no encryption key is configured; pass "
                                       "repertory.init(encryption_key=...) or set REPERTORY_ENCRYPTION_KEY")
        data = keys.decrypt(data, _FILE_CONTEXT, source=source)
    doc = _codec.decode(data, source=source)
    if not isinstance(doc, dict) or doc.get("kind") != "repertory.session":
        raise CorruptState(f"{source} holds repertory data but not a session")
    for field in ("meta", "messages"):
        if field not in doc:
            raise CorruptState(f"{source} lacks {field!r}; it is incomplete")
    return doc


def write_session_file(path: str | os.PathLike[str], doc: dict[str, Any], keys: KeyRing | None = None) -> Path:
    """Save an exported session (whatever the file's suffix, ``.pkl`` included: our format),
    encrypted when ``keys`` are given."""
    return write_atomic(path, encode_session_doc(doc, keys))


def read_session_file(path: str | os.PathLike[str], keys: KeyRing | None = None) -> dict[str, Any]:
    """Read a file written by :func:`write_session_file`; typed errors for anything else."""
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise SessionFileNotFound(f"no session file at {p}; check the path (save() writes it)") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read session file {p}: {exc}") from exc
    return decode_session_doc(data, keys, source=f"session file {p}")
