"""Group commit (stores.groups): callers of one event-loop turn share one run, each hears its own
outcome, and the first caller may run the group itself without a task."""

from __future__ import annotations

import asyncio

import pytest

from repertory.stores.groups import Group


class Runs:
    """Records the groups it ran, now (run_now) or later (run)."""

    def __init__(self, now: bool = True) -> None:
        self.now_groups: list[list[int]] = []
        self.later_groups: list[list[int]] = []
        self.now = now

    def run_now(self, items: list[int]) -> list[int | Exception] | None:
        if not self.now:
            return None
        self.now_groups.append(items)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    async def run(self, items: list[int]) -> list[int | Exception]:
        await asyncio.sleep(0.01)
        self.later_groups.append(items)
        return [i * 10 for i in items]


async def test_callers_of_one_turn_share_one_group_run_at_once():
    runs = Runs()
    group = Group(runs.run, runs.run_now)
    results = await asyncio.gather(*(group.submit(i) for i in range(6)), return_exceptions=True)
    assert runs.now_groups == [[0, 1, 2, 3, 4, 5]] and runs.later_groups == []
    assert results[0::2] == [0, 20, 40]
    assert [str(r) for r in results[1::2]] == ["odd 1", "odd 3", "odd 5"]
    assert await group.submit(8) == 80 and runs.now_groups[-1] == [8]  # idle again: a group of one


async def test_a_group_that_cannot_run_now_runs_in_a_task():
    runs = Runs(now=False)
    group = Group(runs.run, runs.run_now)
    assert await asyncio.gather(*(group.submit(i) for i in range(3))) == [0, 10, 20]
    assert runs.later_groups == [[0, 1, 2]]


async def test_a_leader_cancelled_before_it_runs_leaves_the_others_served():
    runs = Runs()
    group = Group(runs.run, runs.run_now)
    leader = asyncio.ensure_future(group.submit(0))
    others = [asyncio.ensure_future(group.submit(i)) for i in (2, 4)]
    await asyncio.sleep(0)  # everyone queued; the leader is at its one yield
    leader.cancel()
    assert await asyncio.gather(*others) == [20, 40]
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert runs.later_groups == [[0, 2, 4]]  # the leader's item still ran, as a commit would
    assert await group.submit(6) == 60


async def test_a_group_that_fails_as_a_whole_fails_every_caller():
    def broken(items: list[int]) -> list[int]:
        raise RuntimeError("the transaction failed")

    group: Group[int, int] = Group(Runs().run, broken)
    results = await asyncio.gather(*(group.submit(i) for i in range(3)), return_exceptions=True)
    assert [str(r) for r in results] == ["the transaction failed"] * 3
    assert await Group(Runs().run, Runs().run_now).submit(2) == 20
