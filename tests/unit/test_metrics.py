"""Prometheus metrics move with the work: a scrape after 100 turns shows 100 turns, their
latencies, tokens and failures by type; `repertory stats` prints them (local runtime; the Ray
side is in tests/integration/test_metrics_ray.py)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from repertory import Agent, ModelError, Session
from repertory.host.metrics import HostMetrics, PrometheusMetrics, registry, stats_exposition
from repertory.host.stats import HostStats
from repertory.server import ServerConfig, serve_in_thread
from repertory.tokens import Keyring

RING = Keyring({"k1": "metrics-secret-" + "q" * 24})
ADMIN = "metrics-admin-key-" + "w" * 16


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.fixture
def server(rt):
    handle = serve_in_thread(ServerConfig(port=0, secret_keys=RING, admin_key=ADMIN, rate_limit=None))
    yield handle.url.removesuffix("/agent")
    handle.stop()


def test_a_scrape_after_100_turns_shows_100_turns(server, monkeypatch):
    s = Session("counted")
    for i in range(100):
        s.chat(f"message {i}")
    broken = Session("broken", agent=Agent("Down", model="openai/x", api_base="http://127.0.0.1:9/v1",
                                           api_key="k", num_retries=0))
    with pytest.raises(ModelError):
        broken.chat("hello?")
    assert httpx.get(f"{server}/metrics").status_code == 401  # the admin key guards it
    resp = httpx.get(f"{server}/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    m = samples(resp.text)
    host = (("host", "local"),)
    assert m[("repertory_turns_total", host)] == 100
    assert m[("repertory_turn_latency_seconds_count", host)] == 100
    assert m[("repertory_turn_latency_seconds_bucket", (("host", "local"), ("le", "+Inf")))] == 100
    assert m[("repertory_turn_errors_total", (("host", "local"), ("type", "ModelError")))] == 1
    assert m[("repertory_model_latency_seconds_count", host)] == 100
    assert m[("repertory_tokens_total", (("direction", "in"), ("host", "local")))] > 0
    assert m[("repertory_tokens_total", (("direction", "out"), ("host", "local")))] > 0
    assert m[("repertory_store_latency_seconds_count", host)] >= 100
    assert m[("repertory_activations_total", host)] >= 2
    assert m[("repertory_resident_sessions", host)] == 2
    assert m[("repertory_turns_in_progress", host)] == 0

    monkeypatch.setenv("REPERTORY_ADMIN_KEY", ADMIN)
    from repertory.cli import app
    from repertory.cli.common import console

    monkeypatch.setattr(console, "width", 200)
    out = CliRunner().invoke(app, ["stats", "--url", server])
    assert out.exit_code == 0, out.output
    row = next(line for line in out.output.splitlines() if " local " in line).split("│")
    assert [c.strip() for c in row[2:4]] == ["100", "1"]
    assert row[10].strip() == "0"  # prompt resends: none on the local runtime
    assert float(row[11]) > 0  # turn p50 (a bucket bound, ms), after the prompt resends column


def test_stats_needs_the_admin_key_and_one_target(server, monkeypatch):
    from repertory.cli import app

    monkeypatch.setenv("REPERTORY_ADMIN_KEY", "wrong")
    out = CliRunner().invoke(app, ["stats", "--url", server])
    assert out.exit_code != 0 and "admin key" in out.output
    out = CliRunner().invoke(app, ["stats"])
    assert out.exit_code != 0 and "--url" in out.output


def test_two_registries_never_mix_and_counts_publish_as_deltas():
    a, b = registry(), registry()
    ma, mb = PrometheusMetrics("h", a), PrometheusMetrics("h", b)
    ma.turn(0.01)
    stats = HostStats("h", activations=3, passivations=1)
    ma.sync(stats, resident=2, in_progress=0)
    ma.sync(stats, resident=2, in_progress=0)  # the same totals again add nothing
    ma.sync(HostStats("h", activations=5, passivations=1), resident=4, in_progress=1)
    from prometheus_client import generate_latest

    got, other = samples(generate_latest(a).decode()), samples(generate_latest(b).decode())
    assert got[("repertory_activations_total", (("host", "h"),))] == 5
    assert got[("repertory_resident_sessions", (("host", "h"),))] == 4
    assert got[("repertory_turns_total", (("host", "h"),))] == 1
    assert other[("repertory_turns_total", (("host", "h"),))] == 0
    mb.turn(0.01)  # a second sink on the same registry shares its families
    PrometheusMetrics("h2", b).turn(0.02)
    assert samples(generate_latest(b).decode())[("repertory_turns_total", (("host", "h2"),))] == 1
    HostMetrics().sync(stats, 1, 1)  # metrics off: nothing to do, nothing raised


def test_the_ray_shape_reads_the_hosts_totals():
    text = stats_exposition([HostStats("host-0", turns=7, turn_errors=1, resident=3, turn_p50=0.002, turn_p99=0.01,
                                       redirects=4, takeovers=1, prompt_resends=2),
                             HostStats("host-1", turns=5)]).decode()
    m = samples(text)
    assert m[("repertory_prompt_resends_total", (("host", "host-0"),))] == 2
    assert m[("repertory_redirects_total", (("host", "host-0"),))] == 4
    assert m[("repertory_takeovers_total", (("host", "host-0"),))] == 1
    assert m[("repertory_turns_total", (("host", "host-0"),))] == 7
    assert m[("repertory_turns_total", (("host", "host-1"),))] == 5
    assert m[("repertory_turn_latency_seconds_quantile", (("host", "host-0"), ("quantile", "0.50")))] == 0.002
    assert m[("repertory_resident_sessions", (("host", "host-0"),))] == 3
