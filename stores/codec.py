"""The state codec: msgpack behind a small header, never pickle.

Layout of an encoded record::

    b"RPS" | format version (1 byte) | crc32 of the body (4 bytes, big endian) | msgpack body

Decoding accepts only the msgpack types (no extension types), checks the magic, the version
and the checksum, and names what it was reading in every error. Older format versions go
through registered migrations; newer ones are refused with :class:`UnsupportedFormat`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any, Protocol

import msgpack

from repertory.errors import CorruptState, UnsupportedFormat

__all__ = ["FORMAT_VERSION", "MAGIC", "Codec", "MsgpackCodec", "pack_array", "register_migration",
           "unpack_array", "verify"]

MAGIC = b"RPS"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">3sBI")
_PICKLE_PREFIXES = (b"\x80", b"(", b"c__builtin__", b"]q", b"}q")

# version -> function turning a decoded body of that version into one of version + 1
_MIGRATIONS: dict[int, Callable[[Any], Any]] = {}


def register_migration(from_version: int, fn: Callable[[Any], Any]) -> None:
    """Register how to lift a decoded body of ``from_version`` to ``from_version + 1``."""
    _MIGRATIONS[from_version] = fn


class Codec(Protocol):
    """Turns plain data (dicts, lists, str, bytes, numbers) into bytes and back."""

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes, *, source: str = "state") -> Any: ...


def _default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(
        f"cannot store a {type(obj).__name__}: session state holds plain data "
        "(dict, list, str, int, float, bool, None, bytes); convert it first"
    )


class MsgpackCodec:
    """The default codec; see the module docstring for the layout."""

    def __init__(self, version: int = FORMAT_VERSION) -> None:
        self.version = version

    def encode(self, value: Any) -> bytes:
        try:
            body = msgpack.packb(value, use_bin_type=True, default=_default)
        except (TypeError, ValueError, OverflowError) as exc:
            from repertory.errors import InvalidInput

            raise InvalidInput(str(exc)) from exc
        return _HEADER.pack(MAGIC, self.version, zlib.crc32(body)) + body

    def decode(self, data: bytes, *, source: str = "state") -> Any:
        if not data:
            raise CorruptState(f"{source} is empty; restore it from a checkpoint or a backup")
        if len(data) < _HEADER.size or data[:3] != MAGIC:
            hint = ""
            if data.startswith(_PICKLE_PREFIXES):
                hint = " It looks like a pickle file, which repertory never loads."
            raise CorruptState(
                f"{source} is not repertory state (bad header).{hint} "
                "Point at a file written by repertory's save(), or re-export it."
            )
        _, version, crc = _HEADER.unpack_from(data)
        body = memoryview(data)[_HEADER.size :]
        if version > self.version:
            raise UnsupportedFormat(
                f"{source} has format version {version}; this release reads up to "
                f"{self.version}. Upgrade repertory to read it."
            )
        if zlib.crc32(body) != crc:
            raise CorruptState(
                f"{source} failed its checksum (truncated or altered); nothing was changed. "
                "Restore it from a checkpoint or a backup."
            )
        try:
            value = msgpack.unpackb(body, raw=False, strict_map_key=False, ext_hook=_no_ext)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise CorruptState(f"{source} could not be decoded: {exc}") from exc
        while version < self.version:
            migrate = _MIGRATIONS.get(version)
            if migrate is None:
                raise UnsupportedFormat(f"{source} has format version {version} and no migration")
            value = migrate(value)
            version += 1
        return value


def verify(data: bytes, *, source: str = "state", codec: MsgpackCodec | None = None) -> bytes:
    """Check one encoded value (header, version, checksum); returns it in the current version.

    Done once when a session is activated, so that later reads can skip per-value checks.
    """
    codec = codec or _default_codec
    if len(data) >= _HEADER.size and data[:3] == MAGIC:
        _, version, crc = _HEADER.unpack_from(data)
        if version == codec.version and zlib.crc32(memoryview(data)[_HEADER.size:]) == crc:
            return data
    return codec.encode(codec.decode(data, source=source))  # raises the precise error, or migrates


def pack_array(blobs: list[bytes]) -> bytes:
    """One msgpack array of verified encoded values, without decoding them (headers dropped)."""
    n = len(blobs)
    head = bytes((0x90 | n,)) if n < 16 else (b"\xdc" + n.to_bytes(2, "big") if n < 65536 else b"\xdd" + n.to_bytes(4, "big"))
    size = _HEADER.size
    return head + b"".join([b[size:] for b in blobs])


def unpack_array(data: bytes) -> list[Any]:
    """Decode what :func:`pack_array` built, in one pass, allowing only plain msgpack types."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_no_ext)


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed in repertory state")


_default_codec = MsgpackCodec()
