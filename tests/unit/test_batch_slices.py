"""The batch's Slicer (repertory.batch.slices): when chains leave, and in how many calls."""

import asyncio

import pytest

from repertory.batch.slices import DEPTH, MAX_CHAINS, Slicer
from repertory.host.api import TurnReply
from repertory.host.chains import ChainResult


class Hosts:
    """Answers each slice when the test says so; records what each call carried."""

    def __init__(self):
        self.calls: list[tuple[object, list]] = []
        self.gates: list[asyncio.Future] = []
        self.fail: BaseException | None = None

    async def run_chains(self, where, chains, timeout):
        self.calls.append((where, chains))
        gate = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        await gate
        if self.fail is not None:
            raise self.fail
        return [ChainResult([TurnReply(f"re {c[0]}", {}, 2, 1)]) for c in chains]

    def answer(self, i):
        self.gates[i].set_result(None)


async def settle_all():
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_chain_leaves_at_once_and_the_rest_gather_while_the_host_is_busy():
    hosts, got = Hosts(), []
    slicer = Slicer(hosts, None, lambda p, r, e: got.append((p, r.replies[0].content if r else e)))
    slicer.add("h0", ["a"], "a")
    await settle_all()
    assert [len(c) for _, c in hosts.calls] == [1]  # alone, at the next turn of the loop
    for name in "bcd":  # read in one go: they leave together, the host has room for one more slice
        slicer.add("h0", [name], name)
    slicer.add("h1", ["x"], "x")  # another host: its own call
    await settle_all()
    assert [(w, len(c)) for w, c in hosts.calls] == [("h0", 1), ("h0", 3), ("h1", 1)]
    for name in "efg":  # h0 has DEPTH slices in flight: these wait for one to return
        slicer.add("h0", [name], name)
    await settle_all()
    assert len(hosts.calls) == 3 and DEPTH == 2
    hosts.answer(0)
    await settle_all()
    assert [(w, len(c)) for w, c in hosts.calls][3:] == [("h0", 3)] and got == [("a", "re a")]
    for i in range(1, 4):
        hosts.answer(i)
    while slicer.busy:
        await asyncio.sleep(0)
    assert sorted(p for p, _ in got) == list("abcdefgx") and (slicer.slices, slicer.chains) == (4, 8)


async def test_a_full_queue_leaves_without_waiting_and_a_failed_call_tells_every_chain():
    hosts, got = Hosts(), []
    slicer = Slicer(hosts, 5.0, lambda p, r, e: got.append((p, r, e)))
    for i in range(2 * MAX_CHAINS + 1):
        slicer.add("h0", [i], i)
    assert [len(c) for _, c in hosts.calls] == []  # nothing leaves before the loop turns...
    await settle_all()
    # ...except full queues, at once: two of MAX_CHAINS; the one left over waits for a return
    assert [len(c) for _, c in hosts.calls] == [MAX_CHAINS, MAX_CHAINS]
    hosts.fail = RuntimeError("host died")
    hosts.answer(0)
    await settle_all()
    assert [len(c) for _, c in hosts.calls] == [MAX_CHAINS, MAX_CHAINS, 1]
    hosts.answer(1)
    hosts.answer(2)
    while slicer.busy:
        await asyncio.sleep(0)
    assert len(got) == 2 * MAX_CHAINS + 1 and all(r is None and isinstance(e, RuntimeError) for _, r, e in got)


async def test_cancel_sends_nothing_more():
    hosts, got = Hosts(), []
    slicer = Slicer(hosts, None, lambda p, r, e: got.append(p))
    slicer.add("h0", ["a"], "a")
    await settle_all()
    slicer.add("h0", ["b"], "b")
    slicer.add("h0", ["c"], "c")
    await settle_all()
    slicer.add("h0", ["d"], "d")  # waits: two slices in flight
    slicer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.gather(*slicer.tasks)
    slicer.flush()
    await settle_all()
    assert len(hosts.calls) == 2 and got == [] and not slicer.tasks


async def test_a_settle_that_raises_is_kept_and_the_other_chains_are_still_told():
    hosts, got = Hosts(), []

    def settle(p, r, e):
        if p == "b":
            raise OSError("disk full")
        got.append(p)

    slicer = Slicer(hosts, None, settle)
    for name in "abc":
        slicer.add("h0", [name], name)
    await settle_all()
    hosts.answer(0)
    while slicer.busy:
        await asyncio.sleep(0)
    assert got == ["a", "c"] and isinstance(slicer.error, OSError)
