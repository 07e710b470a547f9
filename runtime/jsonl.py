"""One JSONL reader, for batch input and session imports: streaming, one result per line.

Each non-blank line gives ``(line number, value)``, or ``(line number, JsonlLineError)`` when
the line cannot be read, and reading goes on: the caller decides whether one bad line stops
everything (an import) or only its job (a batch). Lines are counted from 1, blank ones
included. Memory is bounded by ``max_line_bytes``: a longer line is skipped in chunks, never
held whole. JSON is strict: UTF-8 only (a BOM on line 1 is dropped), no ``NaN``/``Infinity``,
no number that overflows a float, nesting at most ``max_depth`` deep (checked before parsing,
so a line of ``[[[[...`` never reaches Python's recursion limit).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import InvalidInput

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MAX_LINE_BYTES", "JsonlLineError", "read_jsonl"]

DEFAULT_MAX_LINE_BYTES = 64 * 2**20  # an exported session with its checkpoints is one line
DEFAULT_MAX_DEPTH = 64  # as repertory.stores.values.MAX_DEPTH: what the store accepts anyway
_CHUNK = 2**20  # how much of an over-long line is read at a time while skipping it
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')  # the two alternatives are disjoint: linear time
_BRACKET = re.compile(r"[\[\]{}]")
_BLANK = object()
Source = str | os.PathLike[str] | IO[bytes] | IO[str] | Iterable[str | bytes]


class JsonlLineError(InvalidInput):
    """One line of a JSONL input that could not be read; the lines after it still are.

    ``line``: its number, from 1. ``kind``: ``"encoding"``, ``"json"``, ``"depth"``,
    ``"too_long"`` or ``"torn"`` (the last line, without its newline).
    """

    def __init__(self, message: str, line: int, kind: str) -> None:
        super().__init__(message)
        self.line, self.kind = line, kind

    def __reduce__(self):  # keep line and kind when Ray ships the error
        return (self.__class__, (self.args[0], self.line, self.kind))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON; write null or a number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is too large for a float")
    return value


def _too_deep(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit`` (cheap when they cannot)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for b in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if b in "[{" else -1
        if depth > limit:
            return True
    return False


def _parse(raw: str | bytes, n: int, where: str, max_depth: int) -> Any:
    """The line's value, _BLANK, or the JsonlLineError saying what is wrong and what to do."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return JsonlLineError(f"{where} line {n} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
                                  f"{exc.start}); save the file as UTF-8, or fix or remove that line", n, "encoding")
    else:
        text = raw
    if n == 1:
        text = text.removeprefix("\ufeff")
    if not text.strip():
        return _BLANK
    if _too_deep(text, max_depth):
        return JsonlLineError(f"{where} line {n} nests more than {max_depth} levels deep; flatten it, "
                              "or fix or remove that line", n, "depth")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:  # RecursionError: not expected after _too_deep
        # JSONDecodeError's own text says "line 1": the line within the line, which misleads here.
        why = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        return JsonlLineError(f"{where} line {n} is not JSON ({why}); fix or remove that line", n, "json")


def _file_lines(f: IO[Any], limit: int) -> Iterator[tuple[str | bytes | None, bool]]:
    """(line without its newline, or None if over ``limit``; whether it ended with a newline)."""
    while True:
        raw = f.readline(limit + 1)  # +1: a line of exactly ``limit`` plus its newline fits
        if not raw:
            return
        nl = b"\n" if isinstance(raw, bytes) else "\n"
        if raw.endswith(nl):
            yield raw[:-1], True
        elif len(raw) <= limit:
            yield raw, False  # end of file without a newline
        else:
            while raw and not raw.endswith(nl):  # skip the rest of the line, a chunk at a time
                raw = f.readline(_CHUNK)
            yield None, bool(raw)


def _item_lines(items: Iterable[str | bytes], limit: int) -> Iterator[tuple[str | bytes | None, bool]]:
    for raw in items:
        if not isinstance(raw, (str, bytes)):
            raise InvalidInput(f"a JSONL source yields lines as str or bytes, got {type(raw).__name__}")
        raw = raw.removesuffix(b"\n" if isinstance(raw, bytes) else "\n")
        yield (None if len(raw) > limit else raw), True


def _read(lines: Iterator[tuple[str | bytes | None, bool]], where: str, max_line_bytes: int, max_depth: int,
          require_newline: bool, close: IO[Any] | None) -> Iterator[tuple[int, Any]]:
    try:
        for n, (raw, complete) in enumerate(lines, 1):
            if raw is None:
                yield n, JsonlLineError(f"{where} line {n} is longer than {max_line_bytes} bytes; split it, or "
                                        "raise max_line_bytes", n, "too_long")
                continue
            value = _parse(raw, n, where, max_depth)
            if value is _BLANK:
                continue
            if not complete and (require_newline or isinstance(value, JsonlLineError)):
                unreadable = " and cannot be read" if isinstance(value, JsonlLineError) else ""
                value = JsonlLineError(f"{where} line {n} is the last, has no newline{unreadable}: the file was "
                                       "probably cut off while being written; write it again, or remove that line",
                                       n, "torn")
            yield n, value
    finally:
        if close is not None:
            close.close()


def read_jsonl(source: Source, *, name: str | None = None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
               max_depth: int = DEFAULT_MAX_DEPTH, require_newline: bool = False) -> Iterator[tuple[int, Any]]:
    """``(line number, value or JsonlLineError)`` for each non-blank line of ``source``.

    ``source``: a path (opened here: InvalidInput at once if it cannot be), an open file (binary
    or text; for text, ``max_line_bytes`` counts characters), or an iterable of lines. ``name`` labels messages (default: the path).
    ``require_newline``: a last line without its newline is an error even if it parses
    (files repertory writes always end lines; people's files often do not). An open file is
    not closed; a path's file is closed when the iterator ends or is closed.
    """
    if isinstance(max_line_bytes, bool) or not isinstance(max_line_bytes, int) or max_line_bytes < 1:
        raise InvalidInput(f"max_line_bytes must be a positive int, got {max_line_bytes!r}")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        try:
            f: IO[bytes] = path.open("rb")
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}; check the path") from exc
        return _read(_file_lines(f, max_line_bytes), name or str(path), max_line_bytes, max_depth,
                     require_newline, f)
    if hasattr(source, "readline"):
        label = name or str(getattr(source, "name", "input"))
        return _read(_file_lines(source, max_line_bytes), label, max_line_bytes, max_depth,  # type: ignore[arg-type]
                     require_newline, None)
    if isinstance(source, (bytes, bytearray)) or not isinstance(source, Iterable):
        raise InvalidInput(f"read_jsonl takes a path, an open file or an iterable of lines, got {type(source).__name__}")
    return _read(_item_lines(source, max_line_bytes), name or "input", max_line_bytes, max_depth, False, None)
