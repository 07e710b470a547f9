"""The stores' hooks for other tables and keys (what repertory.interop builds on): SQLite
add_schema/read/write/aread/awrite, Redis tagged_key/register_script/run_script/run_command/
scan_keys and the blocking twin SyncRedis."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid

import pytest

from redis_server import TEST_DB_URL, drop_redis_keys
from repertory.errors import InvalidInput, StoreUnavailable
from repertory.stores import RedisStore, SQLiteStore
from repertory.stores.redis_sync import SyncRedis

SCHEMA = ("CREATE TABLE IF NOT EXISTS extra (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID",)


def _put(conn: sqlite3.Connection, k: str, v: str) -> None:
    conn.execute("INSERT OR REPLACE INTO extra (k, v) VALUES (?, ?)", (k, v))


def _get(conn: sqlite3.Connection, k: str) -> str | None:
    row = conn.execute("SELECT v FROM extra WHERE k = ?", (k,)).fetchone()
    return row and row[0]


async def test_sqlite_tables_of_our_own_beside_the_sessions(tmp_path):
    store = SQLiteStore(tmp_path / "state.db")
    store.add_schema(SCHEMA, ["extra"])
    store.add_schema(SCHEMA, ["extra"])  # idempotent
    store.write(_put, "a", "1")
    assert await asyncio.to_thread(store.read, _get, "a") == "1"  # another thread, its own connection
    await store.awrite(_put, "b", "2")
    assert await store.aread(_get, "b") == "2"
    assert await store.load("a") is None  # sessions are untouched
    await store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.read(_get, "a")
    again = SQLiteStore(tmp_path / "state.db")  # read back after a restart
    again.add_schema(SCHEMA, ["extra"])
    assert again.read(_get, "a") == "1" and again.read(_get, "b") == "2"
    await again.close()


async def test_sqlite_awrite_never_holds_the_loop_while_another_writer_has_the_lock(tmp_path):
    store = SQLiteStore(tmp_path / "state.db")
    store.add_schema(SCHEMA, ["extra"])
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    await store.awrite(_put, "c", "3")  # busy: done on the store thread once the lock is free
    ticker.cancel()
    release.join()
    other.close()
    assert ticks >= 10 and store.read(_get, "c") == "3"
    await store.close()


@pytest.mark.redis
async def test_redis_keys_scripts_and_commands_of_our_own():
    prefix = f"rptest-{uuid.uuid4().hex}"
    store = RedisStore(TEST_DB_URL, prefix=prefix)
    sync = SyncRedis(store)
    try:
        key = store.tagged_key("~x/t", "k")
        assert key == f"{prefix}:{{~x/t}}:k"
        with pytest.raises(InvalidInput):
            store.tagged_key("a{b", "k")
        src = "#!lua\nredis.call('RPUSH', KEYS[1], ARGV[1]) return redis.call('LLEN', KEYS[1])\n"
        assert await store.run_script(store.register_script(src), [key], ["a"], "test") == 1
        assert sync.run_script(sync.register_script(src), [key], ["b"], "test") == 2
        assert await store.run_command("test", "LRANGE", key, 0, -1) == [b"a", b"b"]
        assert await store.scan_keys(f"{prefix}:*") == [key.encode()] == sync.scan_keys(f"{prefix}:*")
    finally:
        sync.close()
        await store.close()
        await drop_redis_keys(prefix)
