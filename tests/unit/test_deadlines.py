"""Deadlines (stores.deadlines): a timeout for many short awaits without a timer each."""

from __future__ import annotations

import asyncio
import time

import pytest

from repertory.stores.deadlines import Deadlines


async def test_an_await_past_its_deadline_times_out_and_others_finish():
    deadlines = Deadlines(0.2, period=0.02)

    async def slow():
        await asyncio.sleep(5)

    async def quick():
        await asyncio.sleep(0.01)
        return "done"

    started = time.monotonic()
    results = await asyncio.gather(deadlines.run(slow), deadlines.run(quick), return_exceptions=True)
    assert isinstance(results[0], TimeoutError) and results[1] == "done"
    assert 0.2 <= time.monotonic() - started < 1.0
    assert await deadlines.run(quick) == "done"  # the task is not left cancelled
    assert asyncio.current_task().cancelling() == 0


async def test_a_cancel_from_outside_stays_a_cancel():
    deadlines = Deadlines(5.0, period=0.01)
    task = asyncio.create_task(deadlines.run(lambda: asyncio.sleep(5)))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert deadlines._due == {} and deadlines._expired == set()


async def test_the_timer_stops_when_idle_and_comes_back():
    deadlines = Deadlines(0.1, period=0.01)
    assert await deadlines.run(lambda: asyncio.sleep(0)) is None
    await asyncio.sleep(0.05)
    assert deadlines._timer is None
    with pytest.raises(TimeoutError):
        await deadlines.run(lambda: asyncio.sleep(1))


def test_a_deadline_works_on_a_second_event_loop():
    deadlines = Deadlines(0.1, period=0.01)

    async def hang():
        await deadlines.run(lambda: asyncio.sleep(5))

    for _ in range(2):  # the first loop closes with the timer still set
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            asyncio.run(hang())
        assert time.monotonic() - started < 2
