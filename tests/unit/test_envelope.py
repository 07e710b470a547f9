"""The coalescer (repertory.host.envelope) without Ray: a fake destination records what it was
sent, alone or in envelopes, and answers after a controllable delay."""

from __future__ import annotations

import asyncio
import time

import pytest

from repertory.errors import ConcurrentUpdate, RateLimited, ServerError, SessionNotFound, WorkflowError
from repertory.host import wire
from repertory.host.envelope import Coalescer, decode_outcomes, serve_envelope


class Destination:
    """Answers ``item`` with ``item * 10``; an item ``"boom"`` fails with SessionNotFound."""

    def __init__(self, delay: float = 0.01) -> None:
        self.delay = delay
        self.sent: list[tuple[str, object, list]] = []  # (how, key, items)
        self.gate: asyncio.Event | None = None
        self.fail_envelope: BaseException | None = None

    async def one(self, key: str, item: object) -> object:
        self.sent.append(("one", key, [item]))
        await asyncio.sleep(self.delay)
        return self._answer(item, raise_=True)

    async def many(self, key: str, items: list) -> list:
        self.sent.append(("many", key, list(items)))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay)
        if self.fail_envelope is not None:
            raise self.fail_envelope
        return [self._answer(i, raise_=False) for i in items]

    @staticmethod
    def _answer(item: object, raise_: bool) -> object:
        if item == "boom":
            exc = SessionNotFound(f"no session {item}")
            if raise_:
                raise exc
            return exc
        return item * 10

    def enveloped(self) -> list[list]:
        return [items for how, _, items in self.sent if how == "many"]


def coalescer(dest: Destination, **kw) -> Coalescer:
    return Coalescer(dest.one, dest.many, **kw)


async def test_lone_call_is_sent_at_once_alone() -> None:
    dest = Destination(delay=0)
    c = coalescer(dest, window=5.0)  # a window this long would show if a lone call waited for it
    t0 = time.perf_counter()
    assert await c.call("h", 1) == 10
    assert await c.call("h", 2) == 20  # sequential calls: each alone, none delayed
    assert time.perf_counter() - t0 < 0.5
    assert dest.sent == [("one", "h", [1]), ("one", "h", [2])]
    assert c.envelopes == 0


async def test_concurrent_calls_share_an_envelope_in_order() -> None:
    dest = Destination()
    c = coalescer(dest)
    results = await asyncio.gather(*(c.call("h", i) for i in range(50)))
    assert results == [i * 10 for i in range(50)]
    # The first goes alone (nothing in flight); the rest queue behind it and leave together.
    assert dest.sent[0] == ("one", "h", [0])
    assert dest.enveloped() == [list(range(1, 50))]


async def test_envelopes_per_destination() -> None:
    dest = Destination()
    c = coalescer(dest)
    keys = ["a", "b"] * 10
    results = await asyncio.gather(*(c.call(k, i) for i, k in enumerate(keys)))
    assert results == [i * 10 for i in range(20)]
    for how, key, items in dest.sent:
        assert all(keys[i] == key for i in items)
    assert sorted(i for _, _, items in dest.sent for i in items) == list(range(20))


async def test_one_failing_call_fails_only_its_caller() -> None:
    dest = Destination()
    c = coalescer(dest)
    items = [1, 2, "boom", 4]
    out = await asyncio.gather(*(c.call("h", i) for i in [0, *items]), return_exceptions=True)
    assert out[0] == 0 and out[1] == 10 and out[2] == 20 and out[4] == 40
    assert isinstance(out[3], SessionNotFound)
    assert dest.enveloped() == [items]


async def test_a_failed_envelope_fails_each_of_its_calls() -> None:
    dest = Destination()
    dest.fail_envelope = ConnectionError("host died")
    c = coalescer(dest)
    out = await asyncio.gather(*(c.call("h", i) for i in range(5)), return_exceptions=True)
    assert out[0] == 0  # the lone first call was not in the envelope
    assert all(isinstance(o, ConnectionError) for o in out[1:])
    # Nothing stays in flight: the next call goes alone at once.
    dest.sent.clear()
    assert await c.call("h", 7) == 70
    assert dest.sent == [("one", "h", [7])]


async def test_window_is_bounded_and_max_calls_splits() -> None:
    dest = Destination(delay=0)
    lone_gate = asyncio.Event()
    one = dest.one

    async def held_one(key, item):  # the lone first call stays in flight until released
        await lone_gate.wait()
        return await one(key, item)

    c = Coalescer(held_one, dest.many, window=0.002, max_calls=8)
    first = asyncio.ensure_future(c.call("h", 0))
    await asyncio.sleep(0)  # the first is now in flight
    rest = asyncio.ensure_future(asyncio.gather(*(c.call("h", i) for i in range(1, 21))))
    # The queued calls leave after the window, not after the call in flight: they are all
    # answered while it is still held.
    assert await asyncio.wait_for(rest, 5) == [i * 10 for i in range(1, 21)]
    assert not first.done()
    envelopes = dest.enveloped()
    assert all(len(e) <= 8 for e in envelopes) and len(envelopes) >= 3
    assert sorted(i for e in envelopes for i in e) == list(range(1, 21))
    lone_gate.set()
    assert await first == 0


async def test_queue_of_one_goes_alone_after_the_tick() -> None:
    dest = Destination(delay=0.02)
    c = coalescer(dest)
    first = asyncio.ensure_future(c.call("h", 0))
    await asyncio.sleep(0)
    assert await c.call("h", 1) == 10  # queued behind the first, but alone: sent by itself
    assert await first == 0
    assert [how for how, _, _ in dest.sent] == ["one", "one"]


