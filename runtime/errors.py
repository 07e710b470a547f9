"""The errors repertory raises. Every one is a :class:`RepertoryError`.

::

    RepertoryError
     ├── InvalidInput (also ValueError)
     │    ├── InvalidSessionId
     │    ├── EmptyMessage
     │    ├── MessageTooLarge
     │    └── MemoryConfigError
     ├── SessionNotFound (also KeyError)
     ├── SessionFileNotFound (also FileNotFoundError)
     ├── ConcurrentUpdate
     ├── SessionBusy
     ├── SessionElsewhere
     ├── TurnInterrupted
     ├── StreamNotResumable
     ├── StoreError
     │    ├── StoreUnavailable
     │    │    └── WriteNotReplicated
     │    ├── CorruptState
     │    │    └── UnsupportedFormat
     │    └── EncryptionError
     │         ├── EncryptionKeyMissing
     │         └── DecryptionFailed
     ├── ModelError
     ├── AgentError
     │    └── AgentReplicaLost
     ├── WorkflowError
     ├── RuntimeNotReady
     ├── AccessDenied (also PermissionError)
     │    └── InvalidToken
     ├── RateLimited
     └── ServerError
          └── ServerUnavailable

Each message says what happened and what to do about it. Over HTTP an error travels as
``{"error": {"code": <class name>, "message": ...}}`` and a remote session raises the same
class again (:func:`error_code` / :func:`error_from_code`).
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AgentError",
    "AgentReplicaLost",
    "ConcurrentUpdate",
    "CorruptState",
    "DecryptionFailed",
    "EmptyMessage",
    "EncryptionError",
    "EncryptionKeyMissing",
    "InvalidInput",
    "InvalidSessionId",
    "InvalidToken",
    "MemoryConfigError",
    "MessageTooLarge",
    "ModelError",
    "PromptUnknown",
    "RateLimited",
    "RepertoryError",
    "RuntimeNotReady",
    "SessionFileNotFound",
    "ServerError",
    "ServerUnavailable",
    "SessionBusy",
    "SessionElsewhere",
    "SessionNotFound",
    "StoreError",
    "StreamNotResumable",
    "StoreUnavailable",
    "TurnInterrupted",
    "UnsupportedFormat",
    "WorkflowError",
    "WriteNotReplicated",
    "error_class",
    "error_code",
    "error_from_code",
]


class RepertoryError(Exception):
    """Root of every error raised by repertory."""

    def __reduce__(self):  # keep the type and message when Ray ships the error between processes
        return (self.__class__, self.args)


class InvalidInput(RepertoryError, ValueError):
    """An argument was rejected before anything was written."""


class InvalidSessionId(InvalidInput):
    """A session id is empty, too long or holds characters outside the allowed set."""


class EmptyMessage(InvalidInput):
    """A chat message was empty or only whitespace."""


class MessageTooLarge(InvalidInput):
    """A message is larger than the runtime's ``max_message_bytes``."""


class MemoryConfigError(InvalidInput):
    """A :class:`~repertory.Memory` setting cannot work (provider, path, threshold, scorer)."""


