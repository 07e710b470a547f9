#!/usr/bin/env python
"""Core runtime benchmark: turns through the Ray runtime against floors measured in the same run.

What runs (one process, plus one subprocess per memory measurement):

  f. resident memory per session: a subprocess activates 10,000 (and, without --quick, 100,000)
     stored 20-message sessions in a HostCore and reports RSS and tracemalloc deltas.
  d. model client cost in-process: LiteLLMClient().complete("repertory/demo") vs NullModelClient.
  a/b/c, interleaved in one Ray instance:
     - the bare Ray floor: caller -> async "host" actor -> async "agent" actor returning a constant;
     - the Ray runtime: repertory.init(store="sqlite:///...", num_hosts=2), Session.achat, with the
       demo model (through litellm) and the null model client (benchmark instrument);
     - a second Ray runtime with store_access="actor" (writes through the StoreActor), null model;
     - the in-process floor: HostCore + LocalAgentPool + SQLiteStore called directly.
  e. cold activation of a stored 20-message session vs creating a fresh Ray actor.

Sequential = one session per setting, one turn at a time (its history grows by two messages a
turn). Concurrent = N sessions (default 1,000) per setting, each created by one untimed turn,
then bursts: every session sends one turn at once (asyncio.gather, no semaphore), so N turns are
in flight. Throughput = timed turns / wall time of the bursts. The settings take turns (blocks of
25 sequential turns; one burst each), rotating the order, so that all of them see the same
periods of machine load.

Run:  .venv/bin/python benchmarks/bench_runtime.py (or: repertory bench runtime) [--quick]
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from repertory.bench.common import (
    Figure,
    console,
    emit_json,
    figure,
    fmt_num,
    fmt_ratio,
    fmt_us,
    load_info,
    messages20,
    ratio,
    rss_bytes,
    summary,
    table,
    verdict,
)
from repertory.ids import SessionRef

NULL_LABEL = "null model client (benchmark instrument)"
DEMO_LABEL = "demo model via litellm (repertory/demo)"
TURN_TEXT = "Note {i}: the weather report says light rain this afternoon, clearing later."

perf = time.perf_counter


# -- f. resident memory (subprocess) ---------------------------------------------------------
def memory_child(n: int) -> dict[str, Any]:
    """Activate ``n`` stored 20-message sessions in one HostCore; bytes per resident session."""
    import tracemalloc

    from repertory.config import Settings
    from repertory.host.core import HostCore
    from repertory.runtimes.local import LocalAgentPool
    from repertory.state.session_state import SessionState
    from repertory.stores import MemoryStore, SessionRecord

    class CopyingStore(MemoryStore):
        # A real backend hands out fresh bytes on every load; MemoryStore would share its own
        # objects with the host and hide the cost of the resident copy.
        async def load(self, key):
            rec = await super().load(key)
            if rec is None:
                return None
            return SessionRecord(rec.key, rec.revision, bytes(bytearray(rec.meta)),
                                 [bytes(bytearray(m)) for m in rec.messages], rec.updated_at, rec.expires_at)

    async def main() -> dict[str, Any]:
        store = CopyingStore()
        msgs = messages20()
        keys = [f"mem-{i:07d}" for i in range(n)]
        t0 = perf()
        payload = 0
        for key in keys:
            st = SessionState.new(key, key, None)
            write, _, _ = st.append_write(msgs, turns=10)
            payload += len(write.meta) + sum(len(m) for m in write.messages)
            await store.commit(write)
        build_s = perf() - t0
        host = HostCore(store, LocalAgentPool(), Settings(store="memory://", max_resident=n + 1, idle_timeout=0))

        # pass 1: RSS delta, no tracing overhead in the process
        gc.collect()
        rss0 = rss_bytes()
        t0 = perf()
        for key in keys:
            await host.get_history(SessionRef(key))
        act_s = perf() - t0
        gc.collect()
        rss1 = rss_bytes()
        resident = host.stats()["resident"]

        # pass 2: passivate everything, then trace exactly what activation keeps alive
        host.passivate_idle(0)
        gc.collect()
        tracemalloc.start()
        for key in keys:
            await host.get_history(SessionRef(key))
        gc.collect()
        traced, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"sessions": n, "resident": resident, "build_s": build_s, "activate_s": act_s,
                "activate_us_per_session": act_s / n * 1e6,
                "rss_delta_bytes": rss1 - rss0, "rss_bytes_per_session": (rss1 - rss0) / n,
                "traced_bytes_per_session": traced / n, "payload_bytes_per_session": payload / n}

    return asyncio.run(main())


def run_memory(n: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "repertory.bench.runtime", "--memory-child", str(n)], capture_output=True, text=True,
                         timeout=600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"sessions": n, "error": (out.stderr or out.stdout)[-2000:]}
    return json.loads(lines[-1])


# -- d. model client cost in-process ---------------------------------------------------------
async def model_client_cost(n: int, history: int = 0) -> dict[str, Any]:
    """One model call alone, in-process: litellm to the demo model and the null client with a
    one-message prompt, and (``history`` > 0) litellm with a prompt of ``history`` messages, the
    mean history of the sequential runs' turns, since litellm's own work grows with the prompt."""
    from repertory.agents.model_client import LiteLLMClient, NullModelClient, load_litellm

    t0 = perf()
    load_litellm()
    import_s = perf() - t0
    out: dict[str, Any] = {"litellm_import_s": import_s}
    long = [{"role": "user" if i % 2 == 0 else "assistant",
             "content": TURN_TEXT.format(i=i // 2) if i % 2 == 0 else "[demo model] Noted."}
            for i in range(history | 1)]  # odd: it ends with a user message
    cases = [("litellm_demo", LiteLLMClient(), "repertory/demo", [{"role": "user", "content": "hi"}]),
             ("null", NullModelClient(), "repertory/null", [{"role": "user", "content": "hi"}])]
    if history:
        cases.append(("litellm_demo_history", LiteLLMClient(), "repertory/demo", long))
    for label, client, model, msgs in cases:
        for _ in range(max(n // 10, 10)):
            await client.complete(model, msgs)
        lat = []
        c0, w0 = time.process_time(), perf()
        for _ in range(n):
            t = perf()
            await client.complete(model, msgs)
            lat.append(perf() - t)
        cpu, wall = time.process_time() - c0, perf() - w0
        out[label] = {**summary(lat), "cpu_us_per_call": cpu / n * 1e6, "calls_per_s": n / wall}
    return out


# -- settings and the interleaved drivers ----------------------------------------------------
class Setting:
    """One way of running a turn: ``seq(i)`` for the sequential session, ``first(s)``/``call(s, k)``
    for the concurrent sessions (``first`` creates session ``s`` and is not timed)."""

    def __init__(self, key: str, label: str, seq, first, call) -> None:
        self.key, self.label, self.seq, self.first, self.call = key, label, seq, first, call


def _rotated(items: list, r: int) -> list:
    r %= len(items)
    return items[r:] + items[:r]


async def run_sequential(settings: list[Setting], n: int, warm: int, block: int) -> dict[str, Any]:
    """Warm up every setting, then ``n`` timed turns each, in blocks of ``block``, interleaved.

    Interleaving (setting A does ``block`` turns, then B, then C, ... then A again, with the order
    rotated every block) puts every setting through the same periods of machine load, so that
    the ratios hold even when other jobs come and go during the run.
    """
    for st in settings:
        for i in range(warm):
            await st.seq(i)
    lat = {st.key: [] for st in settings}
    cpu = {st.key: 0.0 for st in settings}
    wall = {st.key: 0.0 for st in settings}
    done = 0
    r = 0
    while done < n:
        k = min(block, n - done)
        for st in _rotated(settings, r):
            c0, w0 = time.process_time(), perf()
            for j in range(k):
                t = perf()
                await st.seq(warm + done + j)
                lat[st.key].append(perf() - t)
            wall[st.key] += perf() - w0
            cpu[st.key] += time.process_time() - c0
        done += k
        r += 1
    out = {}
    q = min(100, max(n // 3, 1))
    for st in settings:
        ls = lat[st.key]
        out[st.key] = {**summary(ls), "turns_per_s": n / wall[st.key], "driver_cpu_us_per_turn": cpu[st.key] / n * 1e6,
                       "p50_first_us": summary(ls[:q])["p50_us"], "p50_last_us": summary(ls[-q:])["p50_us"]}
    return out


async def run_concurrent(settings: list[Setting], n_sessions: int, rounds: int) -> dict[str, Any]:
    """Create ``n_sessions`` per setting (untimed), then ``rounds`` bursts per setting, interleaved.

    A burst: every session sends one turn at once (asyncio.gather, no semaphore), so
    ``n_sessions`` turns are in flight; throughput = turns / wall time of the bursts.
    """
    for st in settings:
        await asyncio.gather(*(st.first(s) for s in range(n_sessions)))
    lat = {st.key: [] for st in settings}
    cpu = {st.key: 0.0 for st in settings}
    wall = {st.key: 0.0 for st in settings}

    async def one(st: Setting, s: int, k: int) -> None:
        t = perf()
        await st.call(s, k)
        lat[st.key].append(perf() - t)

    for k in range(rounds):
        for st in _rotated(settings, k):
            c0, w0 = time.process_time(), perf()
            await asyncio.gather(*(one(st, s, k) for s in range(n_sessions)))
            wall[st.key] += perf() - w0
            cpu[st.key] += time.process_time() - c0
    total = n_sessions * rounds
    return {st.key: {**summary(lat[st.key]), "turns_per_s": total / wall[st.key], "wall_s": wall[st.key],
                     "turns": total, "sessions": n_sessions, "driver_cpu_us_per_turn": cpu[st.key] / total * 1e6}
            for st in settings}


def _req(agent, key: str, text: str):
    from repertory.host.api import TurnRequest
    from repertory.ids import SessionRef

    return TurnRequest(ref=SessionRef(key), agent_key=agent.key, content=text,
                       turn_id=uuid.uuid4().hex)


def inprocess_settings(host, agents: dict[str, Any], n_sessions: int) -> list[Setting]:
    out = []
    for name, agent in agents.items():
        seq_key = f"inproc-seq-{name}"
        keys = [f"inproc-conc-{name}-{s}" for s in range(n_sessions)]

        def seq(i, agent=agent, seq_key=seq_key):
            return host.turn(_req(agent, seq_key, TURN_TEXT.format(i=i)))

        def first(s, agent=agent, keys=keys):
            return host.turn(_req(agent, keys[s], TURN_TEXT.format(i=0)))

        def call(s, k, agent=agent, keys=keys):
            return host.turn(_req(agent, keys[s], TURN_TEXT.format(i=k + 1)))

        out.append(Setting(f"inproc:{name}", name, seq, first, call))
    return out


def ray_settings(prefix: str, rt, agents: dict[str, Any], which: list[str], n_sessions: int) -> list[Setting]:
    import repertory

    out = []
    for name in which:
        agent = agents[name]
        s_seq = repertory.Session(agent=agent, runtime=rt)
        sessions = [repertory.Session(agent=agent, runtime=rt) for _ in range(n_sessions)]

        def seq(i, s_seq=s_seq):
            return s_seq.achat(TURN_TEXT.format(i=i))

        def first(s, sessions=sessions):
            return sessions[s].achat(TURN_TEXT.format(i=0))

        def call(s, k, sessions=sessions):
            return sessions[s].achat(TURN_TEXT.format(i=k + 1))

        out.append(Setting(f"{prefix}:{name}", name, seq, first, call))
    return out


# -- c. bare Ray floor -----------------------------------------------------------------------
class BareAgent:
    async def run(self, text: str) -> str:
        return "ok"

    async def ping(self) -> bool:
        return True


class BareHost:
    def __init__(self, agent) -> None:
        self.agent = agent

    async def turn(self, text: str) -> str:
        return await self.agent.run.remote(text)

    async def ping(self) -> bool:
        return True


class Probe:
    def ping(self) -> int:
        return 1


def start_bare(namespace: str):
    import ray

    opts = {"namespace": namespace, "num_cpus": 0, "max_restarts": -1}
    agent = ray.remote(BareAgent).options(name="bare-agent", max_concurrency=10_000, **opts).remote()
    hosts = [ray.remote(BareHost).options(name=f"bare-host-{i}", max_concurrency=100_000, **opts).remote(agent)
             for i in range(2)]
    ray.get([agent.ping.remote(), *(h.ping.remote() for h in hosts)])
    return agent, hosts


def bare_setting(hosts) -> Setting:
    return Setting("bare", "bare", lambda i: hosts[0].turn.remote(TURN_TEXT.format(i=i)),
                   lambda s: hosts[s % 2].turn.remote(TURN_TEXT.format(i=0)),
                   lambda s, k: hosts[s % 2].turn.remote(TURN_TEXT.format(i=k + 1)))


async def actor_creation(n: int) -> dict[str, Any]:
    import ray

    cls = ray.remote(Probe)
    lat = []
    for _ in range(n):
        t = perf()
        a = cls.remote()
        await a.ping.remote()
        lat.append(perf() - t)
        ray.kill(a)
    return summary(lat)


# -- e. cold activation ----------------------------------------------------------------------
async def cold_inprocess(host, null_agent, n: int) -> dict[str, Any]:
    msgs = messages20()
    keys = [f"inproc-cold-{i}" for i in range(n)]
    for key in keys:
        await host.set_history(SessionRef(key), msgs)
    host.passivate_idle(0)
    cold, warm, cold_turn, warm_turn = [], [], [], []
    for key in keys:
        t = perf()
        await host.get_history(SessionRef(key))
        cold.append(perf() - t)
    for key in keys:
        t = perf()
        await host.get_history(SessionRef(key))
        warm.append(perf() - t)
    host.passivate_idle(0)
    for key in keys:
        t = perf()
        await host.turn(_req(null_agent, key, "hello again"))
        cold_turn.append(perf() - t)
    for key in keys:
        t = perf()
        await host.turn(_req(null_agent, key, "and once more"))
        warm_turn.append(perf() - t)
    return {"history_cold": summary(cold), "history_warm": summary(warm),
            "turn_cold": summary(cold_turn), "turn_warm": summary(warm_turn)}


async def cold_ray(rt, null_agent, n: int) -> dict[str, Any]:
    import repertory

    msgs = messages20()
    sessions = [repertory.Session(agent=null_agent, runtime=rt) for _ in range(n)]
    await asyncio.gather(*(s.aset_history(msgs) for s in sessions))

    async def passivate() -> int:
        return sum(await asyncio.gather(*(h.passivate_all.remote() for h in rt.hosts)))

    passivated = await passivate()
    cold_h, warm_h, cold_t, warm_t = [], [], [], []
    for s in sessions:
        t = perf()
        h = await s.aget_history()
        cold_h.append(perf() - t)
        assert len(h) == 20, len(h)
    for s in sessions:
        t = perf()
        await s.aget_history()
        warm_h.append(perf() - t)
    await passivate()
    for s in sessions:
        t = perf()
        await s.achat("hello again")
        cold_t.append(perf() - t)
    for s in sessions:
        t = perf()
        await s.achat("and once more")
        warm_t.append(perf() - t)
    return {"passivated": passivated, "history_cold": summary(cold_h), "history_warm": summary(warm_h),
            "turn_cold": summary(cold_t), "turn_warm": summary(warm_t)}


# -- report ----------------------------------------------------------------------------------
def report(res: dict[str, Any], args) -> dict[str, Any]:
    bare = res["bare"]
    inproc = res["inproc"]
    rayd = res["ray_direct"]
    raya = res.get("ray_actor", {})
    rayh = res.get("ray_host", {})
    b_seq_p50 = min(b["sequential"]["p50_us"] for b in bare)
    b_seq_p99 = min(b["sequential"]["p99_us"] for b in bare)
    b_seq_tps = max(b["sequential"]["turns_per_s"] for b in bare)
    b_conc_tps = max(b["concurrent"]["turns_per_s"] for b in bare)
    b_conc_p50 = min(b["concurrent"]["p50_us"] for b in bare)
    b_conc_p99 = min(b["concurrent"]["p99_us"] for b in bare)

    labels = {"null": NULL_LABEL, "demo": DEMO_LABEL}
    rows = []
    for i, b in enumerate(bare):
        sq, cc = b["sequential"], b["concurrent"]
        rows.append(["bare Ray floor (caller → host actor → agent actor → back, constant reply)",
                     fmt_num(sq["turns_per_s"]), fmt_us(sq["p50_us"]), fmt_us(sq["p99_us"]),
                     fmt_num(cc["turns_per_s"]), fmt_us(cc["p50_us"]), fmt_us(cc["p99_us"]),
                     fmt_ratio(ratio(cc["turns_per_s"], b_conc_tps))])
    for setting, data, prefix in (("direct", rayd, "Ray runtime, store direct"),
                                  ("actor", raya, "Ray runtime, store via StoreActor"),
                                  ("host", rayh, "Ray runtime, agents in hosts"),
                                  ("inproc", inproc, "in-process HostCore (no Ray)")):
        for name in ("null", "demo"):
            if name not in data:
                continue
            sq, cc = data[name]["sequential"], data[name]["concurrent"]
            rows.append([f"{prefix}: {labels[name]}", fmt_num(sq["turns_per_s"]), fmt_us(sq["p50_us"]),
                         fmt_us(sq["p99_us"]), fmt_num(cc["turns_per_s"]), fmt_us(cc["p50_us"]),
                         fmt_us(cc["p99_us"]), fmt_ratio(ratio(cc["turns_per_s"], b_conc_tps))])
    table(f"Turns: sequential (1 session per setting, {args.seq_turns} turns after {args.warmup} warm-up) and "
          f"concurrent ({args.sessions} sessions per setting, {args.turns_each} bursts of one turn per session, "
          "asyncio.gather, no semaphore); all settings interleaved",
          ["setting", "seq turns/s", "seq p50", "seq p99", "conc turns/s", "conc p50", "conc p99",
           "conc throughput ÷ bare"], rows,
          caption="Concurrent latency includes queueing behind the other sessions' turns of the burst. "
                  "Each session's first turn (creation) is untimed. Settings take turns (blocks of "
                  f"{args.block} sequential turns, one burst each) so that they share the machine's load periods.")

    # ratios against the floors
    rows = []
    for setting, data, prefix in (("direct", rayd, "Ray runtime, store direct"),
                                  ("actor", raya, "Ray runtime, store via StoreActor"),
                                  ("host", rayh, "Ray runtime, agents in hosts")):
        for name in ("null", "demo"):
            if name not in data:
                continue
            sq, cc = data[name]["sequential"], data[name]["concurrent"]
            ip = inproc[name]
            rows.append([f"{prefix}: {labels[name]}",
                         f"{fmt_ratio(ratio(sq['p50_us'], b_seq_p50))} (+{fmt_us(sq['p50_us'] - b_seq_p50)})",
                         fmt_ratio(ratio(sq["p99_us"], b_seq_p99)),
                         fmt_ratio(ratio(cc["turns_per_s"], b_conc_tps)),
                         fmt_ratio(ratio(sq["p50_us"], ip["sequential"]["p50_us"])),
                         fmt_ratio(ratio(cc["turns_per_s"], ip["concurrent"]["turns_per_s"])),
                         f"{fmt_us(sq['p50_first_us'])} → {fmt_us(sq['p50_last_us'])}",
                         fmt_num(sq["driver_cpu_us_per_turn"]) + " µs"])
    table("Ratios (same run)", ["setting", "seq p50 ÷ bare p50", "seq p99 ÷ bare p99", "conc tput ÷ bare",
                                "seq p50 ÷ in-process p50", "conc tput ÷ in-process", "seq p50 first→last 100 turns",
                                "driver CPU/turn"], rows,
          caption="Sequential history grows by 2 messages a turn; the last column pair shows its effect.")

    # d. model client
    mc = res["model_client"]
    lit, nul = mc["litellm_demo"], mc["null"]
    table(f"Model client cost in-process ({args.model_calls} calls, one loop)",
          ["client", "calls/s", "p50", "p99", "CPU/call", "CPU ÷ null"],
          [["LiteLLMClient → repertory/demo", fmt_num(lit["calls_per_s"]), fmt_us(lit["p50_us"]),
            fmt_us(lit["p99_us"]), fmt_us(lit["cpu_us_per_call"]), fmt_ratio(ratio(lit["cpu_us_per_call"], nul["cpu_us_per_call"]))],
           [NULL_LABEL, fmt_num(nul["calls_per_s"]), fmt_us(nul["p50_us"]), fmt_us(nul["p99_us"]),
            fmt_us(nul["cpu_us_per_call"]), "1.00×"]]
          + ([[f"LiteLLMClient → repertory/demo, {2 * args.warmup + args.seq_turns}-message prompt",
               fmt_num(lh["calls_per_s"]), fmt_us(lh["p50_us"]), fmt_us(lh["p99_us"]), fmt_us(lh["cpu_us_per_call"]),
               fmt_ratio(ratio(lh["cpu_us_per_call"], nul["cpu_us_per_call"]))]]
             if (lh := mc.get("litellm_demo_history")) else []),
          caption=f"litellm import + demo provider registration: {mc['litellm_import_s']:.2f} s (once per process).")
    # runtime overhead net of the model client
    if "demo" in rayd and "null" in rayd:
        d_p50 = rayd["demo"]["sequential"]["p50_us"] - rayd["null"]["sequential"]["p50_us"]
        d_ip = inproc["demo"]["sequential"]["p50_us"] - inproc["null"]["sequential"]["p50_us"]
        table("Runtime overhead vs model client (sequential p50)",
              ["figure", "value"],
              [["Ray runtime p50, null model − bare Ray p50 (runtime's own cost over the hops)",
                fmt_us(rayd["null"]["sequential"]["p50_us"] - b_seq_p50)],
               ["Ray runtime p50, demo − null (what litellm + demo model add per turn on Ray)", fmt_us(d_p50)],
               ["in-process p50, demo − null (same, without Ray)", fmt_us(d_ip)],
               ["litellm demo call p50 measured alone (d)", fmt_us(lit["p50_us"])]])

    # e. activation
    rc, ic, ac = rayd.get("cold", {}), inproc["cold"], res["actor_creation"]
    rows = [["Ray: first get_history after passivate_all (cold)", fmt_us(rc["history_cold"]["p50_us"]),
             fmt_us(rc["history_cold"]["p99_us"]), fmt_ratio(ratio(ac["p50_us"], rc["history_cold"]["p50_us"]))],
            ["Ray: second get_history (warm)", fmt_us(rc["history_warm"]["p50_us"]),
             fmt_us(rc["history_warm"]["p99_us"]), fmt_ratio(ratio(ac["p50_us"], rc["history_warm"]["p50_us"]))],
            ["Ray: first turn after passivate_all (cold, null model)", fmt_us(rc["turn_cold"]["p50_us"]),
             fmt_us(rc["turn_cold"]["p99_us"]), fmt_ratio(ratio(ac["p50_us"], rc["turn_cold"]["p50_us"]))],
            ["Ray: next turn (warm, null model)", fmt_us(rc["turn_warm"]["p50_us"]),
             fmt_us(rc["turn_warm"]["p99_us"]), fmt_ratio(ratio(ac["p50_us"], rc["turn_warm"]["p50_us"]))],
            ["in-process HostCore: first history after passivate_idle(0)", fmt_us(ic["history_cold"]["p50_us"]),
             fmt_us(ic["history_cold"]["p99_us"]), fmt_ratio(ratio(ac["p50_us"], ic["history_cold"]["p50_us"]))],
            ["in-process HostCore: history (warm)", fmt_us(ic["history_warm"]["p50_us"]),
             fmt_us(ic["history_warm"]["p99_us"]), fmt_ratio(ratio(ac["p50_us"], ic["history_warm"]["p50_us"]))],
            ["in-process HostCore: first turn after passivation (null)", fmt_us(ic["turn_cold"]["p50_us"]),
             fmt_us(ic["turn_cold"]["p99_us"]), fmt_ratio(ratio(ac["p50_us"], ic["turn_cold"]["p50_us"]))],
            [f"create a Ray actor + first call (ray.remote(Probe).remote(), n={ac['n']})", fmt_us(ac["p50_us"]),
             fmt_us(ac["p99_us"]), "1.00×"]]
    table(f"Cold activation of a stored 20-message session (SQLite, {args.cold_sessions} sessions) vs a new Ray actor",
          ["what", "p50", "p99", "actor creation ÷ this (p50)"], rows)

    # f. memory
    rows = []
    for m in res["memory"]:
        if "error" in m:
            rows.append([f"{m['sessions']:,}", "error", m["error"][-200:], "", "", ""])
            continue
        rows.append([f"{m['sessions']:,}", fmt_num(m["rss_bytes_per_session"]) + " B",
                     fmt_num(m["traced_bytes_per_session"]) + " B", fmt_num(m["payload_bytes_per_session"]) + " B",
                     fmt_us(m["activate_us_per_session"]), f"{m['build_s']:.1f} s"])
    table("Resident memory per activated 20-message session (HostCore in a subprocess, ~250-byte contents)",
          ["sessions", "RSS Δ / session", "tracemalloc / session", "encoded payload / session",
           "activation (history) / session", "store build"], rows,
          caption="Store = MemoryStore that returns fresh bytes on load (as SQLite/Redis do); "
                  "Δ measured over the activation pass only.")

    # targets
    nul_seq = rayd["null"]["sequential"]
    nul_conc = rayd["null"]["concurrent"]
    mems = [m for m in res["memory"] if "error" not in m]
    worst_mem = max((max(m["rss_bytes_per_session"], m["traced_bytes_per_session"]) for m in mems), default=None)
    act_ratio = ratio(ac["p50_us"], rc["history_cold"]["p50_us"])
    targets = [
        ["p50 turn latency within 0.5 ms of bare floor p50 (null, sequential)",
         f"{fmt_us(nul_seq['p50_us'])} vs {fmt_us(b_seq_p50)} (+{fmt_us(nul_seq['p50_us'] - b_seq_p50)})",
         verdict(nul_seq["p50_us"] - b_seq_p50 <= 500)],
        ["p99 turn latency ≤ 2× bare floor p99 (null, sequential)",
         f"{fmt_us(nul_seq['p99_us'])} vs {fmt_us(b_seq_p99)} ({fmt_ratio(ratio(nul_seq['p99_us'], b_seq_p99))})",
         verdict(nul_seq["p99_us"] <= 2 * b_seq_p99)],
        [f"throughput with {args.sessions} concurrent sessions ≥ 70% of bare pipeline (null)",
         f"{fmt_num(nul_conc['turns_per_s'])} vs {fmt_num(b_conc_tps)} turns/s "
         f"({100 * nul_conc['turns_per_s'] / b_conc_tps:.0f}%)",
         verdict(nul_conc["turns_per_s"] >= 0.7 * b_conc_tps)],
        ["activation ≥ 100× faster than creating a Ray actor (cold get_history on Ray)",
         f"{fmt_us(rc['history_cold']['p50_us'])} vs {fmt_us(ac['p50_us'])} ({fmt_ratio(act_ratio)})",
         verdict(act_ratio is not None and act_ratio >= 100)],
        ["≤ 16 KB per resident 20-message session",
         f"worst of RSS/tracemalloc: {fmt_num(worst_mem)} B" if worst_mem is not None else "-",
         verdict(None if worst_mem is None else worst_mem <= 16 * 1024)],
    ]
    for data, prefix in ((rayd, "agents in actors"), (rayh, "agents in hosts")):
        if "null" not in data:
            continue
        n_seq, n_conc = data["null"]["sequential"], data["null"]["concurrent"]
        targets += [
            [f"(issue 12, {prefix}) seq p50 within 0.5 ms of bare p50; p99 ≤ 2×",
             f"+{fmt_us(n_seq['p50_us'] - b_seq_p50)}; {fmt_ratio(ratio(n_seq['p99_us'], b_seq_p99))}",
             verdict(n_seq["p50_us"] - b_seq_p50 <= 500 and n_seq["p99_us"] <= 2 * b_seq_p99)],
            [f"(issue 12, {prefix}) {args.sessions} concurrent sessions ≥ 2× bare floor's turns/s",
             fmt_ratio(ratio(n_conc["turns_per_s"], b_conc_tps)), verdict(n_conc["turns_per_s"] >= 2 * b_conc_tps)]]
        if "demo" in data:
            extra = data["demo"]["sequential"]["p50_us"] - n_seq["p50_us"]
            targets.append([f"(issue 12, {prefix}) demo turn ≤ null turn + 1.5 × litellm call alone (seq p50)",
                            f"+{fmt_us(extra)} vs 1.5 × {fmt_us(lit['p50_us'])} = {fmt_us(1.5 * lit['p50_us'])}",
                            verdict(extra <= 1.5 * lit["p50_us"])])
            lh = mc.get("litellm_demo_history")
            if lh:
                targets.append([f"(info, {prefix}) the same with litellm alone on a prompt of the mean history "
                                f"({2 * args.warmup + args.seq_turns} messages)",
                                f"+{fmt_us(extra)} vs 1.5 × {fmt_us(lh['p50_us'])} = {fmt_us(1.5 * lh['p50_us'])}",
                                verdict(extra <= 1.5 * lh["p50_us"])])
    if raya.get("null"):
        a_seq, a_conc = raya["null"]["sequential"], raya["null"]["concurrent"]
        targets.append(["(info) store via StoreActor vs direct, null: seq p50 / conc throughput",
                        f"{fmt_us(a_seq['p50_us'])} vs {fmt_us(nul_seq['p50_us'])} "
                        f"({fmt_ratio(ratio(a_seq['p50_us'], nul_seq['p50_us']))}); "
                        f"{fmt_num(a_conc['turns_per_s'])} vs {fmt_num(nul_conc['turns_per_s'])} turns/s "
                        f"({fmt_ratio(ratio(a_conc['turns_per_s'], nul_conc['turns_per_s']))})", ""])
    elif res.get("ray_actor_error"):
        targets.append(["(info) store via StoreActor", "did not run: " + res["ray_actor_error"][:200], ""])
    table("Targets", ["target", "measured", "verdict"], targets)
    return {"baseline": {"bare_seq_p50_us": b_seq_p50, "bare_seq_p99_us": b_seq_p99, "bare_seq_turns_per_s": b_seq_tps,
                         "bare_conc_turns_per_s": b_conc_tps, "bare_conc_p50_us": b_conc_p50,
                         "bare_conc_p99_us": b_conc_p99},
            "targets": {"p50_within_0.5ms": nul_seq["p50_us"] - b_seq_p50 <= 500,
                        "p99_within_2x": nul_seq["p99_us"] <= 2 * b_seq_p99,
                        "conc_throughput_ge_70pct": nul_conc["turns_per_s"] >= 0.7 * b_conc_tps,
                        "activation_ge_100x": act_ratio is not None and act_ratio >= 100,
                        "memory_le_16KB": None if worst_mem is None else worst_mem <= 16 * 1024}}


# -- main ------------------------------------------------------------------------------------
async def measure_all(tmp: Path, agents: dict[str, Any], hosts, rt_direct, rt_actor, args,
                      rt_host=None) -> dict[str, Any]:
    from repertory.config import Settings
    from repertory.host.core import HostCore
    from repertory.runtimes.local import LocalAgentPool
    from repertory.stores import SQLiteStore

    db = tmp / "inproc.db"
    store = SQLiteStore(db)
    pool = LocalAgentPool()
    for a in agents.values():
        pool.add(a)
    host = HostCore(store, pool, Settings(store=f"sqlite:///{db}", max_resident=200_000))
    settings = [bare_setting(hosts), *ray_settings("ray", rt_direct, agents, list(agents), args.sessions)]
    if rt_actor is not None:
        settings += ray_settings("actor", rt_actor, agents, ["null"], args.sessions)
    if rt_host is not None:
        settings += ray_settings("host", rt_host, agents, list(agents), args.sessions)
    settings += inprocess_settings(host, agents, args.sessions)
    console.print(f"sequential: {args.seq_turns} turns × {len(settings)} settings, blocks of {args.block}, interleaved ...")
    seq = await run_sequential(settings, args.seq_turns, args.warmup, args.block)
    console.print(f"concurrent: {args.sessions} sessions × {args.turns_each} bursts × {len(settings)} settings, "
                  "interleaved ...")
    conc = await run_concurrent(settings, args.sessions, args.turns_each)
    console.print("Ray actor creation ...")
    creation = await actor_creation(args.actor_creations)
    console.print("cold activation ...")
    cold_r = await cold_ray(rt_direct, agents["null"], args.cold_sessions)
    cold_i = await cold_inprocess(host, agents["null"], args.cold_sessions)
    await host.close()
    await store.close()

    def both(key: str) -> dict[str, Any]:
        return {"sequential": seq[key], "concurrent": conc[key]}

    out: dict[str, Any] = {"bare": [both("bare")], "actor_creation": creation,
                           "ray_direct": {name: both(f"ray:{name}") for name in agents},
                           "inproc": {name: both(f"inproc:{name}") for name in agents}}
    out["ray_direct"]["cold"] = cold_r
    out["ray_direct"]["host_stats"] = rt_direct.stats()
    out["inproc"]["cold"] = cold_i
    if rt_actor is not None:
        out["ray_actor"] = {"null": both("actor:null"), "host_stats": rt_actor.stats()}
    if rt_host is not None:
        out["ray_host"] = {name: both(f"host:{name}") for name in agents}
    return out


def options(quick: bool, sessions: int = 1000, turns_each: int | None = None, seq_turns: int | None = None,
            warmup: int | None = None, block: int = 25, skip_demo: bool = False,
            skip_memory: bool = False) -> argparse.Namespace:
    """The run's shape; ``quick`` is one burst, 100 sequential turns and 10,000 resident sessions."""
    q = quick
    args = argparse.Namespace(quick=q, sessions=sessions, block=block, skip_demo=skip_demo, skip_memory=skip_memory)
    args.turns_each = turns_each or (1 if q else 3)
    args.seq_turns = seq_turns or (100 if q else 300)
    args.warmup = warmup or (10 if q else 30)
    args.cold_sessions = 20 if q else 100
    args.model_calls = 200 if q else 1000
    args.actor_creations = 3 if q else 8
    args.mem_sizes = [10_000] if q else [10_000, 100_000]
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every setting (its own Ray instance), print the tables; every figure as one dict."""
    q = args.quick
    mem_sizes = args.mem_sizes

    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    t_start = perf()
    res: dict[str, Any] = {"quick": q, "load_start": load_info(),
                           "config": {"sessions": args.sessions, "bursts": args.turns_each,
                                      "seq_turns": args.seq_turns, "warmup": args.warmup, "block": args.block,
                                      "cold_sessions": args.cold_sessions, "num_hosts": 2,
                                      "concurrency": "bursts: all sessions send one turn at once via "
                                                     "asyncio.gather, no semaphore",
                                      "interleaved": True}}
    console.print(f"[bold]bench_runtime[/] {'(quick)' if q else ''} load at start: {res['load_start']}")

    # f. memory, in subprocesses, before anything else loads this process
    res["memory"] = []
    if not args.skip_memory:
        for n in mem_sizes:
            console.print(f"memory: activating {n:,} sessions in a subprocess ...")
            res["memory"].append(run_memory(n))

    import repertory
    from repertory.agents.agent import Agent

    agents = {"null": Agent("Bench", "You are terse.", model="repertory/null")}
    if not args.skip_demo:
        agents["demo"] = Agent("Bench", "You are terse.", model="repertory/demo")

    # d. model client
    console.print("model client cost in-process ...")
    res["model_client"] = asyncio.run(model_client_cost(args.model_calls, 2 * args.warmup + args.seq_turns))

    import logging

    import ray

    from repertory.config import Settings
    from repertory.runtimes.ray import RayRuntime

    with tempfile.TemporaryDirectory(prefix="repertory-bench-") as tmpdir:
        tmp = Path(tmpdir)
        ns = f"bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        # A Ray this process already runs is used as it is (and left running); otherwise a private
        # instance (address="local"), never a cluster another process left in /tmp/ray.
        started = not ray.is_initialized()
        if started:
            ray.init(address="local", namespace=ns, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)
        rt_actor = rt_host = None
        bare: list[Any] = []
        try:
            agent, hosts = start_bare(ns)
            bare = [agent, *hosts]
            t0 = perf()
            rt_direct = repertory.init(store=f"sqlite:///{tmp / 'state.db'}", namespace=f"{ns}-direct", num_hosts=2,
                                       max_resident=200_000)
            res["init_s"] = perf() - t0
            try:  # a second runtime at once (one global is allowed; Sessions take runtime=)
                rt_actor = RayRuntime(Settings(store=f"sqlite:///{tmp / 'state-actor.db'}", namespace=f"{ns}-actor",
                                               num_hosts=2, max_resident=200_000, store_access="actor"))
            except Exception as exc:
                res["ray_actor_error"] = f"{type(exc).__name__}: {exc}"[:1000]
                console.print(f"[red]store_access=actor runtime failed to start:[/] {res['ray_actor_error'][:300]}")
            rt_host = RayRuntime(Settings(store=f"sqlite:///{tmp / 'state-host.db'}", namespace=f"{ns}-host",
                                          num_hosts=2, max_resident=200_000, agent_placement="host"))
            res.update(asyncio.run(measure_all(tmp, agents, hosts, rt_direct, rt_actor, args, rt_host)))
        finally:
            repertory.shutdown()
            if rt_actor is not None:
                rt_actor.shutdown()
            if rt_host is not None:
                rt_host.shutdown()
            try:
                ray.get_actor("store", namespace=f"{ns}-actor")
                res["store_actor_left_running_after_shutdown"] = True
            except ValueError:
                res["store_actor_left_running_after_shutdown"] = False
            for actor in bare:
                ray.kill(actor)
            if started:
                ray.shutdown()

    res["load_end"] = load_info()
    res["elapsed_s"] = perf() - t_start
    console.print(f"load at end: {res['load_end']}; elapsed {res['elapsed_s']:.0f} s")
    res["summary"] = report(res, args)
    return res


def figures(res: dict[str, Any]) -> list[Figure]:
    """Each setting's turns against the bare Ray floor; activation against creating a Ray actor;
    litellm against the null client; resident bytes against the encoded payload."""
    bare = res["bare"]
    b_p50 = min(b["sequential"]["p50_us"] for b in bare)
    b_tps = max(b["concurrent"]["turns_per_s"] for b in bare)
    labels = {"null": NULL_LABEL, "demo": DEMO_LABEL}
    out: list[Figure | None] = []
    for key, prefix in (("ray_direct", "Ray runtime"), ("ray_actor", "Ray runtime, store via StoreActor"),
                        ("ray_host", "Ray runtime, agents in hosts"), ("inproc", "in-process HostCore")):
        for name in ("null", "demo"):
            data = res.get(key, {}).get(name)
            if not data:
                continue
            out.append(figure("runtime", f"{prefix}, {labels[name]}: sequential turn p50",
                              data["sequential"]["p50_us"], "µs", "bare Ray floor: sequential turn p50", b_p50))
            out.append(figure("runtime", f"{prefix}, {labels[name]}: concurrent turns/s",
                              data["concurrent"]["turns_per_s"], "turns/s", "bare Ray floor: concurrent turns/s",
                              b_tps))
    creation = res["actor_creation"]["p50_us"]
    for key, prefix in (("ray_direct", "Ray"), ("inproc", "in-process HostCore")):
        cold = res.get(key, {}).get("cold", {}).get("history_cold")
        if cold:
            out.append(figure("runtime", f"{prefix}: cold activation (first get_history) p50", cold["p50_us"], "µs",
                              "create a Ray actor + first call p50", creation))
    mc = res["model_client"]
    out.append(figure("runtime", "LiteLLMClient → repertory/demo: CPU per call", mc["litellm_demo"]["cpu_us_per_call"],
                      "µs", f"{NULL_LABEL}: CPU per call", mc["null"]["cpu_us_per_call"]))
    for m in res["memory"]:
        if "error" not in m:
            out.append(figure("runtime", f"resident session, {m['sessions']:,} activated: RSS per session",
                              m["rss_bytes_per_session"], "B", "encoded payload per session",
                              m["payload_bytes_per_session"]))
    return [f for f in out if f is not None]


def run(quick: bool = False) -> list[Figure]:
    """Measure (printing the tables) and return the figures with their same-run baselines."""
    return figures(measure(options(quick)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run (fewer turns/sessions, 10k memory only)")
    ap.add_argument("--sessions", type=int, default=1000, help="concurrent sessions (default 1000)")
    ap.add_argument("--turns-each", type=int, default=None,
                    help="timed bursts (one turn per session each) per setting (default 3; quick 1)")
    ap.add_argument("--seq-turns", type=int, default=None, help="timed sequential turns (default 300; quick 100)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed warm-up turns (default 30; quick 10)")
    ap.add_argument("--block", type=int, default=25, help="sequential turns per setting before switching (25)")
    ap.add_argument("--skip-demo", action="store_true", help="only the null model client")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--sessions-served", type=int, default=None, metavar="N",
                    help="only this: one host serves N stored sessions under a resident cap (activations/s, RSS)")
    ap.add_argument("--resident-cap", type=int, default=1000, help="resident sessions with --sessions-served (1000)")
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    cli = ap.parse_args()
    if cli.sessions_served is not None:
        from repertory.bench.served import sessions_served

        emit_json("bench_runtime_sessions_served", sessions_served(cli.sessions_served, cli.resident_cap))
        return
    if cli.memory_child is not None:  # the subprocess of run_memory: one JSON line
        sys.stdout.write(json.dumps(memory_child(cli.memory_child)) + "\n")
        return
    args = options(cli.quick, cli.sessions, cli.turns_each, cli.seq_turns, cli.warmup, cli.block, cli.skip_demo,
                   cli.skip_memory)
    emit_json("bench_runtime", measure(args))


if __name__ == "__main__":
    main()
