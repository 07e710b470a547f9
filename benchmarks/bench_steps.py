#!/usr/bin/env python
"""What step journaling costs a turn with a tool call, against the same turn unjournaled in the same run.

A turn here is two model steps and one tool: the model asks for a tool, the tool answers,
the model replies. Journaled, the host also writes two steps (the model step, the tool result),
reads the journal once at the start and drops it after the commit.

a. In-process: HostCore + LocalAgentPool over SQLite (a fresh file) and Redis (a private key
   prefix, skipped if no Redis answers on 127.0.0.1:6379), with an instrument model client
   (no litellm, no HTTP: the runtime alone, where the journal's share is largest).
b. The default Ray runtime (``repertory.init()``, SQLite) through litellm against the local
   OpenAI-compatible server of the tests, journaling switched per block on the driver.

Settings take turns in blocks of 25 turns, rotating the order, so all see the same load.
Run:  .venv/bin/python benchmarks/bench_steps.py [--rounds 8] [--no-ray]
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import ON_OFF_COLUMNS, console, emit_json, load_info, local_redis_url, on_off_row, summary, table  # noqa: E402

BLOCK = 25


class OneToolModel:
    """Benchmark instrument: asks for ``lookup`` once, then replies."""

    async def complete(self, model: str, messages: list[dict], *, tools: Any = None, **options: Any) -> Any:
        from repertory.agents.model_client import ModelReply

        if messages[-1]["role"] == "tool":
            return ModelReply({"role": "assistant", "content": "found: " + messages[-1]["content"]}, {"total_tokens": 2})
        call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        return ModelReply({"role": "assistant", "content": None, "tool_calls": [call]}, {"total_tokens": 1})

    async def stream(self, model: str, messages: list[dict], *, tools: Any = None, **options: Any) -> Any:
        yield await self.complete(model, messages, tools=tools)


def lookup() -> str:
    """A tool with nothing to do."""
    return "42"


async def _in_process(store_url: str, rounds: int) -> dict[str, Any]:
    from repertory.agents.agent import Agent, AgentCore
    from repertory.config import Settings
    from repertory.host.api import TurnRequest
    from repertory.host.core import HostCore
    from repertory.ids import SessionRef
    from repertory.runtimes.local import LocalAgentPool
    from repertory.stores.factory import open_store

    store = open_store(store_url)
    agent = Agent("Bench", tools=[lookup])
    pool = LocalAgentPool()
    pool.cores[agent.key] = AgentCore(agent, OneToolModel())
    host = HostCore(store, pool, Settings(store="memory://"))
    lat: dict[bool, list[float]] = {True: [], False: []}
    refs = {True: SessionRef(f"bench-on-{uuid.uuid4().hex[:6]}"), False: SessionRef(f"bench-off-{uuid.uuid4().hex[:6]}")}
    for journal in (True, False):  # warm-up
        for i in range(10):
            await host.turn(TurnRequest(ref=refs[journal], agent_key=agent.key, content=f"w{i}",
                                        turn_id=uuid.uuid4().hex, journal=journal))
    for r in range(rounds):
        for journal in ((True, False) if r % 2 == 0 else (False, True)):
            for i in range(BLOCK):
                req = TurnRequest(ref=refs[journal], agent_key=agent.key, content=f"t{i}", turn_id=uuid.uuid4().hex,
                                  journal=journal)
                t0 = time.perf_counter()
                await host.turn(req)
                lat[journal].append(time.perf_counter() - t0)
    await host.close()
    await store.close()
    return {"on": summary(lat[True]), "off": summary(lat[False])}


def _ray(rounds: int, folder: Path) -> dict[str, Any]:
    import repertory
    from openai_server import OpenAIServer
    from repertory import Agent, Session

    def script(body: dict) -> Any:
        if body["messages"][-1]["role"] == "tool":
            return "found"
        return {"content": None, "tool_calls": [{"id": "call_1", "type": "function",
                                                 "function": {"name": "lookup", "arguments": "{}"}}]}

    lat: dict[bool, list[float]] = {True: [], False: []}
    with OpenAIServer() as server:
        server.script = script
        rt = repertory.init(store=f"sqlite:///{folder / 'ray.db'}", namespace=f"bench-steps-{uuid.uuid4().hex[:6]}")
        try:
            agent = Agent("Bench", model="openai/bench", api_base=server.base_url, api_key="k", tools=[lookup])
            sessions = {j: Session(session_id=f"ray-{j}-{uuid.uuid4().hex[:6]}", agent=agent) for j in (True, False)}
            for journal, s in sessions.items():
                rt.settings.journal_steps = journal  # read by the handle for each turn it sends
                for i in range(5):
                    s.chat(f"w{i}")
            for r in range(rounds):
                for journal in ((True, False) if r % 2 == 0 else (False, True)):
                    rt.settings.journal_steps = journal
                    for i in range(BLOCK):
                        t0 = time.perf_counter()
                        sessions[journal].chat(f"t{i}")
                        lat[journal].append(time.perf_counter() - t0)
        finally:
            repertory.shutdown()
    return {"on": summary(lat[True]), "off": summary(lat[False])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    from repertory.logs import configure_logging

    configure_logging()  # WARNING unless REPERTORY_LOG_LEVEL says otherwise: no line per turn in the output
    results: dict[str, Any] = {"load": load_info(), "block": BLOCK, "rounds": args.rounds}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = [("in-process SQLite", f"sqlite:///{folder / 'bench.db'}")]
        if (url := local_redis_url("bench-steps")) is not None:
            cases.append(("in-process Redis", url))
        for name, url in cases:
            res = asyncio.run(_in_process(url, args.rounds))
            results[name] = res
            if url.startswith("redis"):
                import redis

                client = redis.Redis(host="127.0.0.1", port=6379)
                prefix = url.split("prefix=")[1]
                for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                    client.delete(key)
        if not args.no_ray:
            results["Ray runtime SQLite (litellm + HTTP model)"] = _ray(args.rounds, folder)
    for name, res in results.items():
        if isinstance(res, dict) and "on" in res:
            rows.append(on_off_row(name, res))
    table("Turn with one tool call: step journaling off vs on (same run, interleaved blocks)",
          ["setting", *ON_OFF_COLUMNS], rows,
          caption=f"load {results['load']['loadavg_1m']} on {results['load']['cpus']} CPUs")
    console.print()
    emit_json("steps", results)


if __name__ == "__main__":
    main()
