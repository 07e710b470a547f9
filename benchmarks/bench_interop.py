#!/usr/bin/env python
"""Interop benchmark: repertory under LangGraph and the OpenAI Agents SDK, beside their own stores.

Same data for every backend, in one process, the backends taking turns round by round so
they share the machine's load periods; ratios are against the peer on the same kind of store.

LangGraph (sync methods, as ``graph.invoke`` calls them): T threads (default 50), each gets C
checkpoints (default 20) chained by parent id; a checkpoint carries a ``messages`` channel of
20 messages (~250-byte contents) and a counter. ``put`` times each put, ``get_tuple`` the latest
checkpoint of each thread, ``list`` all checkpoints of a thread (newest first, with pending writes).
  SQLite: LangGraph SqliteSaver (langgraph-checkpoint-sqlite; SQLite's default synchronous=FULL,
          and again with synchronous=NORMAL, which repertory's store uses) vs RepertorySaver("sqlite:///...")
  Redis:  plain-Redis RedisSaver (langgraph-checkpoint-plainredis) vs RepertorySaver("redis://...")

OpenAI Agents SDK (async, as ``Runner.run`` calls them): S sessions (default 50), each gets
``add_items`` of 2 items (a user and an assistant message, ~250 bytes each) R times (default
10); then ``get_items()`` (all 20) and ``get_items(limit=10)`` per session.
  SQLite: SDK SQLiteSession (file) vs RepertorySession("sqlite:///...")
  Redis:  SDK RedisSession vs RepertorySession("redis://...")

Redis runs on 127.0.0.1:6379 under this run's unique key prefixes, removed at the end.
Run:  .venv/bin/python benchmarks/bench_interop.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import console, content, fmt_ratio, fmt_us, load_info, summary  # noqa: E402
from rich.table import Table  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/15"


# -- LangGraph ----------------------------------------------------------------------------
def _checkpoint(i: int, messages: list[dict[str, Any]]) -> dict[str, Any]:
    from langgraph.checkpoint.base import empty_checkpoint

    cp = empty_checkpoint()
    cp["channel_values"] = {"messages": messages, "count": i}
    cp["channel_versions"] = {"messages": f"{i:032}.0", "count": f"{i:032}.0"}
    cp["versions_seen"] = {"node": {"messages": f"{i:032}.0"}}
    return cp


def langgraph_savers(tmp: Path, prefix: str) -> dict[str, tuple[str, Any]]:
    """name -> (kind, saver); peers that are not installed are skipped with a note."""
    import sqlite3

    from repertory.interop.langgraph import RepertorySaver

    out: dict[str, tuple[str, Any]] = {}
    try:
        from langgraph.checkpoint.sqlite import SqliteSaver

        out["SqliteSaver"] = ("sqlite", SqliteSaver(sqlite3.connect(tmp / "lg-peer.db", check_same_thread=False)))
        # repertory's SQLite runs synchronous=NORMAL (no fsync per commit in WAL mode); SQLite's
        # default, FULL, is what SqliteSaver gets. The same saver on NORMAL, for a like-for-like put:
        normal = sqlite3.connect(tmp / "lg-peer-normal.db", check_same_thread=False)
        normal.execute("PRAGMA journal_mode=WAL")
        normal.execute("PRAGMA synchronous=NORMAL")
        out["SqliteSaver (NORMAL)"] = ("sqlite", SqliteSaver(normal))
    except ImportError:
        console.print("[yellow]skipped SqliteSaver: pip install langgraph-checkpoint-sqlite")
    out["RepertorySaver sqlite"] = ("sqlite", RepertorySaver(f"sqlite:///{tmp / 'lg-repertory.db'}"))
    try:
        from langgraph_checkpoint_plainredis import RedisSaver

        out["plainredis RedisSaver"] = ("redis", RedisSaver(url=REDIS_URL, prefix=f"{prefix}-plain"))
    except ImportError:
        console.print("[yellow]skipped plain-Redis saver: pip install langgraph-checkpoint-plainredis")
    out["RepertorySaver redis"] = ("redis", RepertorySaver(f"{REDIS_URL}?prefix={prefix}-rp"))
    return out


def bench_langgraph(threads: int, checkpoints: int, tmp: Path, prefix: str) -> dict[str, dict[str, Any]]:
    savers = langgraph_savers(tmp, prefix)
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": content(i)} for i in range(20)]
    lat: dict[str, dict[str, list[float]]] = {n: {"put": [], "get_tuple": [], "list": []} for n in savers}
    parents: dict[str, dict[str, str | None]] = {n: {} for n in savers}
    ids = [[f"t{t}" for t in range(threads)]]
    for c in range(checkpoints):  # round c: every saver puts checkpoint c of every thread
        cps = [_checkpoint(c, messages) for _ in range(threads)]
        for name, (_, saver) in savers.items():
            for t, thread_id in enumerate(ids[0]):
                parent = parents[name].get(thread_id)
                config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": "",
                                           **({"checkpoint_id": parent} if parent else {})}}
                t0 = time.perf_counter()
                saved = saver.put(config, cps[t], {"source": "loop", "step": c}, cps[t]["channel_versions"])
                lat[name]["put"].append(time.perf_counter() - t0)
                saver.put_writes(saved, [("messages", messages[:1])], f"task-{c}")
                parents[name][thread_id] = saved["configurable"]["checkpoint_id"]
    for _ in range(3):
        for name, (_, saver) in savers.items():
            for thread_id in ids[0]:
                config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
                t0 = time.perf_counter()
                tup = saver.get_tuple(config)
                lat[name]["get_tuple"].append(time.perf_counter() - t0)
                assert tup is not None and len(tup.checkpoint["channel_values"]["messages"]) == 20
        for name, (_, saver) in savers.items():
            for thread_id in ids[0]:
                config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
                t0 = time.perf_counter()
                found = list(saver.list(config))
                lat[name]["list"].append(time.perf_counter() - t0)
                assert len(found) == checkpoints
    for name, (_, saver) in savers.items():
        close = getattr(saver, "close", None)
        if name.startswith("RepertorySaver") and close is not None:
            close()
    return {n: {"kind": savers[n][0], **{op: summary(v) for op, v in ops.items()}} for n, ops in lat.items()}


# -- OpenAI Agents SDK --------------------------------------------------------------------
def agents_sessions(tmp: Path, prefix: str) -> dict[str, tuple[str, Callable[[str], Any]]]:
    from repertory.interop.openai_agents import RepertorySession
    from repertory.stores import open_store

    out: dict[str, tuple[str, Callable[[str], Any]]] = {}
    try:
        from agents import SQLiteSession

        out["SDK SQLiteSession"] = ("sqlite", lambda sid: SQLiteSession(sid, tmp / "agents-peer.db"))
    except ImportError:
        console.print("[yellow]skipped the Agents SDK: pip install openai-agents")
        return out
    sq = open_store(f"sqlite:///{tmp / 'agents-repertory.db'}")
    out["RepertorySession sqlite"] = ("sqlite", lambda sid: RepertorySession(sid, store=sq))
    try:
        from agents.extensions.memory import RedisSession

        out["SDK RedisSession"] = ("redis", lambda sid: RedisSession.from_url(sid, url=REDIS_URL,
                                                                              key_prefix=f"{prefix}-sdk"))
    except ImportError:
        console.print("[yellow]skipped the SDK's RedisSession: pip install 'openai-agents[redis]'")
    rd: list[Any] = []

    def repertory_redis(sid: str) -> Any:
        if not rd:  # a Redis store is bound to the loop that first uses it
            rd.append(open_store(f"{REDIS_URL}?prefix={prefix}-rp"))
        return RepertorySession(sid, store=rd[0])
    out["RepertorySession redis"] = ("redis", repertory_redis)
    return out


async def bench_agents(sessions: int, rounds: int, tmp: Path, prefix: str) -> dict[str, dict[str, Any]]:
    kinds = agents_sessions(tmp, prefix)
    handles = {n: [make(f"s{i}") for i in range(sessions)] for n, (_, make) in kinds.items()}
    lat: dict[str, dict[str, list[float]]] = {n: {"add_items": [], "get_items": [], "get_items(limit=10)": []}
                                              for n in kinds}
    for r in range(rounds):
        items = [{"role": "user", "content": content(2 * r)},
                 {"role": "assistant", "content": content(2 * r + 1)}]
        for name, hs in handles.items():
            for h in hs:
                t0 = time.perf_counter()
                await h.add_items(items)
                lat[name]["add_items"].append(time.perf_counter() - t0)
    for _ in range(3):
        for name, hs in handles.items():
            for h in hs:
                t0 = time.perf_counter()
                got = await h.get_items()
                lat[name]["get_items"].append(time.perf_counter() - t0)
                assert len(got) == 2 * rounds
            for h in hs:
                t0 = time.perf_counter()
                got = await h.get_items(limit=10)
                lat[name]["get_items(limit=10)"].append(time.perf_counter() - t0)
                assert len(got) == 10
    for name, hs in handles.items():
        for h in hs:
            if hasattr(h, "aclose"):
                await h.aclose()
            elif hasattr(h, "close"):
                res = h.close()
                if asyncio.iscoroutine(res):
                    await res
    return {n: {"kind": kinds[n][0], **{op: summary(v) for op, v in ops.items()}} for n, ops in lat.items()}


# -- report -------------------------------------------------------------------------------
def table(title: str, results: dict[str, dict[str, Any]], ops: list[str], peers: dict[str, str]) -> dict:
    ratios: dict[str, dict[str, float]] = {}
    t = Table(title=title)
    t.add_column("backend")
    for op in ops:
        t.add_column(f"{op} p50")
        t.add_column("× peer")
    for name, r in results.items():
        peer = results.get(peers.get(r["kind"], ""))
        row = [name]
        for op in ops:
            p50 = r[op]["p50_us"]
            ratio = p50 / peer[op]["p50_us"] if peer else float("nan")
            ratios.setdefault(name, {})[op] = ratio
            row += [fmt_us(p50), fmt_ratio(ratio)]
        t.add_row(*row)
    console.print(t)
    return ratios


async def cleanup(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        names = [n async for n in client.scan_iter(match=f"{prefix}*", count=1000)]
        for i in range(0, len(names), 500):
            await client.unlink(*names[i:i + 500])
    finally:
        await client.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=50)
    ap.add_argument("--checkpoints", type=int, default=20)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    if args.quick:
        args.threads, args.sessions = 20, 20
    prefix = f"rpbench-{uuid.uuid4().hex[:12]}"
    start = load_info()
    out: dict[str, Any] = {"load_start": start}
    console.print(f"load at start: {start}")
    try:
        with tempfile.TemporaryDirectory() as d:
            lg = bench_langgraph(args.threads, args.checkpoints, Path(d), prefix)
            out["langgraph"] = lg
            out["langgraph_ratios"] = table(
                f"LangGraph: {args.threads} threads × {args.checkpoints} checkpoints (p50, × the peer on that store)",
                lg, ["put", "get_tuple", "list"], {"sqlite": "SqliteSaver", "redis": "plainredis RedisSaver"})
            ag = asyncio.run(bench_agents(args.sessions, args.rounds, Path(d), prefix))
            out["agents"] = ag
            out["agents_ratios"] = table(
                f"OpenAI Agents SDK: {args.sessions} sessions × {args.rounds} add_items of 2 items (p50)",
                ag, ["add_items", "get_items", "get_items(limit=10)"],
                {"sqlite": "SDK SQLiteSession", "redis": "SDK RedisSession"})
    finally:
        asyncio.run(cleanup(prefix))
    out["load_end"] = load_info()
    console.print(f"load at end: {out['load_end']}")
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
