#!/usr/bin/env python
"""What the short-term window and per-reply analytics cost a turn, against a baseline in the same run.

a. Short-session turn, in-process (local runtime over SQLite, one session of 20 messages,
   ``Session.achat`` one turn at a time), this tree against a baseline tree (default: the
   main checkout's interpreter, ``--baseline-python``): each round runs one child process per
   tree, alternating which goes first, so both see the same load periods. Null model (the
   runtime alone) and demo model (through litellm, the window counting words).
b. This tree only, in one process: a turn of a 20-message and of a 10,000-message session,
   window off (null model: no limit) and on (``max_context_tokens=2000``, drop), interleaved.

Run:  .venv/bin/python benchmarks/bench_window.py [--rounds 6] [--turns 300]
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import console, emit_json, fmt_ratio, fmt_us, load_info, messages20, ratio, summary, table  # noqa: E402

HERE = Path(__file__).resolve()
SELF_PYTHON = sys.executable


async def _turns(session: Any, n: int, warmup: int) -> list[float]:
    for i in range(warmup):
        await session.achat(f"warm-up {i}")
    out = []
    for i in range(n):
        t = time.perf_counter()
        await session.achat(f"Turn {i}: the parcel went to the depot today.")
        out.append(time.perf_counter() - t)
    return out


def child_short(model: str, turns: int, warmup: int) -> dict[str, Any]:
    """Part a, in whichever tree's interpreter runs this: p50 of a short-session turn."""
    import repertory
    from repertory import Agent, Session

    with tempfile.TemporaryDirectory() as tmp:
        repertory.init(runtime="local", store=f"sqlite:///{tmp}/state.db")
        try:
            s = Session("bench", agent=Agent("Bench", model=f"repertory/{model}"))
            s.set_history(messages20())

            cpu: list[float] = []

            async def go() -> list[float]:
                # Keep the session short: trim back to 20 messages every 10 turns, untimed.
                lat: list[float] = []
                await s.achat("first")
                await _turns(s, warmup, 0)
                while len(lat) < turns:
                    c = time.process_time()
                    lat += await _turns(s, 10, 0)
                    cpu.append((time.process_time() - c) / 10)
                    await s.aset_history(messages20())
                return lat

            lat = asyncio.run(go())
        finally:
            repertory.shutdown()
    # CPU time of the whole process per turn (every thread: the caller, the portal loop, SQLite's):
    # what the turn costs, less disturbed than wall time by other processes on the machine.
    return {**summary(lat), "cpu_us_per_turn": statistics.median(cpu) * 1e6}


def child_long(turns: int) -> dict[str, Any]:
    """Part b: 20 vs 10,000 messages, window off vs on, interleaved in blocks."""
    import repertory
    from repertory import Agent, Session

    settings = {"20 msgs, window off": (20, None), "20 msgs, window on": (20, 2000),
                "10k msgs, window off": (10_000, None), "10k msgs, window on": (10_000, 2000)}
    lat: dict[str, list[float]] = {k: [] for k in settings}
    with tempfile.TemporaryDirectory() as tmp:
        repertory.init(runtime="local", store=f"sqlite:///{tmp}/state.db")
        try:
            sessions = {}
            for name, (n, tokens) in settings.items():
                s = Session(name.replace(" ", "-").replace(",", ""), agent=Agent("Bench", model="repertory/null"),
                            max_context_tokens=tokens)
                s.set_history(messages20(n, 120))
                sessions[name] = s

            async def go() -> None:
                for s in sessions.values():
                    await s.achat("first")  # the window moves its start here, once
                for _ in range(max(turns // 10, 1)):
                    for name, s in sessions.items():
                        lat[name] += await _turns(s, 10, 0)

            asyncio.run(go())
        finally:
            repertory.shutdown()
    return {k: summary(v) for k, v in lat.items()}


def _run_child(python: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([python, str(HERE), "--child", *args], capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"child {python} {args} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--turns", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--baseline-python", default="/work/main/.venv/bin/python")
    ap.add_argument("--child", nargs="*")
    args = ap.parse_args()
    if args.child is not None:
        kind = args.child[0]
        res = child_short(args.child[1], args.turns, args.warmup) if kind == "short" else child_long(args.turns)
        print(json.dumps(res))
        return

    results: dict[str, Any] = {"load": load_info(), "short": {}, "long": None}
    trees = {"this tree": SELF_PYTHON, "baseline": args.baseline_python}
    for model in ("null", "demo"):
        p50s: dict[str, list[float]] = {k: [] for k in trees}
        cpus: dict[str, list[float]] = {k: [] for k in trees}
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for tree in order:
                res = _run_child(trees[tree], "short", model, "--turns", str(args.turns), "--warmup",
                                 str(args.warmup))
                p50s[tree].append(res["p50_us"])
                cpus[tree].append(res["cpu_us_per_turn"])
        med = {k: statistics.median(v) for k, v in p50s.items()}
        cpu = {k: statistics.median(v) for k, v in cpus.items()}
        results["short"][model] = {"p50_us_per_round": p50s, "median_p50_us": med,
                                   "ratio": ratio(med["this tree"], med["baseline"]),
                                   "cpu_us_per_round": cpus, "median_cpu_us": cpu,
                                   "cpu_ratio": ratio(cpu["this tree"], cpu["baseline"])}
    table("a. Short-session turn in-process (20 messages, Session.achat, local runtime over SQLite): "
          f"median of {args.rounds} rounds, trees alternating; CPU = process CPU time per turn",
          ["model", "this p50", "baseline p50", "p50 ratio", "this CPU", "baseline CPU", "CPU ratio",
           "per-round CPU µs (this | baseline)"],
          [[m, fmt_us(d["median_p50_us"]["this tree"]), fmt_us(d["median_p50_us"]["baseline"]), fmt_ratio(d["ratio"]),
            fmt_us(d["median_cpu_us"]["this tree"]), fmt_us(d["median_cpu_us"]["baseline"]),
            fmt_ratio(d["cpu_ratio"]),
            " ".join(f"{x:.0f}" for x in d["cpu_us_per_round"]["this tree"]) + " | "
            + " ".join(f"{x:.0f}" for x in d["cpu_us_per_round"]["baseline"])]
           for m, d in results["short"].items()])
    long = _run_child(SELF_PYTHON, "long", "--turns", str(args.turns))
    results["long"] = long
    base = long["20 msgs, window off"]["p50_us"]
    table("b. Turn cost by history length, window off (null model, no limit) and on (max_context_tokens=2000)",
          ["setting", "p50", "p99", "p50 ÷ 20 msgs window off"],
          [[k, fmt_us(v["p50_us"]), fmt_us(v["p99_us"]), fmt_ratio(ratio(v["p50_us"], base))] for k, v in long.items()])
    console.print(f"machine load: {results['load']}")
    emit_json("window", results)


if __name__ == "__main__":
    main()
