"""Bytes stored for a long conversation checkpointed every 5 turns: linear checkpoints against
full copies (the format before linear storage, measured in the same run) and against LangGraph's
SqliteSaver on an equivalent graph; checkpoint and restore latency, linear against full copies.

    .venv/bin/python benchmarks/bench_storage.py [--turns 500] [--every 5]

repertory runs the store path a turn takes (SessionState + state.ops over the real SQLite and
Redis stores; Redis under a private key prefix, dropped afterwards). "full copies" writes each
checkpoint as the whole state, as releases before linear storage did. LangGraph: a StateGraph over
MessagesState with one node that appends the reply, compiled with SqliteSaver, invoked once per
turn with ``durability="exit"`` (one checkpoint per turn: its state lives in its checkpoints, so it
cannot checkpoint less often). Bytes: the store's own accounting (``Store.usage``) and, for the
SQLite files, the pages in use after a WAL checkpoint. Message contents are ~250 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import content, emit_json, fmt_num, fmt_ratio, fmt_us, load_info, ratio, summary, table

from repertory.state import ops, snapshots
from repertory.state.session_state import SessionState
from repertory.stores.base import CheckpointInfo, CheckpointRecord
from repertory.stores.codec import MsgpackCodec

_codec = MsgpackCodec()


def _file_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size, pages, free = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "page_count",
                                                                                    "freelist_count"))
        return size * (pages - free)
    finally:
        conn.close()


async def _conversation(store: Any, turns: int, every: int, linear: bool) -> dict[str, Any]:
    state = SessionState.new("bench/s", "s", "bench")
    put_lat: list[float] = []
    for t in range(turns):
        write, meta, messages = state.append_write([
            {"role": "user", "content": content(2 * t), "timestamp": time.time()},
            {"role": "assistant", "content": content(2 * t + 1), "timestamp": time.time()}])
        state.applied(await store.commit(write), meta, messages)
        if (t + 1) % every == 0:
            t0 = time.perf_counter()
            seq = (t + 1) // every
            info = CheckpointInfo(state.key, f"c{seq}", "checkpoint", seq, time.time(), state.meta["turns"], "")
            data = (snapshots.snapshot(state.meta, state.revision, state.messages) if linear
                    else ops.snapshot(state))
            await store.put_checkpoint(CheckpointRecord(info, data))
            put_lat.append(time.perf_counter() - t0)
    restore_lat: list[float] = []
    infos = await store.list_checkpoints(state.key)
    for info in infos[:: max(1, len(infos) // 40)]:
        t0 = time.perf_counter()
        rec = await store.get_checkpoint(state.key, info.cp_id)
        snap = await snapshots.read_snapshot(store, state.key, rec.data, state.messages, "bench")
        assert len(snap["messages"]) == 2 * info.turn
        restore_lat.append(time.perf_counter() - t0)
    usage = (await store.usage([state.key]))[state.key]
    return {"history_bytes": sum(map(len, state.messages)), "messages": usage.messages, "meta": usage.meta,
            "checkpoints": usage.checkpoints, "total": usage.total, "n_checkpoints": len(infos),
            "checkpoint": summary(put_lat), "restore_read": summary(restore_lat)}


async def bench_repertory(tmp: Path, turns: int, every: int, redis_url: str | None) -> dict[str, dict[str, Any]]:
    from repertory.stores.sqlite import SQLiteStore

    out: dict[str, dict[str, Any]] = {}
    for linear in (True, False):
        name = "linear" if linear else "full copies"
        path = tmp / f"rp-{'linear' if linear else 'full'}.db"
        store = SQLiteStore(path)
        try:
            out[f"SQLite, {name}"] = await _conversation(store, turns, every, linear)
        finally:
            await store.close()
        out[f"SQLite, {name}"]["file_bytes"] = _file_bytes(path)
        if redis_url:
            from repertory.stores.redis import RedisStore

            prefix = f"rpbench-{uuid.uuid4().hex[:8]}"
            store = RedisStore(redis_url, prefix=prefix)
            try:
                out[f"Redis, {name}"] = await _conversation(store, turns, every, linear)
            finally:
                keys = [k async for k in store._client.scan_iter(match=f"{prefix}:*")]
                if keys:
                    await store._client.unlink(*keys)
                await store.close()
    return out


def bench_langgraph(tmp: Path, turns: int) -> dict[str, Any] | None:
    try:
        from langchain_core.messages import AIMessage, HumanMessage
        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import START, MessagesState, StateGraph
    except ImportError:
        return None
    path = tmp / "langgraph.db"
    conn = sqlite3.connect(path, check_same_thread=False)
    saver = SqliteSaver(conn)
    graph = StateGraph(MessagesState)
    counter = {"n": 0}

    def reply(state: MessagesState) -> dict[str, Any]:
        counter["n"] += 1
        return {"messages": [AIMessage(content(2 * counter["n"] - 1))]}

    graph.add_node("reply", reply)
    graph.add_edge(START, "reply")
    app = graph.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "s"}}
    lat: list[float] = []
    for t in range(turns):
        t0 = time.perf_counter()
        app.invoke({"messages": [HumanMessage(content(2 * t))]}, config, durability="exit")
        lat.append(time.perf_counter() - t0)
    n = conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
    blobs = conn.execute("SELECT COALESCE(SUM(length(checkpoint)) + SUM(length(metadata)), 0) FROM checkpoints"
                         ).fetchone()[0] + conn.execute("SELECT COALESCE(SUM(length(value)), 0) FROM writes"
                                                        ).fetchone()[0]
    conn.close()
    return {"total": blobs, "file_bytes": _file_bytes(path), "n_checkpoints": n, "turn": summary(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=500)
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="'' to skip Redis")
    ap.add_argument("--no-langgraph", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rp = asyncio.run(bench_repertory(tmp, args.turns, args.every, args.redis or None))
        lg = None if args.no_langgraph else bench_langgraph(tmp, args.turns)
    history = rp["SQLite, linear"]["history_bytes"]
    rows = []
    for name, r in rp.items():
        rows.append([name, fmt_num(r["history_bytes"]), fmt_num(r["checkpoints"]), fmt_num(r["total"]),
                     fmt_ratio(ratio(r["total"], r["history_bytes"])), fmt_num(r.get("file_bytes")),
                     r["n_checkpoints"], fmt_us(r["checkpoint"]["p50_us"]), fmt_us(r["restore_read"]["p50_us"])])
    if lg is not None:
        rows.append(["LangGraph SqliteSaver (1 checkpoint per turn)", fmt_num(history), "-", fmt_num(lg["total"]),
                     fmt_ratio(ratio(lg["total"], history)), fmt_num(lg["file_bytes"]), lg["n_checkpoints"], "-", "-"])
    table(f"{args.turns} turns, a checkpoint every {args.every} (repertory)", ["store", "history B", "checkpoints B",
          "stored B", "stored / history", "SQLite file B", "checkpoints", "checkpoint p50", "restore read p50"], rows)
    for backend in ("SQLite", "Redis"):
        lin, full = rp.get(f"{backend}, linear"), rp.get(f"{backend}, full copies")
        if lin and full:
            table(f"{backend}: linear against full copies (same run)", ["", "ratio"], [
                ["stored bytes", fmt_ratio(ratio(full["total"], lin["total"]))],
                ["checkpoint p50 (full / linear)", fmt_ratio(ratio(full["checkpoint"]["p50_us"],
                                                                   lin["checkpoint"]["p50_us"]))],
                ["restore read p50 (full / linear)", fmt_ratio(ratio(full["restore_read"]["p50_us"],
                                                                     lin["restore_read"]["p50_us"]))]])
    if lg is not None:
        table("against LangGraph SqliteSaver (same run)", ["", "ratio"], [
            ["LangGraph stored bytes / repertory SQLite linear", fmt_ratio(ratio(lg["total"], rp["SQLite, linear"]["total"]))],
            ["LangGraph SQLite file / repertory SQLite file", fmt_ratio(ratio(lg["file_bytes"],
                                                                             rp["SQLite, linear"]["file_bytes"]))]])
    emit_json("storage", {"turns": args.turns, "every": args.every, "repertory": rp, "langgraph": lg,
                          "load": load_info()})


if __name__ == "__main__":
    main()
