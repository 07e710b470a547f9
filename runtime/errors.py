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
     ├── StoreError
     │    ├── StoreUnavailable
     │    ├── CorruptState
     │    │    └── UnsupportedFormat
     │    └── EncryptionError
     │         ├── EncryptionKeyMissing
     │         └── DecryptionFailed
     ├── ModelError
     ├── AgentError
     ├── WorkflowError
     └── RuntimeNotReady

Each message says what happened and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ConcurrentUpdate",
    "CorruptState",
    "DecryptionFailed",
    "EmptyMessage",
    "EncryptionError",
    "EncryptionKeyMissing",
    "InvalidInput",
    "InvalidSessionId",
    "MemoryConfigError",
    "MessageTooLarge",
    "ModelError",
    "RepertoryError",
    "RuntimeNotReady",
    "SessionFileNotFound",
    "SessionNotFound",
    "StoreError",
    "StoreUnavailable",
    "UnsupportedFormat",
    "WorkflowError",
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


class StoreError(RepertoryError):
    """The state store failed."""


class StoreUnavailable(StoreError):
    """The state store cannot be reached; nothing was acknowledged."""


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
