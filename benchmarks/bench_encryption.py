#!/usr/bin/env python
"""Encryption at rest: what EncryptedStore costs over the same backend without it.

Same shapes as bench_store.py (whose backends and measurement it reuses): S sessions (default
200) of 20 messages (~250-byte contents) loaded cold, then T turns (default 10) per session,
each a durable append of two messages, interleaved across the four backends (SQLite, SQLite
encrypted, Redis, Redis encrypted) in a shuffled order per session, so that they share the
machine's load and none always goes first; then group commit
(S sessions appending one turn at once, asyncio.gather) in writes/s. The encrypted backends are
the same stores behind ``EncryptedStore`` with one AES-256-GCM key (meta, every message and
checkpoint sealed with the session key as associated data). Also the cost of sealing and
opening one ~250-byte record alone.

Ratios printed: encrypted / plain (latency: above 1 is slower; writes/s: below 1 is slower).
Only keys under this run's prefix are written to Redis, deleted at the end.
Run:  .venv/bin/python benchmarks/bench_encryption.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import console, emit_json, fmt_num, fmt_ratio, fmt_us, load_info, messages20, ratio, summary, table
from repertory.bench.store import REDIS_URL, TTL, RepertoryBackend, delete_prefix, group_commit, redis_up, turn_messages

perf = time.perf_counter


def seal_cost(n: int = 20_000) -> dict[str, Any]:
    """Seal and open one ~250-byte codec record, in-process."""
    from repertory.stores.codec import MsgpackCodec
    from repertory.stores.crypto import KeyRing, generate_encryption_key

    ring = KeyRing(generate_encryption_key("bench"))
    blob = MsgpackCodec().encode({"role": "user", "content": "x" * 250, "timestamp": time.time()})
    ctx = b"repertory:msg:s0001"
    sealed, opened = [], []
    for _ in range(n):
        t = perf()
        s = ring.encrypt(blob, ctx)
        sealed.append(perf() - t)
        t = perf()
        ring.decrypt(s, ctx)
        opened.append(perf() - t)
    return {"record_bytes": len(blob), "overhead_bytes": len(s) - len(blob), "seal": summary(sealed),
            "open": summary(opened)}


async def measure(backends: list[RepertoryBackend], sids: list[str], args) -> dict[str, Any]:
    """Setup, cold loads, then per-turn writes; each session visits the backends in a new order."""
    base = messages20()
    lat: dict[str, dict[str, list[float]]] = {b.name: {"load": [], "write": []} for b in backends}
    for b in backends:
        console.print(f"  setting up {b.name} ...")
        await b.open()
        for sid in sids:
            await b.setup(sid, base)
        for sid in sids[:20]:  # warm connections and statement caches
            await b.load(sid)
        b.raw_load.clear()
    rng = random.Random(7)
    console.print(f"  cold loads: {args.load_rounds} rounds × {len(sids)} sessions; writes: {args.turns} turns ...")
    for _ in range(args.load_rounds):
        for sid in sids:
            for b in rng.sample(backends, len(backends)):
                t = perf()
                assert len(await b.load(sid)) == 20
                lat[b.name]["load"].append(perf() - t)
    for b in backends:
        b.raw_commit.clear()
    for t_i in range(args.turns):
        for s_i, sid in enumerate(sids):
            for b in rng.sample(backends, len(backends)):
                msgs = turn_messages(s_i, t_i)
                t = perf()
                await b.write(sid, msgs)
                lat[b.name]["write"].append(perf() - t)
    out = {}
    for b in backends:
        assert len(await b.load(sids[0])) == 20 + 2 * args.turns
        out[b.name] = {"write": summary(lat[b.name]["write"]), "load": summary(lat[b.name]["load"]),
                       "load_store_only": summary(b.raw_load[: len(lat[b.name]["load"])]),
                       "commit_store_only": summary(b.raw_commit)}
    return out


def encrypted(make):
    from repertory.stores.crypto import KeyRing, generate_encryption_key
    from repertory.stores.encrypted import EncryptedStore

    ring = KeyRing(generate_encryption_key("bench"))
    return lambda: EncryptedStore(make(), ring)


async def run(args) -> dict[str, Any]:
    from repertory.stores import SQLiteStore

    tmp = Path(tempfile.mkdtemp(prefix="repertory-bench-enc-"))
    prefix = f"rpbench-enc-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    sids = [f"s{i:04d}-{uuid.uuid4().hex[:8]}" for i in range(args.sessions)]
    pairs = [("sqlite", RepertoryBackend("SQLite", "sqlite", lambda: SQLiteStore(tmp / "plain.db"), None),
              RepertoryBackend("SQLite encrypted", "sqlite",
                               encrypted(lambda: SQLiteStore(tmp / "enc.db")), None))]
    problem = await redis_up()
    if problem is None:
        from repertory.stores.redis import RedisStore

        pairs.append(("redis", RepertoryBackend("Redis", "redis", lambda: RedisStore(REDIS_URL, prefix=f"{prefix}:p"),
                                                TTL),
                      RepertoryBackend("Redis encrypted", "redis",
                                       encrypted(lambda: RedisStore(REDIS_URL, prefix=f"{prefix}:e")), TTL)))
    else:
        console.print(f"[yellow]Redis skipped:[/] {problem}")
    backends = [b for _, plain, enc in pairs for b in (plain, enc)]
    try:
        results = await measure(backends, sids, args)
        live = backends
        console.print(f"  group commit: {args.group_rounds} rounds × {len(sids)} sessions ...")
        rng = random.Random(11)
        for _ in range(args.group_rounds):  # every backend once a round, in a new order each round
            for b in rng.sample(live, len(live)):
                g = await group_commit(b, sids, 1)
                results[b.name].setdefault("_group", []).append(g)
        for b in live:
            rounds = results[b.name].pop("_group")
            results[b.name]["group"] = {
                k: sorted(r[k] for r in rounds)[len(rounds) // 2]
                for k in ("sequential_writes_per_s", "concurrent_writes_per_s")}
        for b in live:
            await b.close()
    finally:
        if problem is None:
            await delete_prefix(prefix)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"backends": results, "pairs": [(fam, p.name, e.name) for fam, p, e in pairs],
            "seal": seal_cost(5_000 if args.quick else 20_000)}


def report(res: dict[str, Any]) -> dict[str, Any]:
    b = res["backends"]
    rows = []
    for name, r in b.items():
        if "error" in r:
            rows.append([name, r["error"], "", "", "", ""])
            continue
        rows.append([name, fmt_us(r["write"]["p50_us"]), fmt_us(r["write"]["p99_us"]), fmt_us(r["load"]["p50_us"]),
                     fmt_us(r["load_store_only"]["p50_us"]), fmt_num(r["group"]["concurrent_writes_per_s"])])
    table("Per backend", ["backend", "write p50", "write p99", "load p50", "store.load p50", "group writes/s"], rows)
    out: dict[str, Any] = {}
    rows = []
    for fam, plain, enc in res["pairs"]:
        p, e = b.get(plain, {}), b.get(enc, {})
        if "write" not in p or "write" not in e:
            continue
        r = {"write_p50": ratio(e["write"]["p50_us"], p["write"]["p50_us"]),
             "write_p99": ratio(e["write"]["p99_us"], p["write"]["p99_us"]),
             "load_p50": ratio(e["load"]["p50_us"], p["load"]["p50_us"]),
             "store_load_p50": ratio(e["load_store_only"]["p50_us"], p["load_store_only"]["p50_us"]),
             "group_writes_per_s": ratio(e["group"]["concurrent_writes_per_s"], p["group"]["concurrent_writes_per_s"])}
        out[fam] = r
        rows.append([fam, *(fmt_ratio(v) for v in r.values())])
    table("Encrypted / plain (same run)", ["store", "write p50", "write p99", "load p50", "store.load p50",
                                           "group writes/s"], rows,
          caption="latency ratios above 1: encryption is slower; writes/s below 1: fewer writes per second")
    s = res["seal"]
    table("One ~250-byte record alone", ["seal p50", "open p50", "bytes added"],
          [[fmt_us(s["seal"]["p50_us"]), fmt_us(s["open"]["p50_us"]), str(s["overhead_bytes"])]])
    return {"ratios": out, "seal_p50_us": s["seal"]["p50_us"], "open_p50_us": s["open"]["p50_us"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="50 sessions × 4 turns")
    args = ap.parse_args()
    args.sessions = 50 if args.quick else 200
    args.turns = 4 if args.quick else 10
    args.load_rounds = 2 if args.quick else 3
    args.group_rounds = 3 if args.quick else 5
    t0 = perf()
    res: dict[str, Any] = {"quick": args.quick, "load_start": load_info(),
                           "config": {"sessions": args.sessions, "turns": args.turns, "message_bytes": 250}}
    console.print(f"[bold]bench_encryption[/] {'(quick)' if args.quick else ''} load at start: {res['load_start']}")
    res.update(asyncio.run(run(args)))
    res["load_end"] = load_info()
    res["elapsed_s"] = perf() - t0
    console.print(f"load at end: {res['load_end']}; elapsed {res['elapsed_s']:.0f} s")
    res["summary"] = report(res)
    emit_json("bench_encryption", res)


if __name__ == "__main__":
    main()
