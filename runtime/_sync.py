"""Sync wrappers: run repertory's async methods from plain code, inside or outside a loop.

All sync calls go to one background event loop (an anyio blocking portal on a daemon thread).
That works from a script, from a thread pool, and from inside a running event loop (a notebook,
an async web handler calling sync code): the calling thread waits for the result while the
portal's loop does the work, so nothing re-enters the caller's loop.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import Future
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from repertory.errors import RuntimeNotReady

__all__ = ["aiter_on_portal", "call_in_portal", "iterate_sync", "on_portal", "run_sync", "start_on_portal"]

T = TypeVar("T")
_lock = threading.Lock()
_portal: BlockingPortal | None = None
_thread_id: int | None = None


def _serve(ready: threading.Event, box: list) -> None:
    async def main() -> None:
        async with BlockingPortal() as portal:
            box.append(portal)
            ready.set()
            await portal.sleep_until_stopped()

    anyio.run(main, backend="asyncio")


def _get_portal() -> BlockingPortal:
    global _portal, _thread_id
    if _portal is None:
        with _lock:
            if _portal is None:
                # A daemon thread: the interpreter may exit without stopping it.
                ready, box = threading.Event(), []
                t = threading.Thread(target=_serve, args=(ready, box), name="repertory-loop", daemon=True)
                t.start()
                ready.wait()
                _thread_id = t.ident
                _portal = box[0]
    return _portal


def run_sync(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run ``await fn(*args, **kwargs)`` on the portal loop and wait for its result."""
    portal = _get_portal()
    if threading.get_ident() == _thread_id:
        raise RuntimeNotReady(
            "a sync repertory method was called from repertory's own event loop; "
            "use the async form (achat, aget_history, ...) there"
        )
    if kwargs:
        return portal.call(functools.partial(fn, *args, **kwargs))
    return portal.call(fn, *args)


def iterate_sync(agen_fn: Callable[..., AsyncIterator[T]], *args: Any) -> Iterator[T]:
    """Iterate an async generator from sync code, one item at a time."""
    portal = _get_portal()
    agen = agen_fn(*args)

    async def step() -> tuple[bool, Any]:
        try:
            return True, await agen.__anext__()
        except StopAsyncIteration:
            return False, None

    try:
        while True:
            ok, item = portal.call(step)
            if not ok:
                return
            yield item
    finally:
        try:
            portal.call(agen.aclose)
        except Exception:  # closing after an error: the original error matters
            pass


async def on_portal(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Await ``fn(*args)`` on the portal loop from any loop (loop-bound locks, stores, futures)."""
    portal = _get_portal()
    if threading.get_ident() == _thread_id:
        return await fn(*args)
    loop = portal.call(asyncio.get_running_loop)
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(fn(*args), loop))


async def aiter_on_portal(agen: AsyncIterator[T]) -> AsyncIterator[T]:
    """Iterate ``agen`` (whose work belongs to the portal loop) from any loop."""
    try:
        while True:
            try:
                item = await on_portal(agen.__anext__)
            except StopAsyncIteration:
                return
            yield item
    finally:
        await on_portal(agen.aclose)  # type: ignore[attr-defined]


def call_in_portal(fn: Callable[..., T], *args: Any) -> T:
    """Run a plain function on the portal thread (for loop-bound set-up)."""
    return _get_portal().call(fn, *args)


def start_on_portal(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> Future[T]:
    """Start ``fn`` on the portal loop; a concurrent future that can be waited on or cancelled
    (a CLI cancels it on Ctrl-C)."""
    return _get_portal().start_task_soon(functools.partial(fn, *args, **kwargs))
