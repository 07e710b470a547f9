"""Session ids: validated in one place."""

from __future__ import annotations

import re
import uuid

from repertory.errors import InvalidSessionId

__all__ = ["MAX_ID_LENGTH", "new_session_id", "validate_session_id", "validate_user_id"]

MAX_ID_LENGTH = 128
# Letters, digits and a few separators: safe in Redis keys, file names, URLs and log lines.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@\-]*$")


def new_session_id() -> str:
    """A fresh random session id (uuid4)."""
    return str(uuid.uuid4())


def _check(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidSessionId(f"{what} must be a str, got {type(value).__name__}")
    if not value or len(value) > MAX_ID_LENGTH:
        raise InvalidSessionId(
            f"{what} {value!r} must be 1 to {MAX_ID_LENGTH} characters long; "
            "use a shorter id, or leave session_id=None for a uuid4"
        )
    if not _ID_RE.fullmatch(value):
        raise InvalidSessionId(
            f"{what} {value!r} may only hold letters, digits and . _ : @ - "
            "and must start with a letter or digit"
        )
    return value


def validate_session_id(session_id: object) -> str:
    """Return ``session_id`` if valid, else raise :class:`InvalidSessionId`."""
    return _check(session_id, "session_id")


def validate_user_id(user_id: object) -> str | None:
    """Return ``user_id`` (or None) if valid, else raise :class:`InvalidSessionId`."""
    return None if user_id is None else _check(user_id, "user_id")
