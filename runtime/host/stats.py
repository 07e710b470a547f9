"""A host's counters: turns, latencies and lifecycle events, cheap enough to record on every turn.

Latencies go into fixed log-spaced histograms (no allocation per sample: one bisect, two
increments). Besides the totals, a ring of :data:`WINDOWS` windows of :data:`WINDOW_S` seconds
keeps one turn-latency histogram each, so percentiles *over time* can be read without storing
samples. :meth:`HostCounters.snapshot` returns a plain :class:`HostStats` dataclass: what
``Runtime.astats()`` returns, what the inspector plots, and what an exporter would read.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["BOUNDS", "WINDOWS", "WINDOW_S", "HostCounters", "HostStats", "LatencyHistogram", "LatencyPoint"]

# Bucket upper bounds in seconds: 100 µs up to ~12 minutes, each 1.5 times the previous one,
# so a percentile is read to within 50 %.
BOUNDS: tuple[float, ...] = tuple(0.0001 * 1.5 ** i for i in range(40))
WINDOW_S = 10.0
WINDOWS = 60  # ten minutes of history


class LatencyHistogram:
    """Counts of samples per bucket of :data:`BOUNDS` (one overflow bucket past the last)."""

    __slots__ = ("counts", "n", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.n = 0
        self.total = 0.0

    def record(self, seconds: float) -> None:
        self.counts[bisect_left(BOUNDS, seconds)] += 1
        self.n += 1
        self.total += seconds

    def reset(self) -> None:
        for i in range(len(self.counts)):
            self.counts[i] = 0
        self.n = 0
        self.total = 0.0

    def percentile(self, q: float) -> float | None:
        """The upper bound of the bucket holding the ``q`` quantile (0 < q <= 1); None if empty."""
        if self.n == 0:
            return None
        rank = max(1, round(q * self.n))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return BOUNDS[min(i, len(BOUNDS) - 1)]
        return BOUNDS[-1]


@dataclass(frozen=True, slots=True)
class LatencyPoint:
    """Turn latency over one window: its start (unix seconds), turns, and percentiles (seconds)."""

    start: float
    turns: int
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class HostStats:
    """One host's counters at one moment (latencies in seconds; None before the first sample)."""

    host: str
    resident: int = 0
    activations: int = 0
    passivations: int = 0
    turns: int = 0
    turn_errors: int = 0
    turn_p50: float | None = None
    turn_p95: float | None = None
    turn_p99: float | None = None
    store_ops: int = 0
    store_p50: float | None = None
    store_p95: float | None = None
    store_p99: float | None = None
    cas_retries: int = 0
    lease_waits: int = 0
    repeated_model_calls: int = 0
    turns_cancelled: int = 0  # turns a busy policy interrupted or rolled back (host.busy)
    turns_in_mailboxes: int = 0  # turns running or waiting in their sessions' mailboxes now
    redirects: int = 0  # calls sent on to the host holding the session's activation lease
    takeovers: int = 0  # activation leases taken from a dead incarnation of this host
    # prompts an agent replica no longer held (repertory.state.prompt), sent again whole: one that
    # grows with the turns says Settings.prompt_cache_bytes is too small for the sessions active
    prompt_resends: int = 0
    series: list[LatencyPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostStats:
        """From :meth:`to_dict` (keys it does not know, such as an actor's ``pid``, are left out)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["series"] = [p if isinstance(p, LatencyPoint) else LatencyPoint(**p) for p in values.get("series", [])]
        return cls(**values)


class HostCounters:
    """The counters of one host; see the module docstring. Not thread-safe: one event loop records."""

    def __init__(self, clock=time.time, sink: Any = None) -> None:
        self._clock = clock
        self.sink = sink  # a repertory.host.metrics.HostMetrics, told of each turn and store write
        self.turns = 0
        self.turn_errors = 0
        self.turn_latency = LatencyHistogram()
        self.store_latency = LatencyHistogram()
        self._ring = [LatencyHistogram() for _ in range(WINDOWS)]
        self._ring_window = [-1] * WINDOWS  # which window each slot holds

    def record_turn(self, seconds: float) -> None:
        if self.sink is not None:
            self.sink.turn(seconds)
        self.turns += 1
        self.turn_latency.record(seconds)
        window = int(self._clock() // WINDOW_S)
        slot = window % WINDOWS
        if self._ring_window[slot] != window:
            self._ring[slot].reset()
            self._ring_window[slot] = window
        self._ring[slot].record(seconds)

    def record_turn_error(self, kind: str = "Exception") -> None:
        """A failed turn; ``kind``: its error's class name."""
        self.turn_errors += 1
        if self.sink is not None:
            self.sink.turn_error(kind)

    def record_store(self, seconds: float) -> None:
        self.store_latency.record(seconds)
        if self.sink is not None:
            self.sink.store(seconds)

    def series(self) -> list[LatencyPoint]:
        """Windows of the last ``WINDOWS * WINDOW_S`` seconds that saw turns, oldest first."""
        now = int(self._clock() // WINDOW_S)
        points = []
        for slot in sorted(range(WINDOWS), key=lambda s: self._ring_window[s]):
            w, h = self._ring_window[slot], self._ring[slot]
            if w < 0 or now - w >= WINDOWS or h.n == 0:
                continue
            points.append(LatencyPoint(w * WINDOW_S, h.n, h.percentile(0.5), h.percentile(0.95), h.percentile(0.99)))
        return points

    def snapshot(self, host: str, **counts: int) -> HostStats:
        """The counters as a :class:`HostStats`; ``counts`` are the host's own (resident, ...)."""
        t, s = self.turn_latency, self.store_latency
        return HostStats(host, turns=self.turns, turn_errors=self.turn_errors, turn_p50=t.percentile(0.5),
                         turn_p95=t.percentile(0.95), turn_p99=t.percentile(0.99), store_ops=s.n,
                         store_p50=s.percentile(0.5), store_p95=s.percentile(0.95), store_p99=s.percentile(0.99),
                         series=self.series(), **counts)
