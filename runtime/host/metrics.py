"""Prometheus metrics of the session hosts: through ``ray.util.metrics`` on Ray, through
``prometheus_client`` without it.

A host records what happens as it happens (:class:`HostMetrics`): each turn's latency and
outcome (errors by type), each store write's latency, each model reply's latency and tokens.
Counts the host keeps anyway (activations, passivations, compare-and-set conflicts, lease
waits, cancelled turns), its resident sessions and its turns in progress are published by
:meth:`HostMetrics.sync` (after each turn, at most once a second on Ray, and every few seconds
on an idle host), so the hot paths gain no extra bookkeeping; on Ray the turn and token
counters are too (each Ray metric call costs a few µs of a turn), the latencies are not.

On Ray, custom metrics are exported by each node's metrics agent (``ray start
--metrics-export-port``) with Ray's ``ray_`` prefix: ``ray_repertory_turns_total``. Without
Ray, :func:`registry` holds them (one ``CollectorRegistry`` per runtime, never the global one)
and the HTTP server serves them at ``/metrics``.
"""

from __future__ import annotations

from typing import Any

from repertory.host.stats import HostStats

__all__ = ["LATENCY_BUCKETS", "SYNCED", "HostMetrics", "PrometheusMetrics", "RayMetrics", "registry", "stats_exposition"]

# Seconds: a null-model turn is ~1-5 ms, a real model call 0.3-30 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# HostStats counts published as counters (name, help).
SYNCED = (("activations", "Sessions activated (loaded into a host)"),
           ("passivations", "Sessions passivated (dropped from a host's memory)"),
           ("cas_retries", "Compare-and-set conflicts retried"),
           ("lease_waits", "Waits for another runtime's lease on a session"),
           ("turns_cancelled", "Turns cancelled by a busy-session policy"),
           ("redirects", "Calls sent on to the host holding a session's activation lease"),
           ("takeovers", "Activation leases taken from a dead incarnation of the same host"),
           ("prompt_resends", "Prompts an agent replica no longer held, sent again whole"))


class HostMetrics:
    """What a host reports; this base reports nothing (metrics off)."""

    def turn(self, seconds: float) -> None:
        """A turn acknowledged after ``seconds``."""

    def turn_error(self, kind: str) -> None:
        """A turn that failed with the error class ``kind``."""

    def store(self, seconds: float) -> None:
        """A store write that took ``seconds``."""

    def model(self, seconds: float | None, tokens_in: int, tokens_out: int) -> None:
        """A model reply: its latency and tokens."""

    def sync(self, counts: HostStats | Any, resident: int, in_progress: int) -> None:
        """Publish the host's own counts: ``counts`` has the attributes of :data:`SYNCED`
        (a :class:`HostStats`, or the host itself), ``resident`` sessions in memory,
        ``in_progress`` turns running or waiting."""


