"""Sessions served: one host serves N distinct stored sessions under a resident cap (issue 12, item 3).

What runs, in this process (run it on its own, so that RSS is the host's):

  1. N sessions are stored in a fresh SQLite file (two messages each), untimed.
  2. Baseline, same run: a second host's ``cap`` sessions stay resident (no activation); a slice
     of their turns runs before each slice of served sessions, so both see the same load.
  3. Served: every stored session in turn is activated (loaded from the store), answers one
     turn (null model client, written before acknowledged) and is passivated by the cap
     (``max_resident``); ``--concurrency`` turns in flight. RSS (/proc) and the host's
     per-session structures are sampled as sessions are served.

Resident memory must stay bounded by the cap: RSS at the end against RSS after the first
tenth, and the host's slot count never above the cap.

Run:  .venv/bin/python benchmarks/bench_runtime.py --sessions-served N [--resident-cap C]
      (or: repertory bench runtime --sessions-served N)
"""

from __future__ import annotations

import asyncio
import gc
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from repertory.bench.common import Figure, console, figure, fmt_num, load_info, rss_bytes, table

__all__ = ["host_structure_sizes", "run", "sessions_served", "store_sessions"]

perf = time.perf_counter
TEXT = "Note {i}: the weather report says light rain this afternoon, clearing later."


def host_structure_sizes(host: Any) -> dict[str, int]:
    """Sizes of every container a host (and its counters, metrics, store and agent pool) holds:
    whatever grows with the sessions it served shows here."""
    sizes: dict[str, int] = {}
    parts = {"host": host, "counters": host.counters, "metrics": host.metrics, "store": host.store,
             "agents": host.agents}
    for name, obj in parts.items():
        for attr, value in list(vars(obj).items()) if hasattr(obj, "__dict__") else ():
            if isinstance(value, (dict, list, set, tuple, frozenset)):
                sizes[f"{name}.{attr}"] = len(value)
    sizes["host.slot_turns"] = sum(len(slot.turns) for slot in host._slots.values())
    return sizes


async def store_sessions(store: Any, keys: list[str], chunk: int = 500) -> None:
    """Store a two-message session under each key, ``chunk`` commits at a time (group commits)."""
    from repertory.state.session_state import SessionState

    for i in range(0, len(keys), chunk):
        writes = []
        for key in keys[i:i + chunk]:
            st = SessionState.new(key, key, None)
            write, _, _ = st.append_write([{"role": "user", "content": TEXT.format(i=0)},
                                           {"role": "assistant", "content": "[null model] ok"}])
            writes.append(write)
        await asyncio.gather(*(store.commit(w) for w in writes))  # one group commit per chunk


