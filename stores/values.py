"""Which plain values can be stored: the one rule shared by the codec and the state schema.

The rule: a stored value reads back equal (``==``) to what was written. Decisions:

- NaN is refused: it never equals itself, so a reloaded value (or a compare-and-set on it)
  would not match. ``inf`` reads back equal and is allowed here; fields that are times or
  durations (timestamps, ttl) refuse it in :mod:`repertory.state.schema`.
- tuples and sets are refused, not converted: both read back as lists (``(1,) != [1]``).
- dict keys must be ``str``: tuple keys cannot be read back at all (msgpack makes them lists,
  which are unhashable); int and bytes keys would, but exports and HTTP are JSON, whose keys
  are text. One rule for all keys.
- ints must fit msgpack's 64 bits (-2**63 .. 2**64-1); str must be valid UTF-8 (no lone
  surrogates).
- containers nest at most ``MAX_DEPTH`` (64) deep in a caller's value; whole records (a
  snapshot holding meta holding user_data) get ``RECORD_MAX_DEPTH``. Walks stay far below
  Python's recursion limit, and msgpack's own limits (511 packing, 1024 unpacking).
- subclasses of str, bytes, int, float, list and dict (``IntEnum``, ``numpy.float64``,
  ``OrderedDict``), and ``bytearray``, are allowed: they read back as the base type, equal.
"""

from __future__ import annotations

from typing import Any, NoReturn

from repertory.errors import InvalidInput, RepertoryError

__all__ = ["MAX_DEPTH", "RECORD_MAX_DEPTH", "Violation", "check_plain", "check_value", "raise_as"]

MAX_DEPTH = 64
RECORD_MAX_DEPTH = MAX_DEPTH + 8  # envelopes around a caller's value: snapshot > meta > user_data
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # msgpack's range (also written out in _walk, for speed)
RESTORE = "restore it from a checkpoint or a backup"
Error = type[RepertoryError]


class Violation(Exception):
    """Internal: what is wrong (``what``, after ``where``) and how a caller fixes it (``fix``).

    Never escapes the package: :func:`raise_as` turns it into the error the caller asked for.
    """

    def __init__(self, what: str, fix: str, where: str = "") -> None:
        super().__init__(what)
        self.what, self.fix, self.where = what, fix, where


def raise_as(bad: Violation, error: Error, hint: str | None = None) -> NoReturn:
    """Raise ``error``: with the fix for InvalidInput, else with ``hint`` (default: restore)."""
    fix = bad.fix if issubclass(error, InvalidInput) else (hint or RESTORE)
    raise error(f"{bad.where} {bad.what}; {fix}".lstrip()) from None


def _text(s: str) -> None:
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise Violation("holds text that is not valid Unicode (a lone surrogate)",
                            "repair the text, e.g. s.encode('utf-8', 'replace').decode()") from None


def _too_deep(limit: int) -> Violation:
    return Violation(f"nests more than {limit} containers deep",
                     "flatten it, or store deep data as a JSON string or bytes")


def _key(k: Any) -> None:
    if not isinstance(k, str):
        raise Violation(f"has the {type(k).__name__} key {k!r:.40}",
                        "stored dict keys must be str (tuple keys cannot be read back); "
                        "use str(key), or a list of [key, value] pairs")
    try:
        _text(k)
    except Violation as bad:
        bad.where = f"[{k!r}]"
        raise


def _flat(v: list) -> bool:
    """A list of plain ascii str, in-range int, finite float, bool, None or bytes (pairs, tags)."""
    for x in v:
        t = type(x)
        if t is str:
            if x.isascii():
                continue
        elif t is int:
            if -9223372036854775808 <= x <= 18446744073709551615:
                continue
        elif t is float:
            if x == x:
                continue
        elif t is bool or x is None or t is bytes:
            continue
        return False
    return True


def _walk(v: Any, level: int, limit: int) -> None:
    # On the codec's hot path: exact scalars are checked inline, without a call each.
    if isinstance(v, dict):
        if level >= limit:
            raise _too_deep(limit)
        for k, x in v.items():
            if type(k) is not str or not k.isascii():
                _key(k)
            t = type(x)
            if t is str:
                if x.isascii():
                    continue
            elif t is float:
                if x == x:
                    continue
            elif t is int:
                if -9223372036854775808 <= x <= 18446744073709551615:
                    continue
            elif t is bool or x is None or t is bytes:
                continue
            elif t is list and level + 1 < limit and _flat(x):
                continue
            try:
                _walk(x, level + 1, limit)
            except Violation as bad:
                bad.where = f"[{k!r}]" + bad.where
                raise
    elif isinstance(v, list):
        if level >= limit:
            raise _too_deep(limit)
        for x in v:  # no enumerate: the index is only needed on failure
            t = type(x)
            if t is str:
                if x.isascii():
                    continue
            elif t is float:
                if x == x:
                    continue
            elif t is int:
                if -9223372036854775808 <= x <= 18446744073709551615:
                    continue
            elif t is bool or x is None or t is bytes:
                continue
            elif t is list and level + 1 < limit and _flat(x):
                continue
            try:
                _walk(x, level + 1, limit)
            except Violation as bad:
                bad.where = f"[{next(i for i, y in enumerate(v) if y is x)}]" + bad.where
                raise
    elif isinstance(v, str):
        _text(v)
    elif isinstance(v, float):
        if v != v:
            raise Violation("is NaN, which never equals itself (a reloaded value would not match)",
                            "store None for a missing number")
    elif isinstance(v, int):  # bool included: it is an int, and reads back as itself
        if not _INT_MIN <= v <= _INT_MAX:
            raise Violation("is an int outside 64 bits", "store it as a str")
    elif isinstance(v, (tuple, set, frozenset)):
        raise Violation(f"is a {type(v).__name__}, which would read back as a list", "pass a list")
    elif not (v is None or isinstance(v, (bytes, bytearray))):
        raise Violation(f"has type {type(v).__name__}",
                        "session state holds plain data (dict, list, str, int, float, bool, None, "
                        "bytes); convert it first")


def check_plain(value: Any, where: str, max_depth: int = MAX_DEPTH) -> None:
    """Internal form of :func:`check_value`: raises :class:`Violation`."""
    try:
        _walk(value, 0, max_depth)
    except Violation as bad:
        bad.where = where + bad.where
        raise


def check_value(value: Any, where: str, *, error: Error = InvalidInput, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``error`` (naming ``where`` and the path inside) unless ``value`` reads back equal."""
    try:
        _walk(value, 0, max_depth)  # not via check_plain: one call less on the codec's hot path
    except Violation as bad:
        bad.where = where + bad.where
        raise_as(bad, error)
