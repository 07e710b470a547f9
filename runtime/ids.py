"""Session ids and the session reference: validated in one place."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Literal

from repertory.errors import InvalidInput, InvalidSessionId

__all__ = ["MAX_ID_LENGTH", "RESERVED_KEY_PREFIX", "Placement", "SessionRef", "new_session_id", "storage_key",
           "validate_session_id", "validate_user_id"]

MAX_ID_LENGTH = 128
# Store keys that start with this are not sessions (shared states, interop's LangGraph threads and
# Agents SDK sessions): no id can start with it, and listing, export and cleanup skip them.
RESERVED_KEY_PREFIX = "~"
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


def storage_key(session_id: str, user_id: str | None) -> str:
    """The store key: sessions of different users never collide ('/' is not allowed in ids)."""
    return session_id if user_id is None else f"{user_id}/{session_id}"


Placement = Literal["pooled", "dedicated"]
_PLACEMENTS = ("pooled", "dedicated")


@dataclass(slots=True, frozen=True)
class SessionRef:
    """Which session, whose, and where it runs: the address of a virtual session actor.

    ``placement`` is ``"pooled"`` (one of the runtime's host actors, by a hash of the key) or
    ``"dedicated"`` (a host actor of its own). Validated once, here; hashable.
    """

    session_id: str
    user_id: str | None = None
    placement: Placement = "pooled"

    def __post_init__(self) -> None:
        validate_session_id(self.session_id)
        validate_user_id(self.user_id)
        if self.placement not in _PLACEMENTS:
            raise InvalidInput(f"placement must be 'pooled' or 'dedicated', not {self.placement!r}")

    @property
    def key(self) -> str:
        """The storage key (``user_id/session_id``, or ``session_id``)."""
        return storage_key(self.session_id, self.user_id)

    @classmethod
    def from_key(cls, key: str, placement: Placement = "pooled") -> SessionRef:
        """The reference of a storage key, as listings return them."""
        user_id, _, session_id = key.rpartition("/")
        return cls(session_id, user_id or None, placement)

    def __str__(self) -> str:
        return self.key
