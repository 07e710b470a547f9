"""Host counters: histograms, latency over time, and Runtime.astats() on the local runtime."""

from __future__ import annotations

import repertory
from repertory.host.stats import BOUNDS, WINDOW_S, WINDOWS, HostCounters, HostStats, LatencyHistogram


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_histogram_percentiles_are_bucket_upper_bounds():
    h = LatencyHistogram()
    assert h.percentile(0.5) is None
    for _ in range(90):
        h.record(0.001)
    for _ in range(10):
        h.record(1.0)
    p50, p99 = h.percentile(0.5), h.percentile(0.99)
    assert 0.001 <= p50 < 0.0015
    assert 1.0 <= p99 < 1.5
    h.record(10_000.0)  # past the last bound: reported as the last bound
    assert h.percentile(1.0) == BOUNDS[-1]


def test_series_keeps_one_histogram_per_window_and_forgets_old_ones():
    clock = Clock()
    c = HostCounters(clock)
    c.record_turn(0.01)
    clock.t += WINDOW_S
    c.record_turn(0.5)
    c.record_turn(0.5)
    points = c.series()
    assert [p.turns for p in points] == [1, 2]
    assert points[0].start < points[1].start
    assert points[1].p50 >= 0.5
    clock.t += WINDOW_S * WINDOWS  # the whole ring is older than its span
    assert c.series() == []
    c.record_turn(0.02)  # a slot is reused, not appended
    assert [p.turns for p in c.series()] == [1]
    assert c.turns == 4


def test_snapshot_round_trips_through_a_dict():
    c = HostCounters()
    c.record_turn(0.2)
    c.record_store(0.001)
    c.record_turn_error()
    snap = c.snapshot("host-0", resident=3, activations=4)
    again = HostStats.from_dict({**snap.to_dict(), "pid": 123})
    assert again == snap
    assert (again.turns, again.turn_errors, again.store_ops, again.resident) == (1, 1, 1, 3)


def test_local_runtime_counts_turns_and_store_latency(rt):
    s = repertory.Session("stats-1")
    s.chat("hello")
    s.chat("again")
    import asyncio

    (host,) = asyncio.run(rt.astats())
    assert host.host == "local" and host.turns == 2 and host.activations == 1
    assert host.turn_p50 is not None and host.store_ops >= 2 and host.store_p95 is not None
    assert sum(p.turns for p in host.series) == 2
    assert rt.stats()[0]["turns"] == 2  # the dict form keeps its keys
