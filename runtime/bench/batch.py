"""Batch throughput: ``repertory.batch`` against a plain asyncio loop calling litellm.

Single-turn jobs with the demo model (``repertory/demo`` through litellm). The baseline is the
floor a user could write without repertory: one process, one asyncio loop, ``concurrency``
``litellm.acompletion`` calls in flight, nothing stored. repertory runs the same jobs as
durable sessions (every turn written to SQLite before it counts), on the local runtime and on
Ray (2 hosts; agents in their actors, the default, and in the hosts, ``agent_placement="host"``).
Also run with the null model client (``repertory/null``, a benchmark instrument without
litellm) to show the runtime's own ceiling, against the issue's floor for it: the number of
hosts times what one in-process ``HostCore`` (with its agent in-process and the same SQLite
store) answers per second for the same single-turn jobs, measured in the same run.
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


HOSTS = 2  # hosts of the Ray runtime, and the multiple of the in-process floor it is held to


async def hostcore_floor(n: int, concurrency: int, workdir: str, tag: str = "floor") -> float:
    """Turns/s of one in-process HostCore (null model, agent in-process, SQLite) on the batch's
    shape: ``n`` new sessions, one turn each, ``concurrency`` at once, nothing else."""
    import uuid

    from repertory.agents.agent import Agent
    from repertory.config import Settings
    from repertory.host.api import TurnRequest
    from repertory.host.core import HostCore
    from repertory.ids import SessionRef
    from repertory.logs import configure_logging
    from repertory.runtimes.local import LocalAgentPool
    from repertory.stores import SQLiteStore

    configure_logging()  # before any runtime does: else structlog's default prints a debug line a turn
    db = os.path.join(workdir, f"{tag}.db")
    store = SQLiteStore(db)
    pool = LocalAgentPool()
    agent = Agent(name="Batch", model="repertory/null")
    pool.add(agent)
    host = HostCore(store, pool, Settings(store=f"sqlite:///{db}", max_resident=n + 100))
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await host.turn(TurnRequest(ref=SessionRef(f"floor-{i}"), agent_key=agent.key, content=content(i),
                                        turn_id=uuid.uuid4().hex))

    try:
        await asyncio.gather(*(one(-1 - i) for i in range(min(n, 100))))  # warm-up, untimed
        t = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t)
    finally:
        await host.close()
        await store.close()


# (runtime, model, agent placement, per host): "per host" runs the batch at the concurrency
# times the hosts, so that each host has as many jobs at once as the in-process floor has turns
# (information beside the figure, which is at the batch's own concurrency).
SETTINGS = [("local", "repertory/demo", "actor", None), ("local", "repertory/null", "actor", None),
            ("ray", "repertory/demo", "actor", None), ("ray", "repertory/null", "actor", None),
            ("ray", "repertory/demo", "host", None), ("ray", "repertory/null", "host", None),
            ("ray", "repertory/null", "actor", "per host"), ("ray", "repertory/null", "host", "per host")]


def label(runtime: str, model: str, placement: str, per_host: int | None = None) -> str:
    return (f"{runtime} {model}" + (", agents in hosts" if placement == "host" else "")
            + (f", {per_host} jobs at once per host" if per_host else ""))


def run_batch(n: int, concurrency: int, runtime: str, model: str, workdir: str, placement: str = "actor",
              suffix: str = "") -> dict:
    import repertory
    from repertory import Agent

    kwargs = {"num_hosts": HOSTS, "agent_placement": placement} if runtime == "ray" else {}
    tag = f"{runtime}-{model.replace('/', '_')}-{placement}{suffix}"
    repertory.init(runtime=runtime, store=f"sqlite:///{workdir}/{tag}.db", **kwargs)
    try:
        agent = Agent(name="Batch", model=model)
        warm = [{"id": f"warm-{i}", "agent": "batch", "messages": ["hello"]} for i in range(32)]  # every host warm
        repertory.batch(warm, os.path.join(workdir, f"warm-{tag}.jsonl"),
                        agents={"batch": agent}, concurrency=concurrency)
        jobs = [{"id": f"job-{i}", "agent": "batch", "messages": [content(i)]} for i in range(n)]
        out = os.path.join(workdir, f"out-{tag}.jsonl")
        report = repertory.batch(jobs, out, agents={"batch": agent}, concurrency=concurrency)
        return {"ok": report.ok, "failed": report.failed, "seconds": report.seconds,
                "jobs_per_s": report.ok / report.seconds if report.seconds else None,
                "turns_per_s": report.turns / report.seconds if report.seconds else None}
    finally:
        repertory.shutdown()


def measure(n: int, concurrency: int) -> dict:
    """The baselines, then every runtime, model and placement on the same jobs; prints the table."""
    start = load_info()
    base = asyncio.run(baseline(n, concurrency))
    results: dict = {"baseline_jobs_per_s": base, "runs": {}, "hosts": HOSTS}
    floors = []
    with tempfile.TemporaryDirectory() as d:
        for i, (runtime, model, placement, per_host) in enumerate(SETTINGS):
            # the floor right before each setting: a busy machine's load moves within a run
            floors.append(asyncio.run(hostcore_floor(n, concurrency, d, f"floor-{i}")))
            at_once = concurrency * HOSTS if per_host else concurrency
            run = run_batch(n, at_once, runtime, model, d, placement, f"-{at_once}")
            name = label(runtime, model, placement, concurrency if per_host else None)
            results["runs"][name] = {**run, "floor_turns_per_s": floors[-1], "concurrency": at_once}
    floor = results["hostcore_floor_turns_per_s"] = sorted(floors)[len(floors) // 2]
    rows = [["plain asyncio loop over litellm (baseline, nothing stored)", fmt_num(base), fmt_num(base), "1.00×", "", ""],
            ["one in-process HostCore, null model (floor; not a batch; median)", "", fmt_num(floor), "", "", ""]]
    for name, r in results["runs"].items():
        null = "null" in name
        rows.append([f"repertory.batch, {name}" + ("  (null model client: benchmark instrument)" if null else ""),
                     fmt_num(r["jobs_per_s"]), fmt_num(r["turns_per_s"]), fmt_ratio(ratio(r["jobs_per_s"], base)),
                     fmt_num(r["floor_turns_per_s"]),
                     fmt_ratio(ratio(r["turns_per_s"], HOSTS * r["floor_turns_per_s"]))
                     if null and name.startswith("ray") else ""])
    table(f"Batch of {n} single-turn jobs, concurrency {concurrency}",
          ["setting", "jobs/s", "turns/s", "÷ litellm loop", "HostCore floor just before",
           f"÷ {HOSTS} × that floor"], rows,
          caption=f"Target (issue): Ray, null model ≥ 80% of {HOSTS} hosts × the in-process HostCore floor "
                  "(measured right before each setting, in the same run), at the batch's concurrency. Rows "
                  f"'… jobs at once per host' run at {HOSTS} × that, as many jobs per host as the floor has "
                  "turns at once (information).")
    results.update(load_start=start, load_end=load_info(), jobs=n, concurrency=concurrency)
    return results


def figures(results: dict) -> list[Figure]:
    """Jobs/s of each setting against the plain asyncio loop over litellm; the Ray null-model
    runs' turns/s against the hosts × in-process HostCore floor."""
    out = [figure("batch", f"repertory.batch, {name}: jobs/s", r["jobs_per_s"], "jobs/s",
                  "plain asyncio loop over litellm (nothing stored)", results["baseline_jobs_per_s"])
           for name, r in results["runs"].items()]
    floor = results.get("hostcore_floor_turns_per_s")
    hosts = results.get("hosts", HOSTS)
    for name, r in results["runs"].items():
        here = r.get("floor_turns_per_s") or floor
        if name.startswith("ray") and "null" in name and here:
            out.append(figure("batch", f"repertory.batch, {name}: turns/s", r.get("turns_per_s"), "turns/s",
                              f"{hosts} × one in-process HostCore's turns/s (null model)", hosts * here))
    return [f for f in out if f is not None]


def run(quick: bool = False) -> list[Figure]:
    """Measure (printing the table) and return the figures with their same-run baseline."""
    return figures(measure(1000 if quick else 5000, 64))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="1,000 jobs")
    args = ap.parse_args()
    emit_json("bench_batch", measure(1000 if args.quick else args.jobs, args.concurrency))


if __name__ == "__main__":
    main()
