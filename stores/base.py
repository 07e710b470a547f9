"""The store interface: a few async verbs over typed records.

A session is stored as one *meta* blob (everything but the history, codec-encoded) plus its
messages, each a codec-encoded blob in order. A turn appends messages; edits replace them.
Every write is a compare-and-set on the session's revision, so two writers never silently
overwrite each other: the loser gets :class:`~repertory.errors.ConcurrentUpdate`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["DELETE_MEMORY", "CheckpointInfo", "CheckpointRecord", "SessionInfo", "SessionRecord", "StateWrite",
           "StorageUsage", "Store"]

DELETE_MEMORY = 86400.0  # seconds a delete's op id is remembered (a resend comes within a restart)


@dataclass(slots=True)
class SessionRecord:
    """A session as read from a store."""

    key: str
    revision: int
    meta: bytes
    messages: list[bytes]
    updated_at: float
    expires_at: float | None = None


@dataclass(slots=True)
class StateWrite:
    """One compare-and-set write of a session.

    ``expected_revision`` 0 means "the session must not exist yet". With ``replace`` the
    stored messages are replaced by ``messages``; otherwise ``messages`` are appended after
    the ``base_count`` messages the writer knows of. ``checkpoint`` is stored in the same
    atomic write (only if the compare-and-set succeeds), so an operation that checkpoints and
    records its operation id in the meta never lands half-way.
    """

    key: str
    expected_revision: int
    meta: bytes
    messages: list[bytes] = field(default_factory=list)
    base_count: int = 0
    replace: bool = False
    updated_at: float = 0.0
    expires_at: float | None = None
    # The revision a new session starts at (with expected_revision 0). A random start keeps a
    # compare-and-set token from repeating across incarnations: a writer that still holds
    # revision 5 of a deleted session never matches revision 5 of its successor.
    first_revision: int = 1
    # Who writes: a write is refused while another owner holds the session's lease (see
    # Store.acquire_lease). None never holds one, so it waits for every holder.
    owner: str | None = None
    checkpoint: CheckpointRecord | None = None


@dataclass(slots=True, frozen=True)
class SessionInfo:
    """A line of a session listing."""

    key: str
    revision: int
    n_messages: int
    updated_at: float
    expires_at: float | None


@dataclass(slots=True, frozen=True)
class CheckpointInfo:
    """A checkpoint or version of a session, without its data.

    ``kind`` is ``"checkpoint"`` or ``"version"``; ``seq`` numbers them per session and kind
    (1, 2, ...); ``turn`` is the session's turn count when it was taken.
    """

    key: str
    cp_id: str
    kind: str
    seq: int
    created_at: float
    turn: int
    label: str = ""


@dataclass(slots=True, frozen=True)
class CheckpointRecord:
    """A checkpoint with its data: the codec-encoded state (meta and messages) it captured."""

    info: CheckpointInfo
    data: bytes


@dataclass(slots=True, frozen=True)
class StorageUsage:
    """Bytes a session takes in a store, as stored (encrypted, if it is): its history, its meta
    (user data, metadata, counters) and its checkpoints and versions."""

    messages: int = 0
    meta: int = 0
    checkpoints: int = 0

    @property
    def total(self) -> int:
        return self.messages + self.meta + self.checkpoints


class Store(abc.ABC):
    """What a state backend implements. All verbs are safe to call concurrently."""

    url: str = ""

    @abc.abstractmethod
    async def load(self, key: str) -> SessionRecord | None:
        """The stored session, or None if there is none (or it expired)."""

    @abc.abstractmethod
    async def commit(self, write: StateWrite) -> int:
        """Apply ``write`` atomically; return the new revision or raise ConcurrentUpdate."""

    @abc.abstractmethod
    async def delete(self, key: str, op_id: str | None = None) -> bool:
        """Remove a session and its checkpoints; True if the session existed.

        With ``op_id``, the delete is remembered (a tombstone, for :data:`DELETE_MEMORY` seconds):
        the same id again answers True and deletes nothing, so a delete resent after its host
        died never removes a session created since.
        """

    @abc.abstractmethod
    async def list_sessions(
        self, *, prefix: str = "", updated_before: float | None = None, limit: int | None = None
    ) -> list[SessionInfo]:
        """Sessions whose key starts with ``prefix``, oldest update first."""

    @abc.abstractmethod
    async def touch(self, key: str, expires_at: float | None) -> bool:
        """Set the session's expiry (None: never) without writing it; False if it is gone."""

    @abc.abstractmethod
    async def put_checkpoint(self, record: CheckpointRecord) -> None:
        """Store a checkpoint (same ``cp_id`` replaces). Expires with its session."""

    @abc.abstractmethod
    async def get_checkpoint(self, key: str, cp_id: str) -> CheckpointRecord | None:
        """One checkpoint with its data, or None."""

    @abc.abstractmethod
    async def list_checkpoints(self, key: str, kind: str | None = None) -> list[CheckpointInfo]:
        """The session's checkpoints (of ``kind``, or all), oldest first (by created_at, seq)."""

    @abc.abstractmethod
    async def delete_checkpoints(self, key: str, cp_ids: list[str]) -> int:
        """Remove these checkpoints; returns how many existed."""

    @abc.abstractmethod
    async def acquire_lease(self, key: str, owner: str, ttl: float) -> float:
        """Take (or renew) the session's lease for ``ttl`` seconds; 0.0 if ``owner`` holds it now,
        else the seconds left of the current holder's lease.

        Leases hand a session from one runtime to another: while one is held, only its owner's
        writes pass the compare-and-set, so a runtime waits for the other's turn instead of
        running its model on a history that is about to change. A lease lapses by itself, so a
        holder that dies blocks others for ``ttl`` at most. A session need not exist to be leased.
        """

    @abc.abstractmethod
    async def release_lease(self, key: str, owner: str) -> None:
        """Give the lease back if ``owner`` holds it; otherwise do nothing."""

    async def lease_holder(self, key: str) -> str | None:
        """The owner of the session's lease now, or None if nobody holds it (or this backend
        cannot say: then a host waits for the lease instead of forwarding to its holder)."""
        return None

    # The step journal of a running turn: what a turn with tool calls has done so far (each
    # model step, each tool result), so that a turn resent after a crash resumes from there.
    @abc.abstractmethod
    async def put_step(self, key: str, turn_id: str, seq: int, data: bytes, expires_at: float | None) -> None:
        """Journal step ``seq`` (0, 1, ...) of turn ``turn_id`` of session ``key`` durably (the
        same ``seq`` again replaces it). It expires at ``expires_at`` (the session's expiry)."""

    @abc.abstractmethod
    async def load_steps(self, key: str, turn_id: str) -> list[tuple[int, bytes]]:
        """The journaled steps of a turn as ``(seq, data)``, in ``seq`` order; empty if none (or expired)."""

    @abc.abstractmethod
    async def drop_steps(self, key: str, turn_id: str) -> None:
        """Forget a turn's journal (its turn committed); nothing to drop is no error."""

    async def sweep_expired(self) -> int:
        """Delete the sessions (and their checkpoints) whose expiry has passed; returns how many.

        Expired sessions already read as absent, so sweeping only reclaims space. This default
        suits a backend that expires keys itself (Redis) or holds nothing: there is nothing to
        sweep, and it returns 0. A backend that keeps expired rows until told (SQLite) overrides it.
        """
        return 0

    async def usage(self, keys: Sequence[str]) -> dict[str, StorageUsage]:
        """Bytes stored per session of ``keys`` (absent sessions are left out).

        This default reads each session and its checkpoints; the backends override it with
        a query that sums sizes where they are stored, without shipping the data.
        """
        out: dict[str, StorageUsage] = {}
        for key in keys:
            rec = await self.load(key)
            if rec is None:
                continue
            cps = 0
            for info in await self.list_checkpoints(key):
                cp = await self.get_checkpoint(key, info.cp_id)
                cps += len(cp.data) if cp is not None else 0
            out[key] = StorageUsage(sum(map(len, rec.messages)), len(rec.meta), cps)
        return out

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
