"""Helpers for the contract tests (issue 16): public API only, real SQLite and Redis.

Nothing here imports repertory's internal modules, except ``repertory.stores.codec`` (a
stable path) to build hostile session records.
"""

from __future__ import annotations

import asyncio
import textwrap
import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

import repertory
from redis_server import TEST_DB_URL, drop_redis_keys

STORES = ["sqlite", "redis"]


class Store:
    """One store for one test: its URL, and for Redis its key prefix and a raw client."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.prefix = f"rpcontract-{uuid.uuid4().hex[:10]}"
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp_path / 'state.db'}"
        else:
            self.url = f"{TEST_DB_URL}?prefix={self.prefix}"

    def redis(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=6379, db=15)

    def meta_key(self, storage_key: str) -> str:
        """The Redis key of a session's meta hash (layout documented in stores/redis.py)."""
        return f"{self.prefix}:{{{storage_key}}}:meta"

    def drop(self) -> None:
        if self.kind == "redis":
            asyncio.run(drop_redis_keys(self.prefix))


def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    store = Store(request.param, tmp_path)
    request.addfinalizer(store.drop)
    return store


def start_local(store: Store, **settings: Any):
    return repertory.init(runtime="local", store=store.url, **settings)


def restart_local(store: Store, **settings: Any):
    repertory.shutdown()
    return start_local(store, **settings)


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true (TTL tests: a TTL must elapse)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


# Issue 16 item 1: the other runtime (another process) deletes the session, recreates it and
# brings the new incarnation to the revision the first runtime holds.
OTHER_RUNTIME = textwrap.dedent("""
    import sys
    import repertory
    from repertory import Session
    store, target = sys.argv[1], int(sys.argv[2])
    repertory.init(runtime="local", store=store)
    s = Session("shared-id")
    assert s.delete()
    s.chat("B was here.")
    s.update_user_data(owner="B")
    i = 0
    # Bring the new incarnation to A's revision, as far as a few writes go: an incarnation
    # that counts from 1 gets there; one that starts at a random revision does not.
    while s.get_state()["revision"] < target and i < 10:
        i += 1
        s.update_user_data(n=i)
    print(s.get_state()["revision"])
    repertory.shutdown()
""")