class SessionNotFound(RepertoryError, KeyError):
    """No session with this id exists in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SessionFileNotFound(RepertoryError, FileNotFoundError):
    """A session file to load does not exist."""


class ConcurrentUpdate(RepertoryError):
    """Another writer changed the session since it was read (compare-and-set lost)."""


class SessionBusy(RepertoryError):
    """The session was processing another message and this one asked ``on_busy="reject"``;
    nothing was written. Send it again later, or with another ``on_busy`` policy."""


class SessionElsewhere(RepertoryError):
    """The session is active on another host (``holder``, its Ray actor name), which holds its
    activation lease for ``wait`` seconds more: send the call there. The Ray runtime follows
    this redirect itself; a caller only sees it if the holder cannot be reached."""

    def __init__(self, message: str, holder: str = "", wait: float = 0.0) -> None:
        super().__init__(message)
        self.holder = holder
        self.wait = wait

    def __reduce__(self):
        return (self.__class__, (self.args[0], self.holder, self.wait))


class TurnInterrupted(RepertoryError):
    """A later message to the session interrupted (or rolled back) this turn before it was
    acknowledged. Its resend, with the same turn id, answers this again: it never runs."""


class StreamNotResumable(RepertoryError):
    """A stream cannot continue from the event id given: its turn is neither running nor
    stored (it failed, or its host stopped before acknowledging it). Resend the message
    with the same turn id and no event id to run it."""


class StoreError(RepertoryError):
    """The state store failed."""


class StoreUnavailable(StoreError):
    """The state store cannot be reached; nothing was acknowledged."""


class WriteNotReplicated(StoreUnavailable):
    """A store that promises replicated writes (Redis ``?wait=N``) could not get enough replicas
    to confirm one in time: the write was not acknowledged (it may survive on the master alone)."""


class CorruptState(StoreError):
    """Stored bytes are not valid repertory state (truncated, altered, or not ours)."""


class UnsupportedFormat(CorruptState):
    """Stored state has a format version this release cannot read."""


class EncryptionError(StoreError):
    """Encryption at rest cannot work as configured (package missing, plaintext refused)."""


class EncryptionKeyMissing(EncryptionError):
    """Stored data is encrypted and no encryption key is configured."""


class DecryptionFailed(EncryptionError):
    """A record does not decrypt: wrong or unknown key, altered, or copied from another session."""


class ModelError(RepertoryError):
    """The model call failed after its retries; the turn was not recorded."""


class AgentError(RepertoryError):
    """An agent definition or a tool is unusable."""


class AgentReplicaLost(AgentError):
    """The agent replica running a turn died after the turn had started; resend the turn
    (same turn id): its journaled steps are not redone."""


class PromptUnknown(AgentError):
    """An agent replica was sent the part of a prompt it lacked, but no longer holds the rest
    (it restarted, or dropped it for room); the host sends the whole prompt."""


class WorkflowError(RepertoryError):
    """A workflow is malformed (unknown dependency, cycle) or some of its tasks failed."""

    def __init__(self, message: str, results: dict | None = None, errors: dict | None = None) -> None:
        super().__init__(message)
        self.results = results or {}
        self.errors = errors or {}

    def __reduce__(self):
        return (self.__class__, (self.args[0], self.results, self.errors))


class RuntimeNotReady(RepertoryError):
    """The runtime was shut down or could not start."""


class AccessDenied(RepertoryError, PermissionError):
    """The credentials given do not allow this call (another session, another user, no admin key)."""


class InvalidToken(AccessDenied):
    """A session token is missing, malformed, expired, or not signed by an accepted key."""


class RateLimited(RepertoryError):
    """Too many requests with one token; wait ``retry_after`` seconds and send again."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self):
        return (self.__class__, (self.args[0], self.retry_after))


class ServerError(RepertoryError):
    """A repertory server failed, or answered something that is not repertory's protocol."""


class ServerUnavailable(ServerError):
    """A repertory server cannot be reached (refused, timed out, or not ready)."""


def _codes() -> dict[str, type[RepertoryError]]:
    out: dict[str, type[RepertoryError]] = {}
    stack: list[type[RepertoryError]] = [RepertoryError]
    while stack:
        cls = stack.pop()
        out[cls.__name__] = cls
        stack.extend(cls.__subclasses__())
    return out


def error_code(exc: BaseException) -> str:
    """The wire code of an error: its class name if it is one of repertory's, else ``ServerError``."""
    cls = type(exc)
    for klass in cls.__mro__:
        if klass.__module__ == __name__ and issubclass(klass, RepertoryError):
            return klass.__name__
    return "ServerError"


def error_class(code: str) -> type[RepertoryError] | None:
    """The class of this module a wire code names; None for a code it does not know."""
    cls = _codes().get(code)
    return cls if cls is not None and cls.__module__ == __name__ else None


def error_from_code(code: str, message: str, **details: object) -> RepertoryError:
    """The error a wire code names, with ``message``; an unknown code gives :class:`ServerError`."""
    cls = error_class(code)
    if cls is None:
        return ServerError(f"{message} (server error code {code!r})")
    if cls is RateLimited:
        retry = details.get("retry_after")
        return RateLimited(message, float(retry) if isinstance(retry, (int, float)) else None)
    if cls is WorkflowError:
        return WorkflowError(message)
    return cls(message)