async def test_cancelling_a_queued_caller_leaves_the_envelope() -> None:
    dest = Destination(delay=0.02)
    c = coalescer(dest, window=0.01)
    first = asyncio.ensure_future(c.call("h", 0))
    await asyncio.sleep(0)
    tasks = [asyncio.ensure_future(c.call("h", i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # queued, the window running
    tasks[1].cancel()
    out = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(out[1], asyncio.CancelledError)
    assert [o for i, o in enumerate(out) if i != 1] == [10, 30, 40, 50]
    assert dest.enveloped() == [[1, 3, 4, 5]]
    await first


async def test_cancelling_a_caller_in_flight_does_not_disturb_the_others() -> None:
    dest = Destination(delay=0.01)
    dest.gate = asyncio.Event()
    c = coalescer(dest, window=0)
    first = asyncio.ensure_future(c.call("h", 0))
    await asyncio.sleep(0)
    tasks = [asyncio.ensure_future(c.call("h", i)) for i in range(1, 4)]
    while not dest.enveloped():
        await asyncio.sleep(0.001)
    tasks[0].cancel()
    dest.gate.set()
    out = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(out[0], asyncio.CancelledError) and out[1:] == [20, 30]
    await first


async def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Coalescer(Destination().one, Destination().many, max_calls=0)


async def test_served_envelope_keeps_errors_typed_per_call() -> None:
    async def run(call: list) -> bytes:
        kind = call[0]
        if kind == "ok":
            return wire.encode({"n": call[1]})
        if kind == "rate":
            raise RateLimited("slow down", 2.5)
        if kind == "workflow":
            raise WorkflowError("tasks failed", {"a": 1}, {"b": "bad"})
        if kind == "bug":
            raise TypeError("unexpected")
        raise SessionNotFound(f"no session {call[1]!r}")

    data = wire.encode([["ok", 1], ["missing", "s1"], ["rate"], ["workflow"], ["bug"], ["ok", 2]])
    out = decode_outcomes(await serve_envelope(run, data))
    assert wire.decode(out[0]) == {"n": 1} and wire.decode(out[5]) == {"n": 2}
    assert type(out[1]) is SessionNotFound and "s1" in str(out[1])
    assert type(out[2]) is RateLimited and out[2].retry_after == 2.5
    assert type(out[3]) is WorkflowError and out[3].results == {"a": 1} and out[3].errors == {"b": "bad"}
    assert type(out[4]) is ServerError and "TypeError: unexpected" in str(out[4])


async def test_a_caller_cancelled_in_flight_is_abandoned_at_the_other_end() -> None:
    dest = Destination(delay=0.01)
    dest.gate = asyncio.Event()
    abandoned: list[tuple[str, object]] = []
    c = Coalescer(dest.one, dest.many, abandon=lambda key, item: abandoned.append((key, item)), window=0)
    first = asyncio.ensure_future(c.call("h", 0))
    await asyncio.sleep(0)
    queued = asyncio.ensure_future(c.call("h", 1))
    tasks = [asyncio.ensure_future(c.call("h", i)) for i in (2, 3)]
    await asyncio.sleep(0)
    queued.cancel()  # still queued: leaves the envelope, nothing to stop at the other end
    while not dest.enveloped():
        await asyncio.sleep(0.001)
    tasks[0].cancel()  # in flight: the other end is told to stop it
    dest.gate.set()
    out = await asyncio.gather(queued, *tasks, return_exceptions=True)
    assert isinstance(out[0], asyncio.CancelledError) and isinstance(out[1], asyncio.CancelledError)
    assert out[2] == 30 and dest.enveloped() == [[2, 3]] and abandoned == [("h", 2)]
    first.cancel()  # a lone call is cancelled by its own task: not abandoned through the hook
    await asyncio.gather(first, return_exceptions=True)
    assert abandoned == [("h", 2)]



async def test_window_follows_the_destinations_round_trip_within_bounds() -> None:
    # An envelope that takes long is worth collecting for longer (fewer, larger envelopes cost
    # both sides less per call); never past hold, never under window.
    slow, fast = Destination(delay=0.08), Destination(delay=0)
    c = Coalescer(lambda k, i: (slow if k == "slow" else fast).one(k, i),
                  lambda k, items: (slow if k == "slow" else fast).many(k, items), window=0.0002, hold=0.005)
    assert c.window_for("slow") == c.window_for("fast") == 0.0002  # nothing known yet
    for i in range(3):
        await c.call("slow", i)
        await c.call("fast", i)
    assert c.window_for("slow") == 0.005  # a quarter of 80 ms, capped
    assert 0.0002 <= c.window_for("fast") < 0.002
    # a queue of several to the slow one now waits its window, then leaves as one envelope
    first = asyncio.ensure_future(c.call("slow", 100))
    await asyncio.sleep(0)
    rest = await asyncio.gather(*(c.call("slow", i) for i in range(5)))
    assert rest == [0, 10, 20, 30, 40] and await first == 1000
    assert slow.enveloped() == [[0, 1, 2, 3, 4]]


async def test_a_failed_call_does_not_teach_the_window() -> None:
    async def failing_one(key, item):
        await asyncio.sleep(0.05)
        raise ConnectionError("host died")

    c = Coalescer(failing_one, Destination().many, window=0.0002, hold=0.005)
    with pytest.raises(ConnectionError):
        await c.call("h", 1)
    assert c.window_for("h") == 0.0002  # a dead host's timeout says nothing of its round trip
