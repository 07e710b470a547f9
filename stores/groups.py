"""Calls that arrive together run as one: a group commit for any store operation.

A caller's item joins the pending group; the first caller of a group starts a task that hands
every item pending by then to ``run`` (one transaction, one pipeline), then the ones that
arrived meanwhile, and so on. Each caller gets its own result, or its own exception when
``run`` returns one in its place; if ``run`` raises, every caller of that group gets the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Group"]

A = TypeVar("A")
R = TypeVar("R")


class Group(Generic[A, R]):
    """Groups concurrent calls on one event loop (a store's loop) into calls of ``run``."""

    def __init__(self, run: Callable[[list[A]], Awaitable[Sequence[R | Exception]]]) -> None:
        self._run = run
        self._pending: list[tuple[A, asyncio.Future[R]]] = []
        self._flushing = False

    async def submit(self, item: A) -> R:
        """``item``'s result, once the group it joined has run."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, fut))
        if not self._flushing:
            self._flushing = True
            loop.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._run([item for item, _ in batch])
                except Exception as exc:  # the whole group failed: every caller hears it
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), res in zip(batch, results):
                    if fut.done():
                        continue
                    if isinstance(res, Exception):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)
        finally:
            self._flushing = False
