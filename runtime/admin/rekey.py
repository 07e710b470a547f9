"""Re-encryption of stored sessions under the current encryption key (``repertory sessions rekey``).

Each session (and shared state) is rewritten by :meth:`EncryptedStore.rekey` while this runtime
holds its store-side lease: a host serving the session meanwhile has its next write refused, and
reloads the re-encrypted state instead of overwriting it (the hand-over between runtimes, see
docs/architecture.md). Records already under the current key are left as they are, so a rekey
that stopped half-way is finished by running it again. Plaintext records are encrypted too.
"""

from __future__ import annotations

import asyncio
import uuid

from repertory._sync import on_portal, run_sync
from repertory.admin.listing import Progress
from repertory.errors import InvalidInput, RuntimeNotReady
from repertory.logs import get_logger
from repertory.runtimes.base import Runtime
from repertory.runtimes.current import get_runtime
from repertory.stores.encrypted import EncryptedStore

__all__ = ["arekey_sessions", "rekey_sessions"]

log = get_logger("repertory.admin")
_LEASE_WAIT = 120.0  # seconds to wait for a session's lease before giving up


async def _rekey_one(store: EncryptedStore, key: str, owner: str, ttl: float) -> bool:
    deadline = asyncio.get_running_loop().time() + _LEASE_WAIT
    while (wait := await store.acquire_lease(key, owner, ttl)) > 0:
        if asyncio.get_running_loop().time() + wait > deadline:
            raise RuntimeNotReady(f"session {key!r} stayed leased by another runtime for {_LEASE_WAIT:.0f} s; "
                                  "run the rekey again (it continues where it stopped)")
        await asyncio.sleep(min(wait, 0.5))
    try:
        return await store.rekey(key, owner)
    finally:
        await store.release_lease(key, owner)


async def _rekey(rt: Runtime, prefix: str, progress: Progress | None) -> int:
    if not isinstance(prefix, str):
        raise InvalidInput(f"prefix must be a str, got {type(prefix).__name__}")
    store = rt.admin_store()
    if not isinstance(store, EncryptedStore):
        raise InvalidInput("rekey needs an encryption key: pass repertory.init(encryption_key=...) or set "
                           "REPERTORY_ENCRYPTION_KEY (the new key first, then the old ones)")
    # Reads plaintext even in encryption_required mode: converting it is the point.
    store = EncryptedStore(store.inner, store.keys)
    owner = f"rekey-{uuid.uuid4().hex}"
    infos = await on_portal(lambda: store.list_sessions(prefix=prefix))
    rewritten = 0
    for i, info in enumerate(infos, 1):
        if await on_portal(_rekey_one, store, info.key, owner, rt.settings.lease_ttl):
            rewritten += 1
        if progress is not None:
            progress(i, len(infos))
    log.info("sessions_rekeyed", sessions=len(infos), rewritten=rewritten, kid=store.keys.current)
    return rewritten


async def arekey_sessions(prefix: str = "", *, progress: Progress | None = None) -> int:
    """Re-encrypt the stored sessions (and shared states) whose key starts with ``prefix`` under
    the current (first) encryption key; returns how many were rewritten.

    Records under an older key or in plaintext are rewritten, with their checkpoints and saved
    versions; afterwards the old key can be removed from the configuration. A session none of the
    keys opens stops the run with :class:`~repertory.errors.DecryptionFailed` naming it, that
    session unchanged (those before it stay rewritten; run again once its key is configured).
    ``progress(done, total)`` is called after each session.
    """
    return await _rekey(get_runtime(), prefix, progress)


def rekey_sessions(prefix: str = "", *, progress: Progress | None = None) -> int:
    """Sync :func:`arekey_sessions`."""
    return run_sync(_rekey, get_runtime(), prefix, progress)
