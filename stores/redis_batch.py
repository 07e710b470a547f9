"""Group commit for the Redis store: script calls that queue up while a round trip is in
flight leave together as one pipeline (see the ``redis`` module's docstring for why)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from redis.commands.core import AsyncScript

from repertory.errors import StoreError

if TYPE_CHECKING:
    from .redis import RedisStore

__all__ = ["Batcher", "Call", "settle", "settle_error"]

T = TypeVar("T")


@dataclass(slots=True)
class Call:
    """One queued script call and the future its caller awaits."""

    script: AsyncScript
    keys: Sequence[str]
    args: Sequence[Any]
    finish: Callable[[Any], Any]
    fut: asyncio.Future[Any]


class Batcher:
    """Sends the script calls queued while a round trip is in flight as one pipeline.

    At most one pipeline per batcher is in flight; the first caller of an idle batcher starts
    the flush task and every later caller joins the next pipeline.
    """

    def __init__(self, store: RedisStore, what: str) -> None:
        self._store = store
        self._what = what
        self._pending: list[Call] = []
        self._task: asyncio.Task[None] | None = None
        self._lone = False  # a lone call is being sent outside the flush task

    async def submit(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any],
                     finish: Callable[[Any], T], lone: Callable[[], Awaitable[T]] | None = None) -> T:
        """The script call's result through ``finish``. ``lone``: how to send it when nothing
        else is queued, if not as the script on the batcher's own connection."""
        if self._task is None and not self._lone:
            # Idle: send at once, in the caller's task and without a future; callers who
            # arrive meanwhile are batched by a flush task as usual.
            self._lone = True
            try:
                if lone is not None:
                    return await lone()
                return await self._store._send_lone(script, keys, args, finish, self._what)
            finally:
                self._lone = False
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        call = Call(script, keys, args, finish, fut)
        self._pending.append(call)
        if self._task is None:
            self._task = loop.create_task(self._flush())
        return await fut

    async def drain(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _flush(self) -> None:
        batch: list[Call] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._store._send(batch, self._what)
                batch = []
        except BaseException as exc:
            # Cancelled (loop shutting down) or a bug: nobody may be left waiting forever.
            for call in (*batch, *self._pending):
                if not call.fut.done():
                    call.fut.set_exception(
                        StoreError(f"the Redis {self._what} batch was interrupted: {exc!r}; retry"))
            self._pending = []
            raise
        finally:
            # Reset on every exit, failure included, so the next caller starts a fresh flush.
            self._task = None


def settle(fut: asyncio.Future[Any], finish: Callable[[Any], Any], res: Any) -> None:
    if fut.done():  # the caller was cancelled
        return
    try:
        fut.set_result(finish(res))
    except Exception as exc:
        fut.set_exception(exc)


def settle_error(fut: asyncio.Future[Any], exc: Exception) -> None:
    if not fut.done():
        fut.set_exception(exc)
