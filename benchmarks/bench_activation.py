#!/usr/bin/env python
"""What single activation (host.activation) costs, against hosts without it in the same run.

HostCore + LocalAgentPool over SQLite (a fresh file) and Redis (a private key prefix, skipped
if no Redis answers on 127.0.0.1:6379), an instant model client, one host with activation
leases and one without on the same store:

a. a turn on a resident session (the common case: no lease round trip expected);
b. the first message of a fresh session (activation: one lease round trip expected).

Settings take turns in blocks, rotating the order, so both see the same load.
Run:  .venv/bin/python benchmarks/bench_activation.py [--rounds 8]
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ON_OFF_COLUMNS, console, emit_json, load_info, local_redis_url, on_off_row, summary, table  # noqa: E402

BLOCK = 50


class InstantModel:
    """Benchmark instrument: replies at once."""

    async def complete(self, model: str, messages: list[dict], *, tools: Any = None, **options: Any) -> Any:
        from repertory.agents.model_client import ModelReply

        return ModelReply({"role": "assistant", "content": "ok"}, {"total_tokens": 1})


async def _run(store_url: str, rounds: int) -> dict[str, Any]:
    from repertory.agents.agent import Agent, AgentCore
    from repertory.config import Settings
    from repertory.host.activation import Activation, Holder
    from repertory.host.api import TurnRequest
    from repertory.host.core import HostCore
    from repertory.ids import SessionRef
    from repertory.runtimes.local import LocalAgentPool
    from repertory.stores.factory import open_store

    store = open_store(store_url)
    agent = Agent("Bench")
    pool = LocalAgentPool()
    pool.cores[agent.key] = AgentCore(agent, InstantModel())
    settings = Settings(store="memory://", max_resident=100_000)
    hosts = {True: HostCore(store, pool, settings, name="host-on",
                            activation=Activation(store, Holder("bench", "host-on", "1"), settings.lease_ttl)),
             False: HostCore(store, pool, settings, name="host-off")}
    resident = {on: SessionRef(f"bench-{on}-{uuid.uuid4().hex[:6]}") for on in hosts}
    turn_lat: dict[bool, list[float]] = {True: [], False: []}
    first_lat: dict[bool, list[float]] = {True: [], False: []}

    def req(ref: SessionRef, i: int) -> TurnRequest:
        return TurnRequest(ref=ref, agent_key=agent.key, content=f"t{i}", turn_id=uuid.uuid4().hex)

    for on, host in hosts.items():  # warm-up
        for i in range(10):
            await host.turn(req(resident[on], i))
    for r in range(rounds):
        for on in ((True, False) if r % 2 == 0 else (False, True)):
            host = hosts[on]
            for i in range(BLOCK):
                t0 = time.perf_counter()
                await host.turn(req(resident[on], i))
                turn_lat[on].append(time.perf_counter() - t0)
            for i in range(BLOCK // 5):
                t0 = time.perf_counter()
                await host.turn(req(SessionRef(f"fresh-{on}-{uuid.uuid4().hex[:8]}"), i))
                first_lat[on].append(time.perf_counter() - t0)
    for host in hosts.values():
        await host.close()
    await store.close()
    return {"turn": {"on": summary(turn_lat[True]), "off": summary(turn_lat[False])},
            "first": {"on": summary(first_lat[True]), "off": summary(first_lat[False])}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    from repertory.logs import configure_logging

    configure_logging()
    results: dict[str, Any] = {"load": load_info(), "block": BLOCK, "rounds": args.rounds}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        if (url := local_redis_url("bench-act")) is not None:
            cases.append(("Redis", url))
        for name, url in cases:
            res = results[name] = asyncio.run(_run(url, args.rounds))
            if url.startswith("redis"):
                import redis

                client = redis.Redis(host="127.0.0.1", port=6379)
                for key in client.scan_iter(match=f"{url.split('prefix=')[1]}:*", count=1000):
                    client.delete(key)
            for what, label in (("turn", "turn, resident session"), ("first", "first message, fresh session")):
                rows.append(on_off_row(f"{name}: {label}", res[what]))
    table("HostCore turns without and with activation leases (same run, interleaved blocks)",
          ["case", *ON_OFF_COLUMNS], rows,
          caption=f"load {results['load']['loadavg_1m']} on {results['load']['cpus']} CPUs")
    console.print()
    emit_json("activation", results)


if __name__ == "__main__":
    main()
