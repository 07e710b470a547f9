"""How turn envelopes cross Ray: packed to msgpack bytes, which Ray moves far more cheaply
than dataclasses (measured per hop: ~290 µs p50 for a dataclass over a str; bytes cost what a
str costs). A value msgpack cannot carry (a datetime in a context dict, say) travels as the
object itself, pickled by Ray as usual.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import msgpack

__all__ = ["pack", "unpack"]

T = TypeVar("T")


def pack(obj: Any) -> bytes | Any:
    """``obj`` (a slots dataclass) as msgpack bytes, or ``obj`` if a field cannot be packed."""
    try:
        return msgpack.packb([getattr(obj, f.name) for f in dataclasses.fields(obj)], use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return obj


def unpack(cls: type[T], data: bytes | T) -> T:
    """The ``cls`` instance that :func:`pack` produced (or was given)."""
    if isinstance(data, (bytes, bytearray)):
        return cls(*msgpack.unpackb(data, raw=False, strict_map_key=False))
    return data
