"""How calls cross the host boundary: msgpack bytes, on Ray and in the local runtime alike.

Ray moves bytes far more cheaply than Python objects (measured per hop: ~290 µs p50 more
for a dataclass than for its msgpack bytes), and sending the local runtime's calls through
the same encoding gives it Ray's semantics: a handle never holds the host's live objects,
and a value that cannot cross fails the same way on both runtimes. The boundary's own types
travel as msgpack extension types; anything else that is not plain data is refused.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack

from repertory.agents.agent import Step, TurnOutput
from repertory.errors import InvalidInput
from repertory.host.api import TurnReply, TurnRequest
from repertory.ids import SessionRef

__all__ = ["decode", "encode", "serve"]

# Extension codes are part of the wire format between processes of one release.
_SESSION_REF, _TURN_REQUEST, _TURN_REPLY, _TURN_OUTPUT, _STEP = 1, 2, 3, 4, 5
_CODES = {SessionRef: _SESSION_REF, TurnRequest: _TURN_REQUEST, TurnReply: _TURN_REPLY, TurnOutput: _TURN_OUTPUT,
          Step: _STEP}
_TYPES = {code: cls for cls, code in _CODES.items()}
# Each type's fields in order, read in one call (dataclasses.fields per object cost ~10 µs a turn).
_FIELDS = {cls: operator.attrgetter(*names) if len(names) > 1 else (lambda o, n=names[0]: (getattr(o, n),))
           for cls in _CODES for names in [[f.name for f in dataclasses.fields(cls)]]}


def _default(obj: Any) -> Any:
    code = _CODES.get(type(obj))
    if code is not None:
        return msgpack.ExtType(code, _pack(list(_FIELDS[type(obj)](obj))))
    # strict_types sends subclasses here: plain data in another class is still plain data.
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, (list, tuple)):
        return list(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, bytes):
        return bytes(obj)
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    raise InvalidInput(f"a {type(obj).__name__} cannot be sent to a session: use plain data "
                       "(str, int, float, bool, None, bytes, and lists and dicts of them)")


def _ext(code: int, data: bytes) -> Any:
    cls = _TYPES.get(code)
    if cls is None:
        return msgpack.ExtType(code, data)
    return cls(*_unpack(data))


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, strict_types=True, default=_default)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext)


def encode(obj: Any) -> bytes:
    """``obj`` as wire bytes; :class:`InvalidInput` for what cannot cross."""
    try:
        return _pack(obj)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"this value cannot be sent to a session: {exc}") from None


def decode(data: bytes) -> Any:
    """The value :func:`encode` produced; :class:`InvalidInput` if it does not read back
    (a tuple as a dict key, say: it arrives as an unhashable list)."""
    try:
        return _unpack(data)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"this value does not read back the same after crossing to a session: {exc}; "
                           "use str dict keys and plain data") from None


async def serve(op: Callable[..., Awaitable[Any]], target: Any, data: bytes) -> bytes:
    """The receiving side of a call: decode the arguments, await ``op(target, *args)``, encode
    the result. Every actor method and the local runtime answer calls through this."""
    return encode(await op(target, *decode(data)))