class _Published(HostMetrics):
    """Shared by both backends: counters published as deltas of the host's totals."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._seen: dict[str, int] = {}

    def _counter_add(self, name: str, value: float) -> None:
        raise NotImplementedError

    def _gauge_set(self, name: str, value: float) -> None:
        raise NotImplementedError

    def sync(self, counts: HostStats | Any, resident: int, in_progress: int) -> None:
        for name, _ in SYNCED:
            total = getattr(counts, name)
            delta = total - self._seen.get(name, 0)
            if delta > 0:
                self._counter_add(name, delta)
                self._seen[name] = total
        self._gauge_set("resident_sessions", resident)
        self._gauge_set("turns_in_progress", in_progress)


class PrometheusMetrics(_Published):
    """``prometheus_client`` metrics labelled with the host, in ``registry``."""

    def __init__(self, host: str, reg: Any) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        super().__init__(host)
        m = _families(reg, Counter, Gauge, Histogram)
        self._turns = m["turns"].labels(host)
        self._errors = m["turn_errors"]
        self._turn_latency = m["turn_latency_seconds"].labels(host)
        self._store_latency = m["store_latency_seconds"].labels(host)
        self._model_latency = m["model_latency_seconds"].labels(host)
        self._tokens = m["tokens"]
        self._m = m

    def turn(self, seconds: float) -> None:
        self._turns.inc()
        self._turn_latency.observe(seconds)

    def turn_error(self, kind: str) -> None:
        self._errors.labels(self.host, kind).inc()

    def store(self, seconds: float) -> None:
        self._store_latency.observe(seconds)

    def model(self, seconds: float | None, tokens_in: int, tokens_out: int) -> None:
        if seconds is not None:
            self._model_latency.observe(seconds)
        if tokens_in:
            self._tokens.labels(self.host, "in").inc(tokens_in)
        if tokens_out:
            self._tokens.labels(self.host, "out").inc(tokens_out)

    def _counter_add(self, name: str, value: float) -> None:
        self._m[name].labels(self.host).inc(value)

    def _gauge_set(self, name: str, value: float) -> None:
        self._m[name].labels(self.host).set(value)


def _families(reg: Any, Counter: Any, Gauge: Any, Histogram: Any) -> dict[str, Any]:
    # Kept on the registry: every host of a runtime shares its families, two runtimes never do.
    fams = getattr(reg, "_repertory_families", None)
    if fams is None:
        p = "repertory_"
        fams = {
            "turns": Counter(p + "turns", "Turns acknowledged", ["host"], registry=reg),
            "turn_errors": Counter(p + "turn_errors", "Turns that failed, by error type", ["host", "type"],
                                   registry=reg),
            "turn_latency_seconds": Histogram(p + "turn_latency_seconds", "Turn latency, message to "
                                              "acknowledgement", ["host"], buckets=LATENCY_BUCKETS, registry=reg),
            "store_latency_seconds": Histogram(p + "store_latency_seconds", "Store write latency", ["host"],
                                               buckets=LATENCY_BUCKETS, registry=reg),
            "model_latency_seconds": Histogram(p + "model_latency_seconds", "Model call latency", ["host"],
                                               buckets=LATENCY_BUCKETS, registry=reg),
            "tokens": Counter(p + "tokens", "Model tokens", ["host", "direction"], registry=reg),
            "resident_sessions": Gauge(p + "resident_sessions", "Sessions in a host's memory", ["host"],
                                       registry=reg),
            "turns_in_progress": Gauge(p + "turns_in_progress", "Turns running or waiting in a host",
                                       ["host"], registry=reg),
        }
        for name, doc in SYNCED:
            fams[name] = Counter(p + name, doc, ["host"], registry=reg)
        reg._repertory_families = fams
    return fams


def registry() -> Any:
    """A new ``prometheus_client`` registry (one per runtime: two runtimes never mix counts)."""
    from prometheus_client import CollectorRegistry

    return CollectorRegistry(auto_describe=True)


class RayMetrics(_Published):
    """``ray.util.metrics`` in a host actor: exported by its node's metrics agent."""

    def __init__(self, host: str) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram

        super().__init__(host)
        p, tags = "repertory_", ("host",)
        self._c = {name: Counter(p + name, doc, tag_keys=tags) for name, doc in SYNCED}
        self._turns = Counter(p + "turns", "Turns acknowledged", tag_keys=tags)
        self._errors = Counter(p + "turn_errors", "Turns that failed, by error type", tag_keys=("host", "type"))
        self._tokens = Counter(p + "tokens", "Model tokens", tag_keys=("host", "direction"))
        h = {name: Histogram(p + name, doc, boundaries=list(LATENCY_BUCKETS), tag_keys=tags)
             for name, doc in (("turn_latency_seconds", "Turn latency, message to acknowledgement"),
                               ("store_latency_seconds", "Store write latency"),
                               ("model_latency_seconds", "Model call latency"))}
        self._h = h
        self._g = {name: Gauge(p + name, doc, tag_keys=tags)
                   for name, doc in (("resident_sessions", "Sessions in a host's memory"),
                                     ("turns_in_progress", "Turns running or waiting in a host"))}
        self._tags = {"host": host}
        for metric in [*self._c.values(), self._turns, *h.values(), *self._g.values()]:
            metric.set_default_tags(self._tags)
        # Counted here and added at each sync: each Ray metric call costs a few µs of a turn.
        self._unsent_turns = 0
        self._unsent_tokens = {"in": 0, "out": 0}

    def turn(self, seconds: float) -> None:
        self._unsent_turns += 1
        self._h["turn_latency_seconds"].observe(seconds)

    def turn_error(self, kind: str) -> None:
        self._errors.inc(tags={"host": self.host, "type": kind})

    def store(self, seconds: float) -> None:
        self._h["store_latency_seconds"].observe(seconds)

    def model(self, seconds: float | None, tokens_in: int, tokens_out: int) -> None:
        if seconds is not None:
            self._h["model_latency_seconds"].observe(seconds)
        self._unsent_tokens["in"] += tokens_in
        self._unsent_tokens["out"] += tokens_out

    def sync(self, counts: HostStats | Any, resident: int, in_progress: int) -> None:
        super().sync(counts, resident, in_progress)
        if self._unsent_turns:
            self._turns.inc(self._unsent_turns)
            self._unsent_turns = 0
        for direction, n in self._unsent_tokens.items():
            if n:
                self._tokens.inc(n, tags={"host": self.host, "direction": direction})
                self._unsent_tokens[direction] = 0

    def _counter_add(self, name: str, value: float) -> None:
        self._c[name].inc(value)

    def _gauge_set(self, name: str, value: float) -> None:
        self._g[name].set(value)


def stats_exposition(stats: list[HostStats]) -> bytes:
    """The hosts' :class:`HostStats` in the Prometheus text format: what the server's
    ``/metrics`` answers on Ray, where each host's own metrics live in its actor (and reach
    Prometheus through the node's metrics agent). Counters are the hosts' totals; latencies
    are the quantiles the hosts keep (a summary without sum and count)."""
    from prometheus_client import generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class _Snapshot:
        def collect(self):  # noqa: ANN202 (prometheus_client's collector protocol)
            turns = CounterMetricFamily("repertory_turns", "Turns acknowledged", labels=["host"])
            errors = CounterMetricFamily("repertory_turn_errors", "Turns that failed", labels=["host"])
            synced = {name: CounterMetricFamily("repertory_" + name, doc, labels=["host"]) for name, doc in SYNCED}
            resident = GaugeMetricFamily("repertory_resident_sessions", "Sessions in a host's memory",
                                         labels=["host"])
            latency = {what: GaugeMetricFamily(f"repertory_{what}_latency_seconds_quantile",
                                               f"{what.capitalize()} latency quantiles kept by the host",
                                               labels=["host", "quantile"]) for what in ("turn", "store")}
            for st in stats:
                turns.add_metric([st.host], st.turns)
                errors.add_metric([st.host], st.turn_errors)
                for name, fam in synced.items():
                    fam.add_metric([st.host], getattr(st, name))
                resident.add_metric([st.host], st.resident)
                for what, fam in latency.items():
                    for q in ("p50", "p95", "p99"):
                        value = getattr(st, f"{what}_{q}")
                        if value is not None:
                            fam.add_metric([st.host, f"0.{q[1:]}"], value)
            yield from (turns, errors, *synced.values(), resident, *latency.values())

    reg = registry()
    reg.register(_Snapshot())
    return generate_latest(reg)
