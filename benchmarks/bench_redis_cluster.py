#!/usr/bin/env python
"""What a Redis Cluster and replicated commits (``?wait=1``) cost, against a same-run baseline.

Baseline: RedisStore on the single Redis at 127.0.0.1:6379 (database 15, a private prefix).
Against it: a throw-away 3-master, 3-replica cluster of redis-server processes on loopback
(repertory.chaos.redis_cluster), without and with ``wait=1``. Per store: the p50 of N sequential
one-message commits, and the writes/s of S sessions committing at once (group commit).

Run:  .venv/bin/python benchmarks/bench_redis_cluster.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from repertory.chaos.redis_cluster import start_cluster  # noqa: E402
from redis_server import drop_redis_keys  # noqa: E402
from repertory.stores.base import StateWrite  # noqa: E402
from repertory.stores.redis import RedisStore  # noqa: E402


async def measure(url: str, n: int, sessions: int) -> tuple[float, float]:
    store = RedisStore(url)
    try:
        await store.commit(StateWrite("warm", 0, b"m", [b"x"]))
        times, rev = [], 0
        for i in range(n):
            t = time.perf_counter()
            rev = await store.commit(StateWrite("seq", rev, b"m", [b"x" * 250], base_count=i))
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        await asyncio.gather(*(store.commit(StateWrite(f"g{i}", 0, b"m", [b"x" * 250])) for i in range(sessions)))
        return statistics.median(times) * 1e6, sessions / (time.perf_counter() - t)
    finally:
        await store.close()


async def main(quick: bool) -> None:
    n, sessions = (200, 200) if quick else (2000, 1000)
    cluster = start_cluster(Path(tempfile.mkdtemp(prefix="bench-redis-cluster-")))
    prefix = f"bench-{uuid.uuid4().hex}"
    try:
        rows = [
            ("single Redis (baseline)", f"redis://127.0.0.1:6379/15?prefix={prefix}"),
            ("cluster", cluster.url(prefix)),
            ("cluster, wait=1", cluster.url(prefix + "w", wait=1)),
        ]
        results = [(name, *await measure(url, n, sessions)) for name, url in rows]
    finally:
        cluster.stop()
        await drop_redis_keys(prefix)
    base_p50, base_rate = results[0][1], results[0][2]
    print(f"{'store':28} {'commit p50 µs':>14} {'vs base':>8} {'group writes/s':>15} {'vs base':>8}")
    for name, p50, rate in results:
        print(f"{name:28} {p50:14.0f} {p50 / base_p50:7.2f}x {rate:15.0f} {rate / base_rate:7.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
