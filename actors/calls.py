"""Calling actors that Ray restarts: resend while they come back, unwrap their errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError

from repertory.errors import RepertoryError

__all__ = ["RESTART_WAIT", "call_restartable", "iterate_streaming", "unwrap_ray_error"]

T = TypeVar("T")
RESTART_WAIT = 60.0  # seconds to keep resending to an actor that Ray is restarting


def unwrap_ray_error(exc: RayTaskError) -> BaseException:
    """The repertory error inside a Ray task error, or the task error itself."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, RepertoryError) else exc


async def call_restartable(call: Callable[[], Awaitable[T]], gone: Callable[[BaseException], RepertoryError],
                           *, wait: float = RESTART_WAIT) -> T:
    """Await ``call()``, resending with backoff while its actor is dead or restarting.

    Only calls with an idempotency guard may be resent (turn ids, operation ids, store
    compare-and-set): a call may have run before its actor died. ``gone(exc)`` builds the
    error raised when the actor has not come back within ``wait`` seconds.
    """
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            return await call()
        except RayTaskError as exc:
            raise unwrap_ray_error(exc) from None
        except (ActorDiedError, ActorUnavailableError) as exc:
            if time.monotonic() > deadline:
                raise gone(exc) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def iterate_streaming(gen: Any, convert: Callable[[Any], T] = lambda item: item) -> AsyncIterator[T]:
    """The items of a Ray streaming generator (``num_returns="streaming"``), converted, with
    the repertory error inside a failed task raised as itself."""
    try:
        async for ref in gen:
            yield convert(await ref)
    except RayTaskError as exc:
        raise unwrap_ray_error(exc) from None
