"""Sessions on the Redis store (local runtime): TTL, pin, outage mid-run, two writers."""

import asyncio
import time
import uuid

import pytest
import redis

import repertory
from repertory import Session, StoreUnavailable
from repertory.config import Settings
from repertory.runtimes.local import LocalRuntime
from contract_helpers import wait_for
from redis_server import drop_redis_keys

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix():
    p = f"rptest-{uuid.uuid4().hex[:8]}"
    yield p
    asyncio.run(drop_redis_keys(p))


def test_default_ttl_is_one_hour_and_pin_removes_it(prefix):
    rt = repertory.init(runtime="local", store=f"redis://127.0.0.1:6379/15?prefix={prefix}")
    try:
        r = redis.Redis(host="127.0.0.1", port=6379, db=15)
        s = Session(session_id="hour")
        s.chat("hello")
        ttl = r.ttl(f"{prefix}:{{hour}}:meta")
        assert 3500 < ttl <= 3600
        s.pin()
        assert r.ttl(f"{prefix}:{{hour}}:meta") == -1
        assert s.ttl == 3600.0 and rt.settings.default_ttl == 3600.0
    finally:
        repertory.shutdown()


def test_ttl_expires_access_refreshes_pinned_stays(prefix):
    repertory.init(runtime="local", store=f"redis://127.0.0.1:6379/15?prefix={prefix}", idle_timeout=0.1)
    try:
        gone = Session(session_id="gone", ttl=1)
        kept = Session(session_id="kept", ttl=1)
        pinned = Session(session_id="pinned", ttl=1)
        for s in (gone, kept, pinned):
            s.chat("hello")
        expired = time.time() + 1  # 'gone' and, unless read, 'kept' expire by then
        pinned.pin()
        reads = 0
        while time.time() < expired + 0.8 or reads < 3:  # keep 'kept' alive by reading it
            time.sleep(0.3)  # well inside its TTL; it is passivated between reads
            assert len(kept.get_history()) == 2
            reads += 1
        wait_for(lambda: not Session(session_id="gone").exists(), what="'gone' to expire")
        assert Session(session_id="kept").exists() and Session(session_id="pinned").exists()
    finally:
        repertory.shutdown()


def test_redis_stopped_mid_run(tmp_path):
    from redis_server import PrivateRedis

    private_redis = PrivateRedis(tmp_path, persistent=True)
    private_redis.start()
    repertory.init(runtime="local", store=private_redis.url)
    try:
        s = Session(session_id="outage")
        acked = []
        for i in range(5):
            s.chat(f"turn {i}")
            acked.append(i)
        private_redis.stop()
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable, match="127.0.0.1"):
            s.chat("lost in the outage")
        assert time.monotonic() - t0 < 15
        with pytest.raises(StoreUnavailable):  # no silent fallback while it is down
            s.get_history()
        private_redis.start()  # same port, same append-only file
        assert "Noted" in s.chat("the store answers again")  # reconnected by itself
        users = [m["content"] for m in s.get_history() if m["role"] == "user"]
        assert users == [f"turn {i}" for i in acked] + ["the store answers again"]
    finally:
        repertory.shutdown()
        private_redis.stop()


def test_two_runtimes_on_one_redis_session(prefix):
    url = f"redis://127.0.0.1:6379/15?prefix={prefix}"
    a, b = LocalRuntime(Settings(store=url)), LocalRuntime(Settings(store=url))
    try:
        sa, sb = Session(session_id="shared", runtime=a), Session(session_id="shared", runtime=b)

        async def burst():
            return await asyncio.gather(*[(sa if i % 2 else sb).achat(f"m{i}") for i in range(30)],
                                        return_exceptions=True)

        results = asyncio.run(burst())
        lost = {i for i, r in enumerate(results) if isinstance(r, Exception)}
        assert all(isinstance(results[i], repertory.ConcurrentUpdate) for i in lost), results
        assert len(lost) <= 8, results
        c = LocalRuntime(Settings(store=url))  # a fresh reader: resident copies may lag
        users = [m["content"] for m in Session(session_id="shared", runtime=c).get_history() if m["role"] == "user"]
        c.shutdown()
        assert sorted(users) == sorted(f"m{i}" for i in range(30) if i not in lost)
    finally:
        a.shutdown()
        b.shutdown()
