"""Batch throughput: ``repertory.batch`` against a plain asyncio loop calling litellm.

Single-turn jobs with the demo model (``repertory/demo`` through litellm). The baseline is the
floor a user could write without repertory: one process, one asyncio loop, ``concurrency``
``litellm.acompletion`` calls in flight, nothing stored. repertory runs the same jobs as
durable sessions (every turn written to SQLite before it counts), on the local runtime and on
Ray (2 hosts). Also run with the null model client (``repertory/null``, a benchmark
instrument without litellm) to show the runtime's own ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from repertory.bench.common import Figure, content, emit_json, figure, fmt_num, fmt_ratio, load_info, ratio, table


async def baseline(n: int, concurrency: int) -> float:
    """Jobs/s of a plain asyncio loop over litellm (same model, same prompts, no storage)."""
    from repertory.agents.model_client import load_litellm

    litellm = load_litellm()
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await litellm.acompletion(model="repertory/demo", messages=[{"role": "user", "content": content(i)}])

    await one(-1)
    t = time.perf_counter()
    await asyncio.gather(*[one(i) for i in range(n)])
    return n / (time.perf_counter() - t)


def run_batch(n: int, concurrency: int, runtime: str, model: str, workdir: str) -> dict:
    import repertory
    from repertory import Agent

    kwargs = {"num_hosts": 2} if runtime == "ray" else {}
    repertory.init(runtime=runtime, store=f"sqlite:///{workdir}/{runtime}-{model.replace('/', '_')}.db", **kwargs)
    try:
        agent = Agent(name="Batch", model=model)
        warm = [{"id": f"warm-{i}", "agent": "batch", "messages": ["hello"]} for i in range(4)]
        repertory.batch(warm, os.path.join(workdir, f"warm-{runtime}-{model.replace('/', '_')}.jsonl"),
                        agents={"batch": agent}, concurrency=concurrency)
        jobs = [{"id": f"job-{i}", "agent": "batch", "messages": [content(i)]} for i in range(n)]
        out = os.path.join(workdir, f"out-{runtime}-{model.replace('/', '_')}.jsonl")
        report = repertory.batch(jobs, out, agents={"batch": agent}, concurrency=concurrency)
        return {"ok": report.ok, "failed": report.failed, "seconds": report.seconds,
                "jobs_per_s": report.ok / report.seconds if report.seconds else None,
                "turns_per_s": report.turns / report.seconds if report.seconds else None}
    finally:
        repertory.shutdown()


def measure(n: int, concurrency: int) -> dict:
    """The baseline, then every runtime and model setting on the same jobs; prints the table."""
    start = load_info()
    base = asyncio.run(baseline(n, concurrency))
    results: dict = {"baseline_jobs_per_s": base, "runs": {}}
    with tempfile.TemporaryDirectory() as d:
        for runtime in ("local", "ray"):
            for model in ("repertory/demo", "repertory/null"):
                results["runs"][f"{runtime} {model}"] = run_batch(n, concurrency, runtime, model, d)
    rows = [["plain asyncio loop over litellm (baseline, nothing stored)", fmt_num(base), fmt_num(base), "1.00×"]]
    for name, r in results["runs"].items():
        label = name + ("  (null model client: benchmark instrument)" if "null" in name else "")
        rows.append([f"repertory.batch, {label}", fmt_num(r["jobs_per_s"]), fmt_num(r["turns_per_s"]),
                     fmt_ratio(ratio(r["jobs_per_s"], base))])
    table(f"Batch of {n} single-turn jobs, concurrency {concurrency}",
          ["setting", "jobs/s", "turns/s", "÷ baseline"], rows,
          caption="Target (issue): ≥ 20,000 turns/s for single-turn jobs on this 2-core machine.")
    results.update(load_start=start, load_end=load_info(), jobs=n, concurrency=concurrency)
    return results


def figures(results: dict) -> list[Figure]:
    """Jobs/s of each setting against the plain asyncio loop over litellm."""
    out = [figure("batch", f"repertory.batch, {name}: jobs/s", r["jobs_per_s"], "jobs/s",
                  "plain asyncio loop over litellm (nothing stored)", results["baseline_jobs_per_s"])
           for name, r in results["runs"].items()]
    return [f for f in out if f is not None]


def run(quick: bool = False) -> list[Figure]:
    """Measure (printing the table) and return the figures with their same-run baseline."""
    return figures(measure(500 if quick else 2000, 64))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="500 jobs")
    args = ap.parse_args()
    emit_json("bench_batch", measure(500 if args.quick else args.jobs, args.concurrency))


if __name__ == "__main__":
    main()
