"""Functions the store tests run in other processes (importable by a spawned interpreter)."""

from __future__ import annotations

import asyncio


def open_and_commit(paths: list[str], key: str, barrier, results) -> None:
    """For each path in turn: wait for the other workers, then open the SQLite store there and
    commit ``key``. Puts the list of what each commit returned (or raised) on ``results``."""
    from repertory.stores.base import StateWrite
    from repertory.stores.sqlite import SQLiteStore

    async def run(path: str) -> int | str:
        store = SQLiteStore(path)
        try:
            # wait in a thread, so that every worker's loop is already running when they go
            await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
            return await store.commit(StateWrite(key, 0, b"meta", [b"hello"]))
        except Exception as exc:  # the parent asserts on what each worker saw
            return f"{type(exc).__name__}: {exc}"
        finally:
            await store.close()

    async def run_all() -> list[int | str]:
        return [await run(path) for path in paths]

    results.put((key, asyncio.run(run_all())))
