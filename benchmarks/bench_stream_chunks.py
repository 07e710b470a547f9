"""The host's per-chunk cost of a streamed turn: ``RunningTurn`` against the ``asyncio.Queue`` it replaced.

Before resumable streams, ``HostCore.stream_turn`` passed each chunk from the turn's task to its
reader through an ``asyncio.Queue``. Now each chunk is appended to the turn's ``RunningTurn``
(host.busy), which any number of readers follow from an offset. Both run here in one loop, in
the same run, with one reader (the common case) and with four (a reader plus resumed ones):
a producer task adds ``chunks`` word-sized chunks, yielding to the loop after each as a model
stream does, and the readers take them. Reported: ns per chunk and the ratio to the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import emit_json, fmt_num, fmt_ratio, load_info, table  # noqa: E402

from repertory.host.busy import RunningTurn  # noqa: E402

WORD = "word "


async def with_queue(chunks: int, readers: int) -> float:
    queues = [asyncio.Queue() for _ in range(readers)]
    done = object()

    async def produce() -> None:
        for _ in range(chunks):
            for q in queues:
                q.put_nowait(WORD)
            await asyncio.sleep(0)
        for q in queues:
            q.put_nowait(done)

    async def read(q: asyncio.Queue) -> int:
        n = 0
        while (item := await q.get()) is not done:
            n += len(item)
        return n

    t = time.perf_counter()
    _, *got = await asyncio.gather(produce(), *[read(q) for q in queues])
    assert got == [chunks * len(WORD)] * readers
    return time.perf_counter() - t


async def with_running_turn(chunks: int, readers: int) -> float:
    turn = RunningTurn("t", "m")

    async def produce() -> None:
        for _ in range(chunks):
            turn.add(WORD)
            await asyncio.sleep(0)
        turn.finish("reply")

    async def read() -> int:
        n = 0
        async for piece, _ in turn.follow(0):
            n += len(piece)
        return n

    t = time.perf_counter()
    _, *got = await asyncio.gather(produce(), *[read() for _ in range(readers)])
    assert got == [chunks * len(WORD)] * readers
    return time.perf_counter() - t


async def main(chunks: int, rounds: int) -> dict:
    before = load_info()
    rows, summary = [], {}
    for readers in (1, 4):
        q_times, r_times = [], []
        for _ in range(rounds):  # alternate, so both see the same load periods
            q_times.append(await with_queue(chunks, readers))
            r_times.append(await with_running_turn(chunks, readers))
        q_ns, r_ns = min(q_times) / chunks * 1e9, min(r_times) / chunks * 1e9
        summary[f"readers_{readers}"] = {"queue_ns_per_chunk": round(q_ns), "running_turn_ns_per_chunk": round(r_ns),
                                         "ratio": round(r_ns / q_ns, 3)}
        rows.append([str(readers), fmt_num(q_ns), fmt_num(r_ns), fmt_ratio(r_ns / q_ns)])
    table("per-chunk host cost of a streamed turn (best of rounds)",
          ["readers", "asyncio.Queue ns/chunk (baseline)", "RunningTurn ns/chunk", "ratio"], rows)
    return {"summary": summary, "chunks": chunks, "rounds": rounds, "load_before": before, "load_after": load_info()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    emit_json("stream_chunks", asyncio.run(main(20_000 if args.quick else 100_000, 3 if args.quick else 7)))
