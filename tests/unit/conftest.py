import asyncio
import uuid

import pytest

import repertory
from redis_server import TEST_DB_URL, drop_redis_keys
from repertory.stores import MemoryStore, SQLiteStore
from contract_helpers import STORES, make_store, start_local


@pytest.fixture
def rt(tmp_path):
    """The local runtime (no Ray) over a fresh SQLite file."""
    rt = repertory.init(runtime="local", store=f"sqlite:///{tmp_path / 'state.db'}")
    yield rt
    repertory.shutdown()


@pytest.fixture(params=STORES)
def local(request, tmp_path):
    """The local runtime over a fresh SQLite file or a private Redis key prefix; yields the
    contract_helpers.Store (its URL, and for Redis a raw client)."""
    store = make_store(request, tmp_path)
    start_local(store)
    yield store
    if repertory.is_initialized():
        repertory.shutdown()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def url(request, tmp_path):
    """The URL of an empty store: a fresh SQLite file, or Redis under a private key prefix
    (dropped afterwards). A test that parametrizes ``url`` itself gets its own values."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    prefix = f"rptest-{uuid.uuid4().hex}"
    yield f"{TEST_DB_URL}?prefix={prefix}"
    asyncio.run(drop_redis_keys(prefix))


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request, tmp_path):
    """Each Store backend in turn, empty: MemoryStore, SQLite in a fresh file, Redis under a
    private key prefix (dropped afterwards)."""
    if request.param == "redis":
        from repertory.stores.redis import RedisStore

        prefix = f"rptest-{uuid.uuid4().hex}"
        s = RedisStore(TEST_DB_URL, prefix=prefix)
        try:
            yield s
        finally:
            await s.close()
            await drop_redis_keys(prefix)
        return
    s = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "state.db")
    yield s
    await s.close()
