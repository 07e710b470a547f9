"""Single activation: a session is active on one host at a time, guarded by a store lease.

While the host set changes (a node joins or leaves), two drivers may for a while route one
session to two hosts. Each host of the Ray pool therefore takes the session's *activation
lease* in the store (``Store.acquire_lease`` on ``<key>/activation``, a key no session id can
spell) when it activates the session, and holds it while the session stays resident:

- activation pays one store round trip (the lease); a turn pays none while the lease has more
  than half its TTL left; past that, the next message renews it (one round trip per half
  TTL, not per turn). Messages running longer are renewed by :meth:`Activation.keep`.
- a resident session whose lease lapsed (idle longer than its TTL) is reloaded from the store
  when the lease is taken again: another host may have written meanwhile.
- passivation releases the lease, so the next host takes it at once.
- a host asked for a session whose lease another host of the same cluster holds raises
  :class:`~repertory.errors.SessionElsewhere` naming the holder's Ray actor; the runtime sends
  the call there (:class:`Redirects`). A holder that died loses its lease after its TTL, or at
  once when its replacement (the same actor name, restarted) asks for it.
- a holder in *another* cluster (two runtimes on one store) cannot be reached by name: the
  host goes on without the activation lease, as before, and the store's compare-and-set and
  the contended-session lease (:mod:`repertory.host.core`) keep the history exact.

The lease guards activation, not writes: every write is still a compare-and-set, so a host
whose lease lapsed unseen (the store was unreachable) cannot lose an update, only run a model
call that its write then finds stale.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import structlog

from repertory.errors import RuntimeNotReady, SessionElsewhere, StoreError
from repertory.stores.base import Store

__all__ = ["Activation", "Holder", "Redirects", "lease_key"]

log = structlog.get_logger("repertory.activation")


def lease_key(key: str) -> str:
    """The store lease that marks where session ``key`` is active ('/' is not allowed in ids)."""
    return f"{key}/activation"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds an activation lease: the cluster, the host's Ray actor name, its incarnation."""

    cluster: str
    address: str
    incarnation: str

    def owner(self) -> str:
        return f"{self.cluster}|{self.address}|{self.incarnation}"

    @classmethod
    def parse(cls, owner: str) -> Holder | None:
        parts = owner.split("|", 2)
        return cls(*parts) if len(parts) == 3 else None


class _Leased(Protocol):
    lease_until: float  # monotonic time until which this host surely holds the lease (0: not held)
    busy: int


class Activation:
    """The activation leases of one host (see the module docstring)."""

    def __init__(self, store: Store, holder: Holder, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.holder = holder
        self.owner = holder.owner()
        self.ttl = ttl
        self._clock = clock
        self._releases: dict[str, asyncio.Task] = {}  # by session key, while under way
        self.redirects = 0  # calls this host sent on to the holder
        self.takeovers = 0  # leases taken from a dead incarnation of this host

    async def hold(self, slot: _Leased, key: str) -> bool:
        """Make sure this host holds the session's lease before the message uses the slot.

        Returns True if the resident state must be read again from the store (the lease had
        lapsed, so another host may have written). Raises SessionElsewhere if a host of this
        cluster holds it. No store call while the lease has more than half its TTL left.
        """
        now = self._clock()
        if slot.lease_until - now > self.ttl / 2:
            return False
        pending = self._releases.get(key)
        if pending is not None:  # passivated a moment ago: let the release land before taking it again
            await asyncio.wait((pending,))
        for _ in range(3):
            started = self._clock()
            left = await self.store.acquire_lease(lease_key(key), self.owner, self.ttl)
            if left == 0.0:
                stale = slot.lease_until <= started  # lapsed (or never held): reload
                slot.lease_until = started + self.ttl  # the store's expiry is no earlier
                return stale
            slot.lease_until = 0.0
            owner = await self.store.lease_holder(lease_key(key))
            if owner is None:
                continue  # it lapsed between the two calls: try again
            other = Holder.parse(owner)
            if other is None or other.cluster != self.holder.cluster:
                # Another runtime on this store: not reachable by name. Go on as before this
                # lease existed (compare-and-set and the contended-session lease).
                return True
            if other.address == self.holder.address:
                # A dead incarnation of this very host: its replacement takes over at once.
                await self.store.release_lease(lease_key(key), owner)
                self.takeovers += 1
                log.info("activation_taken_over", session=key, previous=other.incarnation)
                continue
            self.redirects += 1
            raise SessionElsewhere(f"session {key!r} is active on {other.address}; send the call there",
                                   holder=other.address, wait=left)
        return True  # the lease kept changing hands: the compare-and-set still guards the write

    async def keep(self, slots: Iterable[tuple[str, _Leased]]) -> None:
        """Renew the leases of sessions busy with a message longer than half a TTL."""
        now = self._clock()
        for key, slot in list(slots):
            if slot.busy and slot.lease_until and slot.lease_until - now <= self.ttl / 2:
                try:
                    left = await self.store.acquire_lease(lease_key(key), self.owner, self.ttl)
                except StoreError as exc:  # renewed at the next round
                    log.warning("activation_renewal_failed", session=key, error=str(exc))
                    continue
                slot.lease_until = now + self.ttl if left == 0.0 else 0.0

    def release(self, key: str, slot: _Leased) -> None:
        """Give the lease back on passivation, in the background (it lapses anyway)."""
        if not slot.lease_until:
            return
        slot.lease_until = 0.0
        task = self._releases[key] = asyncio.get_running_loop().create_task(self._release(key))
        task.add_done_callback(lambda t: self._releases.pop(key, None) if self._releases.get(key) is t else None)

    async def _release(self, key: str) -> None:
        try:
            await self.store.release_lease(lease_key(key), self.owner)
        except StoreError as exc:
            log.warning("activation_release_failed", session=key, error=str(exc))

    async def drain(self) -> None:
        """Wait for the releases started so far."""
        if self._releases:
            await asyncio.gather(*list(self._releases.values()), return_exceptions=True)


class Redirects:
    """How a runtime follows SessionElsewhere for one call: to the named holder, at most
    ``hops`` times in a row; then (or when the holder cannot be reached) back to the session's
    own host after a pause, until the holder's lease lapses. Gives up after ``patience`` s."""

    def __init__(self, patience: float, hops: int = 3, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._deadline = clock() + patience
        self._patience = patience
        self._clock = clock
        self._hops = hops
        self._followed = 0
        self._pause = 0.01

    def next(self, exc: SessionElsewhere, reachable: bool) -> tuple[str | None, float]:
        """Where to send the call next (a holder's name, or None: its own host) and how long
        to wait first."""
        if self._clock() >= self._deadline:
            raise RuntimeNotReady(f"{exc}, but {exc.holder} neither answered for it nor let its activation lease "
                                  f"lapse within {self._patience:g} s; retry later")
        if reachable and self._followed < self._hops:
            self._followed += 1
            return exc.holder, 0.0
        self._followed = 0
        pause, self._pause = self._pause, min(self._pause * 2, 0.5)
        return None, min(pause, max(exc.wait, 0.001))
