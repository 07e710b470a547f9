"""Turn cost against history length: the same turn at 10 and at 1,000 stored messages, one run.

In one process: HostCore + LocalAgentPool + SQLiteStore (the in-process floor), with the null
model client (no model CPU) and the demo model through litellm. For each (model, history)
setting a session holds ``history`` messages; turns run in blocks of 25, the settings taking
turns block by block (so all see the same load), and each block starts from the same history
(an untimed ``set_history``), so the length stays what the row says. The baseline of each
model is its own turn at 10 messages; the litellm call alone (one user message, demo model)
is measured in the same run too.

Then the same on the Ray runtime as users run it (``repertory.init``: two hosts, agents in
AgentActors, SQLite), null model, at 10 and at the long history (``--no-ray`` skips it): a
host sends the agent replica only the messages it lacks (``repertory.state.prompt``), so a
turn at 1,000 messages should cost what one at 10 does. Latency only: the work is spread over
processes.

Run:  .venv/bin/python benchmarks/bench_turn_history.py [--turns 300] [--long 1000] [--no-ray]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from repertory.bench.common import Figure, console, emit_json, figure, fmt_us, load_info, summary, table

__all__ = ["main", "measure"]

perf = time.perf_counter
TEXT = "Note {i}: the weather report says light rain this afternoon, clearing later."
QUESTION = "What did the weather report say at note {i}?"


def _history(n: int) -> list[dict]:
    out: list[dict] = []
    for i in range(n // 2):
        out += [{"role": "user", "content": TEXT.format(i=i)},
                {"role": "assistant", "content": f"[demo model] Noted: \u201c{TEXT.format(i=i)}\u201d."}]
    return out


async def _measure(folder: Path, turns: int, lengths: list[int], block: int) -> dict[str, Any]:
    from repertory.agents.agent import Agent
    from repertory.agents.model_client import LiteLLMClient, load_litellm
    from repertory.config import Settings
    from repertory.host.api import TurnRequest
    from repertory.host.core import HostCore
    from repertory.ids import SessionRef
    from repertory.runtimes.local import LocalAgentPool
    from repertory.stores import SQLiteStore

    load_litellm()
    db = folder / "history.db"
    store = SQLiteStore(db)
    pool = LocalAgentPool()
    agents = {name: Agent("Bench", "You are terse.", model=f"repertory/{name}") for name in ("null", "demo")}
    for a in agents.values():
        pool.add(a)
    host = HostCore(store, pool, Settings(store=f"sqlite:///{db}", idle_timeout=0))
    settings = [(name, n) for name in agents for n in lengths]
    base = {n: _history(n) for n in lengths}
    lat: dict[tuple[str, int], list[float]] = {s: [] for s in settings}
    cpu: dict[tuple[str, int], float] = {s: 0.0 for s in settings}

    async def run_block(name: str, n: int, count: int, timed: bool) -> None:
        ref = SessionRef(f"history-{name}-{n}")
        await host.set_history(ref, base[n])
        for i in range(count):
            # Statements and questions alternate: a question makes the demo model read the history.
            text = (QUESTION if i % 2 else TEXT).format(i=i)
            req = TurnRequest(ref=ref, agent_key=agents[name].key, content=text, turn_id=uuid.uuid4().hex)
            c0, t0 = time.process_time(), perf()
            await host.turn(req)
            if timed:
                lat[(name, n)].append(perf() - t0)
                cpu[(name, n)] += time.process_time() - c0

    for name, n in settings:  # warm-up
        await run_block(name, n, 10, timed=False)
    done = 0
    r = 0
    while done < turns:
        k = min(block, turns - done)
        order = settings[r % len(settings):] + settings[:r % len(settings)]
        for name, n in order:
            await run_block(name, n, k, timed=True)
        done += k
        r += 1

    client = LiteLLMClient()
    msgs = [{"role": "user", "content": TEXT.format(i=0)}]
    for _ in range(20):
        await client.complete("repertory/demo", msgs)
    call = []
    c0 = time.process_time()
    for _ in range(turns):
        t0 = perf()
        await client.complete("repertory/demo", msgs)
        call.append(perf() - t0)
    call_cpu = (time.process_time() - c0) / turns
    await host.close()
    await store.close()
    out: dict[str, Any] = {"litellm_call_alone": {**summary(call), "cpu_us": call_cpu * 1e6}}
    for name, n in settings:
        out[f"{name}@{n}"] = {**summary(lat[(name, n)]), "cpu_us": cpu[(name, n)] / len(lat[(name, n)]) * 1e6,
                              "history": n}
    return out


async def _measure_ray(folder: Path, turns: int, lengths: list[int], block: int) -> dict[str, Any]:
    import os

    import repertory
    from repertory.agents.agent import Agent

    rt = repertory.init(store=f"sqlite:///{folder / 'ray.db'}", num_hosts=2,
                        namespace=f"history-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    try:
        agent = Agent("Bench", "You are terse.", model="repertory/null")
        sessions = {n: repertory.Session(f"ray-history-{n}", agent=agent, runtime=rt) for n in lengths}
        base = {n: _history(n) for n in lengths}
        lat: dict[int, list[float]] = {n: [] for n in lengths}

        async def run_block(n: int, count: int, timed: bool) -> None:
            s = sessions[n]
            await s.aset_history(base[n])
            for i in range(count):
                t0 = perf()
                await s.achat(TEXT.format(i=i))
                if timed:
                    lat[n].append(perf() - t0)

        for n in lengths:
            await run_block(n, 10, timed=False)
        done = r = 0
        while done < turns:
            k = min(block, turns - done)
            for n in lengths[r % len(lengths):] + lengths[:r % len(lengths)]:
                await run_block(n, k, timed=True)
            done, r = done + k, r + 1
        return {f"ray@{n}": {**summary(lat[n]), "history": n} for n in lengths}
    finally:
        repertory.shutdown()


def _ray_measure(folder: Path, turns: int, lengths: list[int], block: int) -> dict[str, Any]:
    import logging

    import ray

    started = not ray.is_initialized()
    if started:  # a private instance, never a cluster another process left in /tmp/ray
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        return asyncio.run(_measure_ray(folder, turns, lengths, block))
    finally:
        if started:
            ray.shutdown()


def measure(turns: int = 300, long: int = 1000, short: int = 10, block: int = 25,
            with_ray: bool = True) -> dict[str, Any]:
    """Every figure as one dict (printing the tables)."""
    from repertory.logs import configure_logging

    configure_logging()
    res: dict[str, Any] = {"load_start": load_info(), "turns": turns}
    with tempfile.TemporaryDirectory(prefix="repertory-history-") as tmp:
        res.update(asyncio.run(_measure(Path(tmp), turns, [short, long], block)))
        if with_ray:
            res.update(_ray_measure(Path(tmp), turns, [short, long], block))
    res["load_end"] = load_info()
    rows = []
    for name in ("null", "demo"):
        s, lg = res[f"{name}@{short}"], res[f"{name}@{long}"]
        rows.append([name, fmt_us(s["p50_us"]), fmt_us(lg["p50_us"]), f"{lg['p50_us'] / s['p50_us']:.2f}×",
                     fmt_us(s["cpu_us"]), fmt_us(lg["cpu_us"]), f"{lg['cpu_us'] / s['cpu_us']:.2f}×"])
    call = res["litellm_call_alone"]
    table(f"Turn cost at {short} vs {long:,} stored messages (in-process HostCore, SQLite, {turns} turns each, "
          "interleaved)", ["model", f"p50 @{short}", f"p50 @{long:,}", "ratio", f"CPU @{short}", f"CPU @{long:,}",
                           "ratio"], rows,
          caption=f"litellm call alone (demo model, one message): p50 {fmt_us(call['p50_us'])}, CPU "
                  f"{fmt_us(call['cpu_us'])}; load (1 min) {res['load_start']['loadavg_1m']} → "
                  f"{res['load_end']['loadavg_1m']}")
    if with_ray:
        s, lg = res[f"ray@{short}"], res[f"ray@{long}"]
        table(f"Turn latency at {short} vs {long:,} stored messages on Ray (repertory.init: agents in AgentActors, "
              f"SQLite, null model, {turns} turns each, interleaved)",
              ["setting", f"p50 @{short}", f"p50 @{long:,}", "ratio", f"p99 @{short}", f"p99 @{long:,}"],
              [["Ray runtime", fmt_us(s["p50_us"]), fmt_us(lg["p50_us"]), f"{lg['p50_us'] / s['p50_us']:.2f}×",
                fmt_us(s["p99_us"]), fmt_us(lg["p99_us"])]])
    return res


def figures(res: dict[str, Any], long: int = 1000, short: int = 10) -> list[Figure]:
    out = []
    for name in ("null", "demo"):
        out.append(figure("history", f"{name} model turn at {long:,} messages: CPU", res[f"{name}@{long}"]["cpu_us"],
                          "µs", f"{name} model turn at {short} messages: CPU", res[f"{name}@{short}"]["cpu_us"]))
    if f"ray@{long}" in res:
        out.append(figure("history", f"Ray turn at {long:,} messages: p50", res[f"ray@{long}"]["p50_us"], "µs",
                          f"Ray turn at {short} messages: p50", res[f"ray@{short}"]["p50_us"]))
    extra = res[f"demo@{short}"]["cpu_us"] - res[f"null@{short}"]["cpu_us"]
    out.append(figure("history", "demo model turn minus null model turn: CPU", extra, "µs",
                      "litellm call alone: CPU", res["litellm_call_alone"]["cpu_us"]))
    return [f for f in out if f is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=300, help="timed turns per setting (300)")
    ap.add_argument("--long", type=int, default=1000, help="the long history, in messages (1000)")
    ap.add_argument("--block", type=int, default=25, help="turns per setting before switching (25)")
    ap.add_argument("--no-ray", action="store_true", help="only the in-process part")
    cli = ap.parse_args()
    res = measure(cli.turns, cli.long, block=cli.block, with_ray=not cli.no_ray)
    for f in figures(res, cli.long):
        console.print(f"{f.name}: {f.value:,.0f} {f.unit} against {f.baseline} {f.baseline_value:,.0f} "
                      f"{f.unit} ({f.ratio:.2f}×)")
    emit_json("bench_turn_history", res)


if __name__ == "__main__":
    main()
