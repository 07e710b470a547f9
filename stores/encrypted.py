"""EncryptedStore: any Store with its session records encrypted at rest.

It wraps a backend (SQLite, Redis, memory, the StoreActor's client) rather than changing
each one: the meta blob, every message blob and every checkpoint's data are sealed with the
:class:`~repertory.stores.crypto.KeyRing` before the backend sees them, and opened after it
reads them; so is a checkpoint's label (a version's description), as base64 text after a
control-character marker. The associated data names the session key and the kind of record
(checkpoints also their id), so a blob moved to another session or slot fails with
:class:`~repertory.errors.DecryptionFailed`. Keys, revisions, counts, times, expiries, leases and
checkpoint ids, kinds and turns stay in the clear: the backend needs them to compare-and-set,
list and expire.

Plaintext records (written before encryption was turned on) are read as they are and written
encrypted from then on; ``required=True`` refuses them instead (:meth:`rekey` converts them).
A record that does not decrypt is an error, never skipped: a wrong key fails the read, and a
turn that cannot read its session writes nothing.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import replace

from repertory.errors import DecryptionFailed, EncryptionError

from .base import CheckpointInfo, CheckpointRecord, SessionInfo, SessionRecord, StateWrite, StorageUsage, Store
from .crypto import KeyRing, envelope_kid, is_encrypted

__all__ = ["EncryptedStore", "wrap_store"]


def wrap_store(store: Store, keys: KeyRing | None, *, required: bool = False) -> Store:
    """``store`` behind an :class:`EncryptedStore` when there are keys; itself otherwise."""
    return store if keys is None else EncryptedStore(store, keys, required=required)


_LABEL = "\x1frpe:"  # a sealed label: no one types a unit separator into a checkpoint's name


def _context(key: str, kind: str, part: str = "") -> bytes:
    # NUL-separated: ids may hold ':' but never NUL, so no two (key, kind, part) give one context
    return f"repertory\0{kind}\0{key}\0{part}".encode()


class EncryptedStore(Store):
    """Encrypts what ``inner`` stores; see the module docstring."""

    def __init__(self, inner: Store, keys: KeyRing, *, required: bool = False) -> None:
        self.inner = inner
        self.keys = keys
        self.required = required
        self.url = inner.url

    # -- sealing ----------------------------------------------------------------------
    def _seal(self, blob: bytes, key: str, kind: str, part: str = "") -> bytes:
        return self.keys.encrypt(blob, _context(key, kind, part))

    def _refuse_plaintext(self, key: str, what: str) -> None:
        if self.required:
            raise EncryptionError(
                f"{what} of session {key!r} is stored unencrypted and encryption_required is set; "
                "nothing was changed. Run `repertory sessions rekey` (or repertory.rekey_sessions()) "
                "once without encryption_required to encrypt existing records")

    def _open(self, blob: bytes, key: str, kind: str, what: str, part: str = "") -> bytes:
        if not is_encrypted(blob):
            self._refuse_plaintext(key, what)
            return blob
        return self.keys.decrypt(blob, _context(key, kind, part), source=lambda: f"{what} of session {key!r}")

    def _open_record(self, rec: SessionRecord) -> SessionRecord:
        k = rec.key
        meta = self._open(rec.meta, k, "meta", "the state")
        messages = [self._open(m, k, "msg", "a message") for m in rec.messages]
        return SessionRecord(k, rec.revision, meta, messages, rec.updated_at, rec.expires_at)

    def _seal_info(self, info: CheckpointInfo) -> CheckpointInfo:
        if not info.label:
            return info
        sealed = self._seal(info.label.encode(), info.key, "label", info.cp_id)
        return replace(info, label=_LABEL + base64.b64encode(sealed).decode("ascii"))

    def _open_info(self, info: CheckpointInfo) -> CheckpointInfo:
        what = f"the label of {info.kind} {info.cp_id!r}"
        if not info.label.startswith(_LABEL):
            if info.label:
                self._refuse_plaintext(info.key, what)
            return info
        try:
            blob = base64.b64decode(info.label[len(_LABEL):], validate=True)
        except (binascii.Error, ValueError):
            raise DecryptionFailed(f"{what} of session {info.key!r} is not valid base64; it was altered") from None
        label = self._open(blob, info.key, "label", what, info.cp_id)
        return replace(info, label=label.decode("utf-8", "replace"))

    def _seal_checkpoint(self, rec: CheckpointRecord) -> CheckpointRecord:
        i = rec.info
        return CheckpointRecord(self._seal_info(i), self._seal(rec.data, i.key, "cp", i.cp_id))

    def _open_checkpoint(self, rec: CheckpointRecord) -> CheckpointRecord:
        i = rec.info
        data = self._open(rec.data, i.key, "cp", f"{i.kind} {i.cp_id!r}", i.cp_id)
        return CheckpointRecord(self._open_info(i), data)

    # -- the verbs that carry records -------------------------------------------------
    async def load(self, key: str) -> SessionRecord | None:
        rec = await self.inner.load(key)
        return None if rec is None else self._open_record(rec)

    async def commit(self, write: StateWrite) -> int:
        k = write.key
        sealed = StateWrite(
            k, write.expected_revision, self._seal(write.meta, k, "meta"),
            [self._seal(m, k, "msg") for m in write.messages], base_count=write.base_count,
            replace=write.replace, updated_at=write.updated_at, expires_at=write.expires_at,
            first_revision=write.first_revision, owner=write.owner,
            checkpoint=None if write.checkpoint is None else self._seal_checkpoint(write.checkpoint))
        return await self.inner.commit(sealed)

    async def put_checkpoint(self, record: CheckpointRecord) -> None:
        await self.inner.put_checkpoint(self._seal_checkpoint(record))

    async def get_checkpoint(self, key: str, cp_id: str) -> CheckpointRecord | None:
        rec = await self.inner.get_checkpoint(key, cp_id)
        return None if rec is None else self._open_checkpoint(rec)

    async def list_checkpoints(self, key: str, kind: str | None = None) -> list[CheckpointInfo]:
        return [self._open_info(i) for i in await self.inner.list_checkpoints(key, kind)]

    async def put_step(self, key: str, turn_id: str, seq: int, data: bytes, expires_at: float | None) -> None:
        await self.inner.put_step(key, turn_id, seq, self._seal(data, key, "step", f"{turn_id}\0{seq}"),
                                  expires_at)

    async def load_steps(self, key: str, turn_id: str) -> list[tuple[int, bytes]]:
        return [(seq, self._open(blob, key, "step", f"a step of turn {turn_id!r}", f"{turn_id}\0{seq}"))
                for seq, blob in await self.inner.load_steps(key, turn_id)]

    async def drop_steps(self, key: str, turn_id: str) -> None:
        await self.inner.drop_steps(key, turn_id)

    # -- re-encryption ----------------------------------------------------------------
    def _current(self, blob: bytes) -> bool:
        return envelope_kid(blob) == self.keys.current

    async def rekey(self, key: str, owner: str) -> bool:
        """Re-encrypt session ``key`` (state and checkpoints) under the current key; True if
        anything was rewritten. Holds the session's lease while it writes (``owner``), so that a
        runtime serving the session reloads it instead of overwriting it; the caller takes the
        lease (:meth:`Store.acquire_lease`) and releases it."""
        raw = await self.inner.load(key)
        changed = False
        if raw is not None and not (self._current(raw.meta) and all(map(self._current, raw.messages))):
            rec = self._open_record(raw)
            await self.inner.commit(StateWrite(
                key, rec.revision, self._seal(rec.meta, key, "meta"),
                [self._seal(m, key, "msg") for m in rec.messages], replace=True,
                updated_at=rec.updated_at, expires_at=rec.expires_at, owner=owner))
            changed = True
        for info in await self.inner.list_checkpoints(key):
            cp = await self.inner.get_checkpoint(key, info.cp_id)
            if cp is not None and not self._current(cp.data):
                await self.inner.put_checkpoint(self._seal_checkpoint(self._open_checkpoint(cp)))
                changed = True
        return changed

    # -- the verbs that carry no record: passed through ----------------------------------
    async def delete(self, key: str, op_id: str | None = None) -> bool:
        return await self.inner.delete(key, op_id)

    async def list_sessions(self, *, prefix: str = "", updated_before: float | None = None,
                            limit: int | None = None) -> list[SessionInfo]:
        return await self.inner.list_sessions(prefix=prefix, updated_before=updated_before, limit=limit)

    async def touch(self, key: str, expires_at: float | None) -> bool:
        return await self.inner.touch(key, expires_at)

    async def usage(self, keys: Sequence[str]) -> dict[str, StorageUsage]:
        return await self.inner.usage(keys)  # sizes as stored: sealed


    async def delete_checkpoints(self, key: str, cp_ids: list[str]) -> int:
        return await self.inner.delete_checkpoints(key, cp_ids)

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> float:
        return await self.inner.acquire_lease(key, owner, ttl)

    async def release_lease(self, key: str, owner: str) -> None:
        await self.inner.release_lease(key, owner)

    async def lease_holder(self, key: str) -> str | None:
        return await self.inner.lease_holder(key)

    async def sweep_expired(self) -> int:
        return await self.inner.sweep_expired()

    async def close(self) -> None:
        await self.inner.close()
