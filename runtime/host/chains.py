"""Turn chains: many sessions' turns in one call to their host, each session's in order.

A batch job is a *chain*: one session's messages, each sent after the reply to the one before.
Sent a turn at a time, every turn costs the caller a call (a Ray hop on Ray) and its
bookkeeping, and the hosts an envelope's decoding and encoding; for a batch of short jobs that
is most of the work. The batch runner (``repertory.batch``) therefore sends the chains of the
jobs whose sessions live on one host as one call, a *slice*: :func:`run_chains` runs every
chain of the slice at once on the host, each chain's turns one after the other through
:meth:`HostCore.turn <repertory.host.core.HostCore.turn>` (the same turn as a lone call:
mailbox, durable write before the reply, turn ids), and answers once all chains have ended
with each chain's replies and the error that stopped it, if any.

A chain stops at its first error; the replies before it are durable and returned with it, so
the caller can go on from there (the batch runner retries the rest turn by turn). ``timeout``
bounds each chain (an attempt of a batch job), as ``asyncio.timeout`` would around its turns.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from repertory.host import wire
from repertory.host.api import TurnReply, TurnRequest
from repertory.host.envelope import error_outcome, rebuild_error

if TYPE_CHECKING:
    from repertory.host.core import HostCore

__all__ = ["ChainResult", "decode_results", "run_chains", "serve_chains"]

_TIMEOUT = "TimeoutError"  # the wire code of a chain that ran out of time (not one of repertory.errors)


@dataclass(slots=True)
class ChainResult:
    """What one chain got done: the replies to its first turns, and the error that stopped it."""

    replies: list[TurnReply] = field(default_factory=list)
    error: BaseException | None = None


async def _run_chain(core: HostCore, chain: list[TurnRequest], timeout: float | None) -> ChainResult:
    out = ChainResult()
    try:
        async with asyncio.timeout(timeout):
            for req in chain:
                out.replies.append(await core.turn(req))
    except Exception as exc:  # noqa: BLE001 - it stops this chain only; the caller decides what next
        out.error = exc
    return out


async def run_chains(core: HostCore, chains: list[list[TurnRequest]], timeout: float | None) -> list[ChainResult]:
    """Run every chain at once, each chain's turns in order; one result per chain, in order."""
    if timeout is not None and timeout <= 0:
        timeout = None
    return list(await asyncio.gather(*(_run_chain(core, chain, timeout) for chain in chains)))


def _error(exc: BaseException | None) -> list[Any] | None:
    if exc is None:
        return None
    if isinstance(exc, TimeoutError):
        return [_TIMEOUT, []]
    return error_outcome(exc)[1:]  # type: ignore[arg-type]


def _rebuilt(outcome: list[Any] | None) -> BaseException | None:
    if outcome is None:
        return None
    code, args = outcome
    return TimeoutError() if code == _TIMEOUT else rebuild_error(code, args)


async def serve_chains(core: HostCore, data: bytes) -> bytes:
    """The receiving side of a slice: ``data`` is the wire encoding of ``[chains, timeout]``;
    answers the wire encoding of each chain's ``[replies, error or None]``."""
    chains, timeout = wire.decode(data)
    results = await run_chains(core, chains, timeout)
    return wire.encode([[r.replies, _error(r.error)] for r in results])


def decode_results(data: bytes) -> list[ChainResult]:
    """The results :func:`serve_chains` encoded, each error raised again as its own class."""
    return [ChainResult(list(replies), _rebuilt(error)) for replies, error in wire.decode(data)]
