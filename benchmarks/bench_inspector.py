#!/usr/bin/env python
"""The session inspector's list over 100k sessions, and the cost of the host counters.

a. List pages: 100,000 one-message sessions written straight to a SQLite store (as the unit
   test does with 20,000), then, interleaved in rounds: the store's own listing of every
   session (the floor the inspector's list builds on) and inspector pages (first page, a
   search, the last page, an agent filter) through ``session_query.page``. Each figure is
   reported with its ratio to the floor measured in the same rounds.
b. Host counters: ``HostCounters.record_turn`` (a bisect, the ring's window check, a few
   increments) against a same-run floor of a plain Python method call that adds to a counter.

Run:  .venv/bin/python benchmarks/bench_inspector.py [--quick]
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import console, emit_json, load_info  # noqa: E402

from repertory.agents.agent import Agent  # noqa: E402
from repertory.host.stats import HostCounters  # noqa: E402
from repertory.server.session_query import SessionQuery, page  # noqa: E402
from repertory.state.session_state import SessionState  # noqa: E402
from repertory.stores import SQLiteStore  # noqa: E402


async def fill(store: SQLiteStore, n: int) -> None:
    support, sales = Agent("support").to_dict(), Agent("sales").to_dict()

    async def one(i: int) -> None:
        st = SessionState.new(f"u{i % 100}/s{i:06d}", f"s{i:06d}", f"u{i % 100}", None)
        agents = {"agent": support if i % 1000 == 0 else sales, "agents": {}}
        write, _, _ = st.append_write([{"role": "user", "content": f"hello {i}", "timestamp": time.time()}],
                                      agents=agents)
        await store.commit(write)

    for start in range(0, n, 5000):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 5000))))


async def listing(n: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "state.db")
        t0 = time.perf_counter()
        await fill(store, n)
        console.print(f"wrote {n} sessions in {time.perf_counter() - t0:.1f} s")
        host = lambda key: "host-0"  # noqa: E731
        queries = {"first_page": SessionQuery(limit=50), "search": SessionQuery(q="s0999", limit=50),
                   "last_page": SessionQuery(offset=n - 50, limit=50),
                   "agent_filter": SessionQuery(agent="support", limit=50)}
        times: dict[str, list[float]] = {"floor_list_all": [], **{k: [] for k in queries}}
        for _ in range(rounds):
            t = time.perf_counter()
            infos = await store.list_sessions(prefix="")
            times["floor_list_all"].append(time.perf_counter() - t)
            assert len(infos) == n
            for name, q in queries.items():
                t = time.perf_counter()
                infos = await store.list_sessions(prefix="")
                total, rows, _ = await page(infos, q, time.time(), host, store.load)
                times[name].append(time.perf_counter() - t)
                assert rows, name
        await store.close()
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return {**{f"{k}_ms": round(v, 1) for k, v in med.items()},
            **{f"{k}_vs_floor": round(v / med["floor_list_all"], 2) for k, v in med.items() if k != "floor_list_all"}}


class _Floor:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def record(self, seconds: float) -> None:
        self.n += 1


def counters(calls: int) -> dict[str, float]:
    c, floor = HostCounters(), _Floor()
    samples = [0.0001 * (1 + i % 997) for i in range(1000)]
    best = {"floor": float("inf"), "record_turn": float("inf")}
    for _ in range(5):  # interleaved: both see the same machine load
        t = time.perf_counter()
        for i in range(calls):
            floor.record(samples[i % 1000])
        best["floor"] = min(best["floor"], time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(calls):
            c.record_turn(samples[i % 1000])
        best["record_turn"] = min(best["record_turn"], time.perf_counter() - t)
    ns = {k: v / calls * 1e9 for k, v in best.items()}
    return {"floor_call_ns": round(ns["floor"], 1), "record_turn_ns": round(ns["record_turn"], 1),
            "record_turn_vs_floor": round(ns["record_turn"] / ns["floor"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10,000 sessions instead of 100,000")
    args = parser.parse_args()
    n = 10_000 if args.quick else 100_000
    result = {"machine": load_info(), "sessions": n, **asyncio.run(listing(n, 3 if args.quick else 5)),
              **counters(200_000)}
    for k, v in result.items():
        if k != "machine":
            console.print(f"{k:>28}: {v}")
    emit_json("inspector", result)


if __name__ == "__main__":
    main()
