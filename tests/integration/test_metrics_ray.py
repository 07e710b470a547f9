"""Metrics on the default (Ray) runtime: a scrape of the server's /metrics after 100 turns over
two hosts shows 100 turns, and `repertory stats`'s table reads the hosts' own counters."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from repertory import Session
from repertory.server import ServerConfig, serve_in_thread
from repertory.tokens import Keyring

pytestmark = pytest.mark.ray

ADMIN = "metrics-admin-key-" + "w" * 16


def test_a_scrape_after_100_turns_on_two_hosts_shows_100_turns(runtime):
    async def chats() -> None:
        sessions = [Session(f"m{i}") for i in range(10)]  # spread over both hosts
        for _ in range(10):
            await asyncio.gather(*(s.achat("hello") for s in sessions))

    asyncio.run(chats())
    handle = serve_in_thread(ServerConfig(port=0, secret_keys=Keyring({"k1": "s" * 32}), admin_key=ADMIN,
                                          rate_limit=None))
    try:
        base = handle.url.removesuffix("/agent")
        resp = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    finally:
        handle.stop()
    assert resp.status_code == 200
    turns = {s.labels["host"]: s.value for fam in text_string_to_metric_families(resp.text)
             for s in fam.samples if s.name == "repertory_turns_total"}
    assert sum(turns.values()) == 100 and set(turns) == {"host-0", "host-1"}
    assert all(v > 0 for v in turns.values())

    from repertory._sync import run_sync
    from repertory.cli.stats import _rows_from_stats

    rows = _rows_from_stats(run_sync(runtime.astats))
    assert sum(r["turns_total"] for r in rows.values()) == 100
    assert all("turn p50" in r for r in rows.values())
