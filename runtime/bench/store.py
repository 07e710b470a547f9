#!/usr/bin/env python
"""Durable state benchmark: per-turn checkpoint writes and cold loads, repertory vs peers.

Every backend gets the same data: S sessions (default 200) that each start with the same 20
messages (~250-byte contents), loaded cold (every session once per round, sequentially), then
T turns (default 10) per session, each a durable append of one user + one assistant message
(~250 bytes each), sequentially, turn-major (turn 1 of every session, then turn 2, ...). All
calls are in-process, with no actor hop, one at a time.

Backends (a peer that is not installed is skipped with the pip line that installs it):

  SQLite  repertory SQLiteStore (its default synchronous=NORMAL, and synchronous=FULL)
          OpenAI Agents SDK SQLiteSession           add_items / get_items
          LangGraph SqliteSaver                     put / get_tuple (whole state per checkpoint)
  Redis   repertory RedisStore (Lua CAS commit, TTL 1 h)   on 127.0.0.1:6379, unique key prefix
          raw redis-py SET EX of a msgpack'ed history (baseline: the least a store can do)
          OpenAI Agents SDK RedisSession            add_items / get_items (TTL 1 h)
          LangGraph RedisSaver                      needs RediSearch/RedisJSON modules

"write" for repertory = SessionState.append_write (encode) + Store.commit + applied.
"load" = read the session and decode it to message dicts (for repertory: Store.load +
SessionState.from_record + history(); the "store.load only" column leaves the messages encoded,
which is what activating a session costs in a host).

Group commit: S sessions each append one turn at once (asyncio.gather) vs the same S appends
one after another; writes/s.

Only keys under this run's prefix are written to Redis, and they are deleted at the end (no
FLUSHDB). Run:  .venv/bin/python benchmarks/bench_store.py (or: repertory bench store) [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repertory.bench.common import (
    Figure,
    console,
    content,
    emit_json,
    figure,
    fmt_num,
    fmt_ratio,
    fmt_us,
    load_info,
    messages20,
    ratio,
    summary,
    table,
    verdict,
)

perf = time.perf_counter
REDIS_URL = "redis://127.0.0.1:6379/0"
TTL = 3600


def turn_messages(s: int, t: int) -> list[dict[str, Any]]:
    now = time.time()
    return [{"role": "user", "content": content(1000 + 2 * t), "timestamp": now},
            {"role": "assistant", "content": content(1001 + 2 * t), "timestamp": now}]


class Backend:
    """One store under test: ``setup`` writes the 20-message sessions, then ``write``/``load``."""

    name = ""
    family = ""  # "sqlite" or "redis"
    is_repertory = False
    in_verdict = True  # a peer named in the targets ("ahead of both peers")
    notes = ""

    async def open(self) -> None: ...
    async def setup(self, sid: str, msgs: list[dict]) -> None: ...
    async def write(self, sid: str, msgs: list[dict]) -> None: ...
    async def load(self, sid: str) -> list[dict]: ...
    async def close(self) -> None: ...


# -- repertory -------------------------------------------------------------------------------
class RepertoryBackend(Backend):
    is_repertory = True

    def __init__(self, name: str, family: str, make_store: Callable[[], Any], ttl: float | None) -> None:
        self.name, self.family, self._make, self.ttl = name, family, make_store, ttl
        self.states: dict[str, Any] = {}
        self.raw_load: list[float] = []
        self.raw_commit: list[float] = []

    async def open(self) -> None:
        self.store = self._make()

    async def setup(self, sid, msgs):
        from repertory.state.session_state import SessionState

        st = SessionState.new(sid, sid, None, self.ttl)
        write, meta, enc = st.append_write(msgs, turns=10)
        st.applied(await self.store.commit(write), meta, enc)
        self.states[sid] = st

    async def write(self, sid, msgs):
        st = self.states[sid]
        write, meta, enc = st.append_write(msgs, turn_id=uuid.uuid4().hex)
        t0 = perf()
        version = await self.store.commit(write)
        self.raw_commit.append(perf() - t0)
        st.applied(version, meta, enc)

    async def load(self, sid):
        from repertory.state.session_state import SessionState

        t0 = perf()
        rec = await self.store.load(sid)
        self.raw_load.append(perf() - t0)
        return SessionState.from_record(rec).history()

    async def close(self):
        await self.store.close()


# -- raw redis baseline ----------------------------------------------------------------------
class RawRedisBackend(Backend):
    name = "raw redis-py SET EX msgpack(history) (baseline)"
    family = "redis"
    notes = "no CAS, no per-message records; the application keeps the history in memory"

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}:raw"
        self.hist: dict[str, list[dict]] = {}

    async def open(self):
        import msgpack
        import redis.asyncio as aredis

        self.mp = msgpack
        self.r = aredis.Redis.from_url(REDIS_URL)

    async def setup(self, sid, msgs):
        self.hist[sid] = list(msgs)
        await self.r.set(f"{self.prefix}:{sid}", self.mp.packb(self.hist[sid]), ex=TTL)

    async def write(self, sid, msgs):
        h = self.hist[sid]
        h.extend(msgs)
        await self.r.set(f"{self.prefix}:{sid}", self.mp.packb(h), ex=TTL)

    async def load(self, sid):
        return self.mp.unpackb(await self.r.get(f"{self.prefix}:{sid}"))

    async def close(self):
        await self.r.aclose()


# -- OpenAI Agents SDK -----------------------------------------------------------------------
class AgentsSQLiteBackend(Backend):
    name = "OpenAI Agents SDK SQLiteSession"
    family = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sessions: dict[str, Any] = {}

    async def open(self):
        from agents import SQLiteSession

        self.cls = SQLiteSession
        import agents

        self.notes = f"openai-agents {getattr(agents, '__version__', '?')}; json per item, asyncio.to_thread per call"

    def _s(self, sid):
        s = self.sessions.get(sid)
        if s is None:
            s = self.sessions[sid] = self.cls(sid, str(self.path))
        return s

    async def setup(self, sid, msgs):
        await self._s(sid).add_items(list(msgs))

    async def write(self, sid, msgs):
        await self._s(sid).add_items(msgs)

    async def load(self, sid):
        return await self._s(sid).get_items()

    async def close(self):
        for s in self.sessions.values():
            try:
                s.close()
            except Exception:
                pass


class AgentsRedisBackend(Backend):
    name = "OpenAI Agents SDK RedisSession"
    family = "redis"

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}:agents"
        self.sessions: dict[str, Any] = {}

    async def open(self):
        import redis.asyncio as aredis
        from agents.extensions.memory.redis_session import RedisSession

        import agents

        self.cls = RedisSession
        self.r = aredis.Redis.from_url(REDIS_URL)
        self.notes = f"openai-agents {getattr(agents, '__version__', '?')}; WATCH/MULTI per append, TTL {TTL} s"

    def _s(self, sid):
        s = self.sessions.get(sid)
        if s is None:
            s = self.sessions[sid] = self.cls(sid, redis_client=self.r, key_prefix=self.prefix, ttl=TTL)
        return s

    async def setup(self, sid, msgs):
        await self._s(sid).add_items(list(msgs))

    async def write(self, sid, msgs):
        await self._s(sid).add_items(msgs)

    async def load(self, sid):
        return await self._s(sid).get_items()

    async def close(self):
        await self.r.aclose()


# -- LangGraph -------------------------------------------------------------------------------
class LangGraphSaverBackend(Backend):
    """put() a checkpoint holding the whole history per turn; get_tuple() the latest."""

    def __init__(self, name: str, family: str, make_saver: Callable[[], Any]) -> None:
        self.name, self.family, self._make = name, family, make_saver
        self.hist: dict[str, list[dict]] = {}
        self.configs: dict[str, dict] = {}

    async def open(self):
        from langgraph.checkpoint.base import empty_checkpoint

        self.empty = empty_checkpoint
        self.saver = self._make()

    def _put(self, sid: str) -> None:
        h = self.hist[sid]
        cp = self.empty()
        cp["channel_values"] = {"messages": h}
        cp["channel_versions"] = {"messages": len(h)}
        cfg = self.configs.get(sid) or {"configurable": {"thread_id": sid, "checkpoint_ns": ""}}
        self.configs[sid] = self.saver.put(cfg, cp, {"source": "loop", "step": len(h) // 2}, {"messages": len(h)})

    async def setup(self, sid, msgs):
        self.hist[sid] = list(msgs)
        self._put(sid)

    async def write(self, sid, msgs):
        self.hist[sid].extend(msgs)
        self._put(sid)

    async def load(self, sid):
        tup = self.saver.get_tuple({"configurable": {"thread_id": sid, "checkpoint_ns": ""}})
        return tup.checkpoint["channel_values"]["messages"]

    async def close(self):
        conn = getattr(self.saver, "conn", None)
        if conn is not None:
            conn.close()


class LangGraphAsyncSaverBackend(LangGraphSaverBackend):
    """AsyncSqliteSaver (aiosqlite): what an asyncio application would use; information only."""

    in_verdict = False
    notes = "info only: the async variant (aiosqlite thread), not in the targets"

    def __init__(self, path: Path) -> None:
        super().__init__("LangGraph AsyncSqliteSaver (aiosqlite)", "sqlite", lambda: None)
        self.path = path

    async def open(self):
        import aiosqlite
        from langgraph.checkpoint.base import empty_checkpoint
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        self.empty = empty_checkpoint
        self.conn = await aiosqlite.connect(self.path)
        self.saver = AsyncSqliteSaver(self.conn)
        await self.saver.setup()

    async def _aput(self, sid: str) -> None:
        h = self.hist[sid]
        cp = self.empty()
        cp["channel_values"] = {"messages": h}
        cp["channel_versions"] = {"messages": len(h)}
        cfg = self.configs.get(sid) or {"configurable": {"thread_id": sid, "checkpoint_ns": ""}}
        self.configs[sid] = await self.saver.aput(cfg, cp, {"source": "loop", "step": len(h) // 2},
                                                  {"messages": len(h)})

    async def setup(self, sid, msgs):
        self.hist[sid] = list(msgs)
        await self._aput(sid)

    async def write(self, sid, msgs):
        self.hist[sid].extend(msgs)
        await self._aput(sid)

    async def load(self, sid):
        tup = await self.saver.aget_tuple({"configurable": {"thread_id": sid, "checkpoint_ns": ""}})
        return tup.checkpoint["channel_values"]["messages"]

    async def close(self):
        await self.conn.close()


# -- the measurement -------------------------------------------------------------------------
async def measure_all(backends: list[Backend], sids: list[str], args, results: dict[str, Any]) -> list[Backend]:
    """Setup, cold loads, then per-turn writes, interleaved across backends phase by phase.

    Interleaving (session s is loaded / written by every backend in turn before session s+1)
    spreads the noise of a shared machine (other processes, disk flushes) evenly over the
    backends instead of letting one backend absorb a busy period. The order is shuffled per
    session (seeded), so that each backend follows each other one equally often: a call right
    after another library's runs with that library's code in the CPU caches instead of its own.
    In a fixed order the backend after a switch of library paid for it every time (measured:
    two identical SQLiteStores right after the Redis backends and right after each other
    loaded in 67 and 49 µs p50, whichever came first).
    """
    base = messages20()
    live: list[Backend] = []
    data: dict[str, dict[str, list[float]]] = {}

    def fail(b: Backend, exc: BaseException) -> None:
        results[b.name] = {"family": b.family, "repertory": b.is_repertory, "notes": b.notes,
                           "error": f"{type(exc).__name__}: {exc}"[:500]}
        console.print(f"[red]  {b.name} failed:[/] {results[b.name]['error']}")
        if b in live:
            live.remove(b)

    for b in backends:
        console.print(f"  setting up {b.name} ...")
        try:
            await b.open()
            t0 = perf()
            for sid in sids:
                await b.setup(sid, base)
            for sid in sids[: min(20, len(sids))]:  # warm connections / statement caches
                await b.load(sid)
            if isinstance(b, RepertoryBackend):
                b.raw_load.clear()
            data[b.name] = {"setup_s": [perf() - t0], "load": [], "write": []}
            live.append(b)
        except Exception as exc:
            fail(b, exc)
    console.print(f"  cold loads: {args.load_rounds} rounds × {len(sids)} sessions, interleaved ...")
    shuffle = random.Random(12)

    def shuffled() -> list[Backend]:
        return shuffle.sample(live, len(live))

    for _ in range(args.load_rounds):
        for sid in sids:
            for b in shuffled():
                try:
                    t = perf()
                    got = await b.load(sid)
                    data[b.name]["load"].append(perf() - t)
                    if len(got) != 20:
                        raise AssertionError(f"loaded {len(got)} messages, expected 20")
                except Exception as exc:
                    fail(b, exc)
    for b in live:
        if isinstance(b, RepertoryBackend):
            b.raw_commit.clear()
    console.print(f"  writes: {args.turns} turns × {len(sids)} sessions, interleaved ...")
    for t_i in range(args.turns):
        for s_i, sid in enumerate(sids):
            for b in shuffled():
                try:
                    msgs = turn_messages(s_i, t_i)
                    t = perf()
                    await b.write(sid, msgs)
                    data[b.name]["write"].append(perf() - t)
                except Exception as exc:
                    fail(b, exc)
    for b in list(live):
        try:
            got = await b.load(sids[0])
            if len(got) != 20 + 2 * args.turns:
                raise AssertionError(f"{len(got)} messages after the turns, expected {20 + 2 * args.turns}")
        except Exception as exc:
            fail(b, exc)
            continue
        d = data[b.name]
        out = {"family": b.family, "repertory": b.is_repertory, "notes": b.notes, "in_verdict": b.in_verdict,
               "setup_s": d["setup_s"][0], "write": summary(d["write"]), "load": summary(d["load"])}
        if isinstance(b, RepertoryBackend):
            out["load_store_only"] = summary(b.raw_load[: len(d["load"])])
            out["commit_store_only"] = summary(b.raw_commit[: len(d["write"])])
        results[b.name] = out
    return live


async def group_commit(b: RepertoryBackend, sids: list[str], rounds: int) -> dict[str, Any]:
    seq, conc = [], []
    for r in range(rounds):
        t0 = perf()
        for s_i, sid in enumerate(sids):
            await b.write(sid, turn_messages(s_i, 100 + r))
        seq.append(len(sids) / (perf() - t0))
        t0 = perf()
        await asyncio.gather(*(b.write(sid, turn_messages(s_i, 200 + r)) for s_i, sid in enumerate(sids)))
        conc.append(len(sids) / (perf() - t0))
    return {"sequential_writes_per_s": statistics.median(seq), "concurrent_writes_per_s": statistics.median(conc),
            "rounds": rounds, "sessions": len(sids), "speedup": statistics.median(conc) / statistics.median(seq)}


async def redis_up() -> str | None:
    import redis.asyncio as aredis

    r = aredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1.0)
    try:
        await r.ping()
        return None
    except Exception as exc:
        return f"Redis at {REDIS_URL} not reachable: {exc}"
    finally:
        await r.aclose()


async def redis_config() -> dict[str, Any]:
    import redis.asyncio as aredis

    r = aredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        out: dict[str, Any] = {}
        for k in ("appendonly", "appendfsync", "save"):
            try:
                out.update(await r.config_get(k))
            except Exception as exc:  # CONFIG may be disabled
                out[k] = f"unknown ({type(exc).__name__})"
        out["version"] = (await r.info("server")).get("redis_version")
        return out
    finally:
        await r.aclose()


async def delete_prefix(prefix: str) -> int:
    import redis.asyncio as aredis

    r = aredis.Redis.from_url(REDIS_URL)
    n = 0
    try:
        batch = []
        async for k in r.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(k)
            if len(batch) >= 1000:
                n += await r.unlink(*batch)
                batch = []
        if batch:
            n += await r.unlink(*batch)
    finally:
        await r.aclose()
    return n


def try_langgraph_redis(prefix: str) -> tuple[Backend | None, str]:
    try:
        from langgraph.checkpoint.redis import RedisSaver
    except ImportError as exc:
        return None, f"not installed (needs RediSearch/RedisJSON; not in the bench extra): pip install langgraph-checkpoint-redis ({exc})"

    def make():
        saver = RedisSaver(redis_url=REDIS_URL, checkpoint_prefix=f"{prefix}:lgcp",
                           checkpoint_write_prefix=f"{prefix}:lgcpw")
        saver.setup()
        return saver

    try:
        saver = make()
        # setup() may succeed lazily; a put is the real test
        from langgraph.checkpoint.base import empty_checkpoint

        saver.put({"configurable": {"thread_id": f"{prefix}-probe", "checkpoint_ns": ""}}, empty_checkpoint(),
                  {"source": "loop", "step": 0}, {})
        saver.get_tuple({"configurable": {"thread_id": f"{prefix}-probe", "checkpoint_ns": ""}})
    except Exception as exc:
        return None, f"does not run on plain Redis: {type(exc).__name__}: {str(exc)[:160]}"
    b = LangGraphSaverBackend("LangGraph RedisSaver", "redis", lambda: saver)
    return b, ""


def sqlite_sync_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(conn.execute("PRAGMA synchronous").fetchone()[0], "?")
    finally:
        conn.close()


async def measure_backends(args) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="repertory-bench-store-"))
    prefix = f"rpbench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    sids = [f"s{i:04d}-{uuid.uuid4().hex[:8]}" for i in range(args.sessions)]
    backends: list[Backend] = []
    skipped: list[tuple[str, str]] = []

    from repertory.stores import SQLiteStore

    backends.append(RepertoryBackend("repertory SQLiteStore (synchronous=NORMAL, default)", "sqlite",
                                     lambda: SQLiteStore(tmp / "rep-normal.db"), None))
    backends.append(RepertoryBackend("repertory SQLiteStore (synchronous=FULL)", "sqlite",
                                     lambda: SQLiteStore(tmp / "rep-full.db", synchronous="FULL"), None))
    try:
        import agents  # noqa: F401

        backends.append(AgentsSQLiteBackend(tmp / "agents.db"))
    except ImportError:
        skipped.append(("OpenAI Agents SDK SQLiteSession", "not installed: pip install 'repertory[bench]' (openai-agents)"))
    try:
        from langgraph.checkpoint.sqlite import SqliteSaver

        def make_lg():
            conn = sqlite3.connect(tmp / "langgraph.db", check_same_thread=False)
            s = SqliteSaver(conn)
            s.setup()
            return s

        lg = LangGraphSaverBackend("LangGraph SqliteSaver", "sqlite", make_lg)
        lg.notes = "sync calls (block the event loop); whole history re-serialised per checkpoint"
        backends.append(lg)
    except ImportError:
        skipped.append(("LangGraph SqliteSaver", "not installed: pip install 'repertory[bench]' (langgraph-checkpoint-sqlite)"))
    try:
        import aiosqlite  # noqa: F401
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver  # noqa: F401

        backends.append(LangGraphAsyncSaverBackend(tmp / "langgraph-async.db"))
    except ImportError:
        skipped.append(("LangGraph AsyncSqliteSaver", "not installed: pip install 'repertory[bench]' (langgraph-checkpoint-sqlite, aiosqlite)"))

    redis_problem = await redis_up()
    if redis_problem:
        skipped.append(("all Redis backends", redis_problem))
    else:
        try:
            from repertory.stores.redis import RedisStore

            backends.append(RepertoryBackend("repertory RedisStore (Lua CAS, TTL 1 h)", "redis",
                                             lambda: RedisStore(REDIS_URL, prefix=f"{prefix}:rp"), TTL))
        except ImportError as exc:
            skipped.append(("repertory RedisStore", f"stores/redis.py not importable: {exc}"))
        backends.append(RawRedisBackend(prefix))
        try:
            from agents.extensions.memory.redis_session import RedisSession  # noqa: F401

            backends.append(AgentsRedisBackend(prefix))
        except ImportError as exc:
            skipped.append(("OpenAI Agents SDK RedisSession", f"not installed: pip install 'repertory[bench]' (openai-agents[redis]) ({exc})"))
        try:
            from langgraph_checkpoint_plainredis import RedisSaver as PlainRedisSaver

            plain = LangGraphSaverBackend("LangGraph plain-Redis RedisSaver (langgraph-checkpoint-plainredis)",
                                          "redis", lambda: PlainRedisSaver(url=REDIS_URL, prefix=f"{prefix}:plain"))
            plain.notes = "sync calls; whole history re-serialised per checkpoint; runs on plain Redis"
            backends.append(plain)
        except ImportError:
            skipped.append(("LangGraph plain-Redis RedisSaver",
                            "not installed: pip install 'repertory[bench]' (langgraph-checkpoint-plainredis)"))
        lgr, why = try_langgraph_redis(prefix)
        if lgr is None:
            skipped.append(("LangGraph RedisSaver", why))
        else:
            backends.append(lgr)

    results: dict[str, Any] = {}
    group: dict[str, Any] = {}
    sqlite_default_sync = "?"
    redis_persistence = await redis_config() if not redis_problem else {}
    try:
        try:
            live = await measure_all(backends, sids, args, results)
            for b in live:
                if b.is_repertory and "FULL" not in b.name:
                    console.print(f"  group commit: {b.name} ...")
                    try:
                        group[b.name] = await group_commit(b, sids, args.group_rounds)
                    except Exception as exc:
                        group[b.name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        finally:
            for b in backends:
                try:
                    await b.close()
                except Exception:
                    pass
        # the peers never set PRAGMA synchronous: they run with SQLite's default
        sqlite_default_sync = sqlite_sync_mode(tmp / "probe.db")
    finally:
        if not redis_problem:
            deleted = await delete_prefix(prefix)
            results["_redis_cleanup"] = {"prefix": prefix, "deleted_keys": deleted,
                                         "left": len([k async for k in _scan(prefix)])}
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return {"backends": results, "skipped": skipped, "group_commit": group, "prefix": prefix,
            "sqlite_default_synchronous": sqlite_default_sync, "redis_persistence": redis_persistence}


async def _scan(prefix: str):
    import redis.asyncio as aredis

    r = aredis.Redis.from_url(REDIS_URL)
    try:
        async for k in r.scan_iter(match=f"{prefix}*", count=1000):
            yield k
    finally:
        await r.aclose()


def report(res: dict[str, Any], args) -> dict[str, Any]:
    be = {k: v for k, v in res["backends"].items() if not k.startswith("_")}
    ok = {k: v for k, v in be.items() if "error" not in v}
    rows = []
    for name, r in be.items():
        if "error" in r:
            rows.append([name, r["family"], "error (see notes)", "", "", "", "", ""])
            continue
        lso, cso = r.get("load_store_only"), r.get("commit_store_only")
        rows.append([name, r["family"], fmt_us(r["write"]["p50_us"]), fmt_us(r["write"]["p99_us"]),
                     f"{fmt_us(cso['p50_us'])} / {fmt_us(cso['p99_us'])}" if cso else "-",
                     fmt_us(r["load"]["p50_us"]), fmt_us(r["load"]["p99_us"]),
                     f"{fmt_us(lso['p50_us'])} / {fmt_us(lso['p99_us'])}" if lso else "-"])
    for name, why in res["skipped"]:
        rows.append([name, "", "skipped (see notes)", "", "", "", "", ""])
    table(f"Per-turn durable write and cold load ({args.sessions} sessions × {args.turns} turns; "
          f"{args.load_rounds} load rounds of every 20-message session; sequential, in-process)",
          ["backend", "family", "write p50", "write p99", "store.commit only p50/p99", "load p50", "load p99",
           "store.load only p50/p99"],
          rows, caption=f"SQLite peers use SQLite's default synchronous mode ({res['sqlite_default_synchronous']} "
                        "here, fsync per commit); repertory defaults to NORMAL in WAL mode (durable across a "
                        "process crash, the last commits may be lost on power failure); its FULL row is the "
                        "like-for-like comparison. Redis server persistence, same for all Redis rows: "
                        f"{res.get('redis_persistence') or '-'}.")

    notes = [[n, r.get("error") or r.get("notes", "")] for n, r in be.items() if r.get("error") or r.get("notes")]
    notes += [[n, why] for n, why in res["skipped"]]
    if notes:
        table("Notes", ["backend", "note"], notes)

    # ratios: peer / repertory (how many times faster repertory is)
    rows = []
    summary_ratios: dict[str, Any] = {}
    for fam in ("sqlite", "redis"):
        for rep in [n for n, r in ok.items() if r["family"] == fam and r["repertory"]]:
            rr = ok[rep]
            for name, r in ok.items():
                if r["family"] != fam or r["repertory"]:
                    continue
                w = ratio(r["write"]["p50_us"], rr["write"]["p50_us"])
                lo = ratio(r["load"]["p50_us"], rr["load"]["p50_us"])
                w99 = ratio(r["write"]["p99_us"], rr["write"]["p99_us"])
                l99 = ratio(r["load"]["p99_us"], rr["load"]["p99_us"])
                rows.append([f"{rep}  vs  {name}", fmt_ratio(w), fmt_ratio(w99), fmt_ratio(lo), fmt_ratio(l99)])
                summary_ratios[f"{rep} vs {name}"] = {"write_p50": w, "write_p99": w99, "load_p50": lo,
                                                      "load_p99": l99}
    table("Ratios: peer time ÷ repertory time (> 1: repertory faster)",
          ["comparison", "write p50", "write p99", "load p50", "load p99"], rows)

    rows = []
    for name, g in res["group_commit"].items():
        if "error" in g:
            rows.append([name, "error", g["error"][:100], ""])
            continue
        rows.append([name, fmt_num(g["sequential_writes_per_s"]), fmt_num(g["concurrent_writes_per_s"]),
                     fmt_ratio(g["speedup"])])
    table(f"Group commit: {args.sessions} sessions append one turn each, all at once (asyncio.gather) "
          f"vs one after another (median of {args.group_rounds} rounds)",
          ["backend", "sequential writes/s", "concurrent writes/s", "concurrent ÷ sequential"], rows)

    # targets
    targets = []
    verdicts: dict[str, Any] = {}
    rr = next((r for n, r in ok.items() if r["repertory"] and r["family"] == "redis"), None)
    rs = next((r for n, r in ok.items() if r["repertory"] and r["family"] == "sqlite"), None)
    if rr:
        v = rr["write"]["p50_us"] <= 200
        targets.append(["checkpoint write ≤ 0.2 ms p50 on Redis", fmt_us(rr["write"]["p50_us"]), verdict(v)])
        verdicts["redis_write_le_0.2ms"] = v
    else:
        targets.append(["checkpoint write ≤ 0.2 ms p50 on Redis", "RedisStore not measured", verdict(None)])
    for fam, r in (("Redis", rr), ("SQLite", rs)):
        if r:
            v = r["load"]["p50_us"] <= 1500
            targets.append([f"activation (load) ≤ 1.5 ms p50, {fam}",
                            f"{fmt_us(r['load']['p50_us'])} (store.load only {fmt_us(r['load_store_only']['p50_us'])})",
                            verdict(v)])
            verdicts[f"{fam.lower()}_load_le_1.5ms"] = v
    for fam_key, fam, r in (("sqlite", "SQLite", rs), ("redis", "Redis", rr)):
        if not r:
            continue
        peers = {n: p for n, p in ok.items() if p["family"] == fam_key and not p["repertory"]
                 and not n.startswith("raw ") and p.get("in_verdict", True)}
        if not peers:
            continue
        w_ok = all(r["write"]["p50_us"] < p["write"]["p50_us"] for p in peers.values())
        l_ok = all(r["load"]["p50_us"] < p["load"]["p50_us"] for p in peers.values())
        targets.append([f"ahead of every peer on {fam} (write p50, load p50): {', '.join(peers)}",
                        f"write {'yes' if w_ok else 'no'}, load {'yes' if l_ok else 'no'}", verdict(w_ok and l_ok)])
        verdicts[f"{fam_key}_ahead_of_peers"] = {"write": w_ok, "load": l_ok}
    # issue 12's ratios, each against its same-run baseline
    raw, sdk_r, lg_s = ok.get(RawRedisBackend.name), ok.get(AgentsRedisBackend.name), ok.get("LangGraph SqliteSaver")
    rs_full = next((r for n, r in ok.items() if r["repertory"] and r["family"] == "sqlite" and "FULL" in n), None)

    def target(key: str, what: str, value: float | None, shown: str, ok_if: Callable[[float], bool]) -> None:
        v = None if value is None else ok_if(value)
        targets.append([what, shown if value is not None else "not measured", verdict(v)])
        verdicts[key] = v

    def p50(r: dict[str, Any] | None, what: str) -> float | None:
        return r[what]["p50_us"] if r else None

    lr = ratio(p50(rr, "load"), p50(raw, "load"))
    target("redis_load_le_1.2x_raw_get", "Redis load ≤ 1.2× raw GET (p50)", lr, fmt_ratio(lr), lambda v: v <= 1.2)
    wr = ratio(p50(rr, "write"), p50(raw, "write"))
    target("redis_write_le_1.5x_raw_set", "Redis write ≤ 1.5× raw SET EX (p50)", wr, fmt_ratio(wr), lambda v: v <= 1.5)
    sw = ratio(p50(sdk_r, "write"), p50(rr, "write"))
    target("redis_write_3x_redissession", "Redis write ≥ 3× faster than RedisSession (p50)", sw, fmt_ratio(sw),
           lambda v: v >= 3)
    sl = ratio(p50(sdk_r, "load"), p50(rr, "load"))
    target("redis_load_ahead_of_redissession", "Redis load ahead of RedisSession (p50; > 1: ahead)", sl, fmt_ratio(sl),
           lambda v: v > 1)
    ll = ratio(p50(lg_s, "load"), p50(rs, "load"))
    target("sqlite_load_ahead_of_sqlitesaver", "SQLite load ahead of SqliteSaver (p50; > 1: ahead)", ll, fmt_ratio(ll),
           lambda v: v > 1)
    lw = ratio(p50(lg_s, "write"), p50(rs_full, "write")) if res["sqlite_default_synchronous"] == "FULL" else None
    target("sqlite_write_ahead_of_sqlitesaver_same_sync",
           "SQLite write ahead of SqliteSaver, both synchronous=FULL (p50; > 1: ahead)", lw, fmt_ratio(lw),
           lambda v: v > 1)
    table("Targets", ["target", "measured", "verdict"], targets)
    return {"ratios": summary_ratios, "targets": verdicts}


def options(quick: bool, sessions: int | None = None, turns: int | None = None) -> argparse.Namespace:
    """The run's shape: ``quick`` is 50 sessions × 4 turns, the full run 200 × 10."""
    args = argparse.Namespace(quick=quick, sessions=sessions or (50 if quick else 200),
                              turns=turns or (4 if quick else 10))
    args.load_rounds = 2 if quick else 3
    args.group_rounds = 3 if quick else 5
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every backend, print the tables; every figure of the run as one dict."""
    t0 = perf()
    res: dict[str, Any] = {"quick": args.quick, "load_start": load_info(),
                           "config": {"sessions": args.sessions, "turns": args.turns, "load_rounds": args.load_rounds,
                                      "message_bytes": 250, "initial_messages": 20, "redis": REDIS_URL}}
    console.print(f"[bold]bench_store[/] {'(quick)' if args.quick else ''} load at start: {res['load_start']}")
    res.update(asyncio.run(measure_backends(args)))
    res["load_end"] = load_info()
    res["elapsed_s"] = perf() - t0
    console.print(f"load at end: {res['load_end']}; elapsed {res['elapsed_s']:.0f} s")
    res["summary"] = report(res, args)
    return res


def figures(res: dict[str, Any]) -> list[Figure]:
    """Each repertory store against every peer of its family (and the raw Redis floor), p50 write and
    load; group commit against the same appends one after another."""
    ok = {n: r for n, r in res["backends"].items() if not n.startswith("_") and "error" not in r}
    out: list[Figure | None] = []
    for rep, rr in ok.items():
        if not rr["repertory"]:
            continue
        for peer, pr in ok.items():
            if pr["repertory"] or pr["family"] != rr["family"]:
                continue
            for what in ("write", "load"):
                out.append(figure("store", f"{rep}: {what} p50", rr[what]["p50_us"], "µs",
                                  f"{peer}: {what} p50", pr[what]["p50_us"]))
    for name, g in res["group_commit"].items():
        if "error" not in g:
            out.append(figure("store", f"{name}: group commit, {g['sessions']} appends at once",
                              g["concurrent_writes_per_s"], "writes/s", f"{name}: the same appends one after another",
                              g["sequential_writes_per_s"]))
    return [f for f in out if f is not None]


def run(quick: bool = False) -> list[Figure]:
    """Measure (printing the tables) and return the figures with their same-run baselines."""
    return figures(measure(options(quick)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="50 sessions × 4 turns")
    ap.add_argument("--sessions", type=int, default=None, help="sessions (default 200; quick 50)")
    ap.add_argument("--turns", type=int, default=None, help="turns per session (default 10; quick 4)")
    cli = ap.parse_args()
    emit_json("bench_store", measure(options(cli.quick, cli.sessions, cli.turns)))


if __name__ == "__main__":
    main()
