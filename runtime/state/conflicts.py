"""The one compare-and-set retry: redo an operation on fresh state when another writer won."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from repertory.errors import ConcurrentUpdate

__all__ = ["CAS_ATTEMPTS", "retry_conflicts"]

log = structlog.get_logger("repertory.state")
T = TypeVar("T")
CAS_ATTEMPTS = 8


async def retry_conflicts(attempt: Callable[[], Awaitable[T]], *, on_conflict: Callable[[], None],
                          what: str) -> T:
    """Await ``attempt()``; after a lost compare-and-set, call ``on_conflict()`` (drop the stale
    copy) and try again, up to :data:`CAS_ATTEMPTS` times, with a short random pause so that
    two contenders do not keep colliding. The last ConcurrentUpdate is raised."""
    for n in range(CAS_ATTEMPTS):
        try:
            return await attempt()
        except ConcurrentUpdate:
            on_conflict()
            if n == CAS_ATTEMPTS - 1:
                raise
            log.info("cas_retry", of=what, attempt=n + 1)
            await asyncio.sleep(random.uniform(0, 0.002 * 2**n))
    raise AssertionError("unreachable")
