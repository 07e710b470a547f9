"""Batch slices: the turn chains of many jobs, sent to their hosts one call per host at a time.

Each job's turns form a chain (:mod:`repertory.host.chains`) for the host that owns its session
(``Runtime.slice_of``). :class:`Slicer` queues chains per host and sends a host's queue as one
call, a *slice*, by Nagle's rule as the envelopes do (:mod:`repertory.host.envelope`): at the
next turn of the event loop while the host has fewer than :data:`DEPTH` slices in flight
(so a lone job leaves at once, and the jobs read in one go leave together), else as soon as one
of them returns, with whatever was queued meanwhile. A queue of :data:`MAX_CHAINS` leaves at
once. With ``concurrency`` jobs in flight a host therefore always has a slice running while
the next one fills, and the driver pays one call per slice instead of one per turn.

``settle(payload, result, error)`` is called once per chain when its slice returns: with the
chain's :class:`~repertory.host.chains.ChainResult`, or with the error of a call that failed
as a whole (its host died: any of its turns may have run; their turn ids make a resend safe);
then ``settled()`` once for the slice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from repertory.host.api import TurnRequest
from repertory.host.chains import ChainResult
from repertory.runtimes.base import Runtime

__all__ = ["DEPTH", "MAX_CHAINS", "Slicer"]

P = TypeVar("P")
DEPTH = 2          # slices in flight per host before new chains wait for one to return
MAX_CHAINS = 256   # chains per slice: bounds a reply's size and a slice's last chain's wait


class Slicer(Generic[P]):
    """Sends chains to their hosts in slices; see the module docstring."""

    def __init__(self, rt: Runtime, timeout: float | None,
                 settle: Callable[[P, ChainResult | None, BaseException | None], None],
                 settled: Callable[[], None] = lambda: None) -> None:
        self.rt = rt
        self.timeout = timeout
        self._settle = settle
        self._settled = settled
        self._queued: dict[Hashable, list[tuple[list[TurnRequest], P]]] = {}
        self._in_flight: dict[Hashable, int] = {}
        self._soon: set[Hashable] = set()  # hosts with a send due at the next turn of the loop
        self.tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        self.error: BaseException | None = None  # the first error a settle raised (a bug: stop)
        self.slices = 0  # calls sent
        self.chains = 0  # chains sent in them

    def add(self, where: Hashable, chain: list[TurnRequest], payload: P) -> None:
        """Queue ``chain`` for the host ``where`` (``Runtime.slice_of``)."""
        queue = self._queued.setdefault(where, [])
        queue.append((chain, payload))
        if len(queue) >= MAX_CHAINS:
            self._send(where)
        elif self._in_flight.get(where, 0) < DEPTH and where not in self._soon:
            self._soon.add(where)
            asyncio.get_running_loop().call_soon(self._due, where)

    def _due(self, where: Hashable) -> None:
        self._soon.discard(where)
        if self._in_flight.get(where, 0) < DEPTH:
            self._send(where)

    def _send(self, where: Hashable) -> None:
        items = self._queued.pop(where, None)
        if not items or self._stopped:
            return
        self._in_flight[where] = self._in_flight.get(where, 0) + 1
        self.slices += 1
        self.chains += len(items)
        task = asyncio.ensure_future(self._slice(where, items))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _slice(self, where: Hashable, items: list[tuple[list[TurnRequest], P]]) -> None:
        try:
            results: list[ChainResult] | None = await self.rt.run_chains(where, [c for c, _ in items], self.timeout)
            if len(results) != len(items):
                raise RuntimeError(f"a slice of {len(items)} chains was answered with {len(results)} results")
            failed: BaseException | None = None
        except asyncio.CancelledError:
            self._in_flight[where] -= 1
            raise
        except Exception as exc:  # noqa: BLE001 - every chain of the slice is told, and goes again
            results, failed = None, exc
        self._in_flight[where] -= 1
        if where in self._queued:  # what queued while this host was busy leaves now
            self._send(where)
        for i, (_, payload) in enumerate(items):
            try:
                self._settle(payload, None if results is None else results[i], failed)
            except Exception as exc:  # noqa: BLE001 - the others are still told; the caller sees .error
                self.error = self.error or exc
        try:
            self._settled()
        except Exception as exc:  # noqa: BLE001
            self.error = self.error or exc

    def flush(self) -> None:
        """Send every queued chain now (the input has ended: nothing more will join them)."""
        for where in list(self._queued):
            self._send(where)

    @property
    def busy(self) -> bool:
        return bool(self.tasks or self._queued)

    def cancel(self) -> None:
        """Stop waiting for the slices in flight (their turns go on on the hosts); send no more."""
        self._stopped = True
        for task in self.tasks:
            task.cancel()
