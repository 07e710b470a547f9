#!/usr/bin/env python
"""Remote turns through the HTTP server against the HTTP floor, measured in the same run.

Settings, all in one process (uvicorn servers on threads of 127.0.0.1, port 0; Ray local):

  - remote: ``Session(agent_url=..., token=...).achat`` through ``repertory.server`` (token
    check, rate limit, access log) to the Ray runtime (SQLite, 2 hosts) and the demo model;
  - floor: the same httpx AsyncClient POSTing JSON to a bare FastAPI endpoint under uvicorn that
    returns a constant (what any HTTP call costs here);
  - direct: ``Session.achat`` on the same runtime without HTTP (what the server adds on top).

Sequential: one session per setting, one turn at a time, settings taking turns in blocks of 25.
Concurrent: N sessions per setting (default 50), bursts in which every session sends one turn
at once; throughput = turns / wall time of the bursts.

Run:  .venv/bin/python benchmarks/bench_server.py [--quick]
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pydantic import BaseModel  # noqa: E402

from _common import console, emit_json, fmt_num, fmt_ratio, fmt_us, load_info, ratio, summary, table  # noqa: E402

SECRET = "bench-secret-" + "b" * 24


class Body(BaseModel):
    """The floor's request body: the same fields as a chat request."""

    message: str
    turn_id: str | None = None
    agent: str | None = None


def start_floor() -> Any:
    """A bare FastAPI app under uvicorn on a thread: POST /chat returns a constant."""
    import threading

    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/agent/sessions/{session_id}/chat")
    async def chat(session_id: str, body: Body) -> dict[str, Any]:
        return {"reply": "constant", "usage": {}, "n_messages": 2, "revision": 1, "replayed": False}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/agent"


async def main(quick: bool, sessions: int) -> None:
    import httpx

    import repertory
    from repertory import Session, tokens
    from repertory.server import ServerConfig, serve_in_thread
    from repertory.tokens import Keyring

    ring = Keyring({"k1": SECRET})
    tmp = tempfile.mkdtemp(prefix="bench-server-")
    start_load = load_info()
    repertory.init(store=f"sqlite:///{tmp}/state.db", num_hosts=2, namespace=f"bench-server-{uuid.uuid4().hex[:6]}")
    handle = serve_in_thread(ServerConfig(port=0, secret_keys=ring, rate_limit=None))
    floor_server, floor_url = start_floor()
    floor = httpx.AsyncClient(base_url=floor_url, limits=httpx.Limits(max_connections=100,
                                                                      max_keepalive_connections=100))

    def remote(sid: str) -> Any:
        return Session(agent_url=handle.url, session_id=sid, token=tokens.issue(sid, secret=ring))

    async def floor_turn(sid: str, msg: str) -> None:
        r = await floor.post(f"/sessions/{sid}/chat", json={"message": msg, "turn_id": uuid.uuid4().hex})
        r.raise_for_status()
        r.json()

    blocks = 4 if quick else 12
    per_block = 25
    seq: dict[str, list[float]] = {"remote": [], "floor": [], "direct": []}
    r1, d1 = remote("seq-remote"), Session("seq-direct")
    calls = {"remote": lambda i: r1.achat(f"message {i}"), "floor": lambda i: floor_turn("seq-floor", f"message {i}"),
             "direct": lambda i: d1.achat(f"message {i}")}
    for name, call in calls.items():  # warm-up: connections, agents, litellm
        for i in range(10):
            await call(i)
    for b in range(blocks):
        order = list(calls)[b % 3:] + list(calls)[:b % 3]
        for name in order:
            for i in range(per_block):
                t = time.perf_counter()
                await calls[name](i)
                seq[name].append(time.perf_counter() - t)

    bursts = 2 if quick else 4
    conc: dict[str, float] = {}
    lat: dict[str, list[float]] = {"remote": [], "floor": [], "direct": []}
    remotes = [remote(f"c-remote-{i}") for i in range(sessions)]
    directs = [Session(f"c-direct-{i}") for i in range(sessions)]
    await asyncio.gather(*(s.achat("start") for s in remotes + directs))
    groups = {"remote": lambda k: [s.achat(f"burst {k}") for s in remotes],
              "floor": lambda k: [floor_turn(f"c-floor-{i}", f"burst {k}") for i in range(sessions)],
              "direct": lambda k: [s.achat(f"burst {k}") for s in directs]}
    wall = {n: 0.0 for n in groups}

    async def timed(coro: Any, name: str) -> None:
        t = time.perf_counter()
        await coro
        lat[name].append(time.perf_counter() - t)

    for k in range(bursts):
        for name, make in groups.items():
            t = time.perf_counter()
            await asyncio.gather(*(timed(c, name) for c in make(k)))
            wall[name] += time.perf_counter() - t
    for name in groups:
        conc[name] = sessions * bursts / wall[name]

    end_load = load_info()
    await floor.aclose()
    floor_server.should_exit = True
    handle.stop()
    repertory.shutdown()

    s = {n: summary(v) for n, v in seq.items()}
    c = {n: summary(v) for n, v in lat.items()}
    table("Sequential remote turns (demo model) vs the HTTP floor, same run",
          ["setting", "turns", "p50", "p99", "turns/s", "p50 vs floor"],
          [[n, s[n]["n"], fmt_us(s[n]["p50_us"]), fmt_us(s[n]["p99_us"]), fmt_num(1e6 / s[n]["mean_us"]),
            fmt_ratio(ratio(s[n]["p50_us"], s["floor"]["p50_us"]))] for n in seq])
    table(f"Concurrent: {sessions} sessions, {bursts} bursts (every session sends one turn at once)",
          ["setting", "turns/s", "p50", "p99", "turns/s vs floor"],
          [[n, fmt_num(conc[n]), fmt_us(c[n]["p50_us"]), fmt_us(c[n]["p99_us"]),
            fmt_ratio(ratio(conc[n], conc["floor"]))] for n in groups])
    console.print(f"load at start {start_load['loadavg_1m']}, at end {end_load['loadavg_1m']} "
                  f"({os.cpu_count()} CPUs)")
    emit_json("bench_server", {"sequential": s, "concurrent": {n: {"turns_per_s": conc[n], **c[n]} for n in groups},
                               "ratios": {"seq_p50_remote_vs_floor": ratio(s["remote"]["p50_us"], s["floor"]["p50_us"]),
                                          "seq_p50_remote_minus_direct_us": s["remote"]["p50_us"] - s["direct"]["p50_us"],
                                          "conc_remote_vs_floor": ratio(conc["remote"], conc["floor"]),
                                          "conc_remote_vs_direct": ratio(conc["remote"], conc["direct"])},
                               "load_start": start_load, "load_end": end_load})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--sessions", type=int, default=50, help="sessions in the concurrent bursts")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    asyncio.run(main(args.quick, args.sessions))