async def _serve(n: int, cap: int, concurrency: int, db: Path, samples: int) -> dict[str, Any]:
    from repertory.agents.agent import Agent
    from repertory.config import Settings
    from repertory.host.api import TurnRequest
    from repertory.host.core import HostCore
    from repertory.ids import SessionRef
    from repertory.runtimes.local import LocalAgentPool
    from repertory.stores import SQLiteStore

    store = SQLiteStore(db)
    agent = Agent("Served", "You are terse.", model="repertory/null")
    pool = LocalAgentPool()
    pool.add(agent)
    host = HostCore(store, pool, Settings(store=f"sqlite:///{db}", max_resident=cap, idle_timeout=0))
    # The same-run baseline: a second host whose `cap` sessions stay resident (no activation),
    # given a slice of turns before each slice of served sessions, so both see the same load.
    resident = HostCore(store, pool, Settings(store=f"sqlite:///{db}", max_resident=cap, idle_timeout=0),
                        name="resident")
    keys = [f"served-{i:08d}" for i in range(n)]
    warm = [f"resident-{i:08d}" for i in range(min(cap, n))]

    def turn(on: Any, key: str, i: int) -> Any:
        return on.turn(TurnRequest(ref=SessionRef(key), agent_key=agent.key, content=TEXT.format(i=i),
                                   turn_id=uuid.uuid4().hex))

    t0 = perf()
    await store_sessions(store, keys + warm)
    build_s = perf() - t0
    gc.collect()
    rss_start = rss_bytes()

    async def drive(on: Any, batch: list[str], k: int) -> float:
        started = perf()
        it = iter(batch)

        async def worker() -> None:
            for key in it:
                await turn(on, key, k)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(batch)))))
        return perf() - started

    await drive(resident, warm, 1)  # activated once, untimed
    step = max(n // samples, 1)
    base_each = max(min(step, 2000), len(warm))
    base_s, base_done = 0.0, 0
    activations0 = host.activations
    series = []
    max_slots = 0
    served_s = 0.0
    for i in range(0, n, step):
        for r in range(0, base_each, len(warm)):
            base_s += await drive(resident, warm, 2 + (i + r) // len(warm))
            base_done += len(warm)
        for key in warm:  # untimed: their histories stay two messages long, so RSS shows only the served ones
            await resident.truncate(SessionRef(key), 2)
        served_s += await drive(host, keys[i:i + step], 1)
        max_slots = max(max_slots, len(host._slots))
        series.append({"served": min(i + step, n), "elapsed_s": served_s, "rss_bytes": rss_bytes(),
                       "resident": len(host._slots)})
        p = series[-1]  # progress, so that a long run can be read while it goes
        console.print(f"served {p['served']:,} in {served_s:.1f} s ({p['served'] / served_s:,.0f}/s), RSS "
                      f"{p['rss_bytes'] / 2**20:,.0f} MiB, resident {p['resident']:,}; resident host "
                      f"{base_done / base_s:,.0f} turns/s; load {os.getloadavg()[0]:.1f}")
    base_rate = base_done / base_s
    done = base_done
    activations = host.activations - activations0
    sizes = host_structure_sizes(host)
    await host.close()
    await resident.close()
    await store.close()
    first = series[max(len(series) // 10 - 1, 0)]["rss_bytes"]
    last = series[-1]["rss_bytes"]
    return {"sessions": n, "resident_cap": cap, "concurrency": concurrency, "build_s": build_s,
            "baseline_resident_turns_per_s": base_rate, "baseline_turns": done,
            "served_s": served_s, "activations": activations, "activations_per_s": activations / served_s,
            "rss_start_bytes": rss_start, "rss_after_first_tenth_bytes": first, "rss_end_bytes": last,
            "rss_peak_bytes": max(p["rss_bytes"] for p in series),
            "rss_growth_bytes_per_1000_sessions": (last - first) / max(n - n // 10, 1) * 1000,
            "max_resident_seen": max_slots, "structure_sizes": sizes, "series": series,
            "db_bytes": db.stat().st_size}


def sessions_served(n: int, cap: int = 1000, concurrency: int = 64, samples: int = 20,
                    folder: str | None = None) -> dict[str, Any]:
    """Serve ``n`` stored sessions under a resident cap of ``cap``; every figure as one dict."""
    from repertory.logs import configure_logging

    configure_logging()
    with tempfile.TemporaryDirectory(prefix="repertory-served-", dir=folder) as tmp:
        res = {"load_start": load_info(), **asyncio.run(_serve(n, cap, concurrency, Path(tmp) / "served.db",
                                                                samples))}
    res["load_end"] = load_info()
    report(res)
    return res


def report(res: dict[str, Any]) -> None:
    mib = 1 / 2**20
    rows = [[fmt_num(p["served"]), f"{p['elapsed_s']:.1f}", f"{p['rss_bytes'] * mib:,.0f}", fmt_num(p["resident"])]
            for p in res["series"]]
    table(f"Sessions served: {res['sessions']:,} stored sessions, each activated, one turn, passivated "
          f"(cap {res['resident_cap']:,} resident, {res['concurrency']} in flight, SQLite, null model)",
          ["served", "elapsed s", "RSS MiB", "resident"], rows,
          caption=f"activations/s {res['activations_per_s']:,.0f} against {res['baseline_resident_turns_per_s']:,.0f} "
                  f"turns/s on resident sessions (same run); RSS growth "
                  f"{res['rss_growth_bytes_per_1000_sessions']:,.0f} B per 1,000 sessions after the first tenth; "
                  f"load (1 min) {res['load_start']['loadavg_1m']} → {res['load_end']['loadavg_1m']}")
    console.print(f"host structures at the end: {res['structure_sizes']}")


def figures(res: dict[str, Any]) -> list[Figure]:
    out = [figure("runtime", f"sessions served ({res['sessions']:,}, cap {res['resident_cap']:,}): activations/s",
                  res["activations_per_s"], "turns/s", "turns/s on resident sessions (no activation)",
                  res["baseline_resident_turns_per_s"]),
           figure("runtime", f"sessions served ({res['sessions']:,}): RSS at the end", res["rss_end_bytes"] / 2**20,
                  "MiB", "RSS after the first tenth", res["rss_after_first_tenth_bytes"] / 2**20)]
    return [f for f in out if f is not None]


def run(n: int, cap: int = 1000) -> list[Figure]:
    """Measure (printing the table) and return the figures with their same-run baselines."""
    return figures(sessions_served(n, cap))
