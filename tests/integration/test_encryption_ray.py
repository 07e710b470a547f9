"""Encryption at rest on the default runtime (Ray): the key reaches every host (and the hosts
in front of the StoreActor), a wrong key fails and overwrites nothing, rekey rotates."""

import asyncio
import os
import uuid

import pytest

import repertory
from repertory import Agent, Session, SharedState
from repertory.stores.crypto import envelope_kid, generate_encryption_key
from repertory.stores.factory import open_store

from redis_server import TEST_DB_URL, drop_redis_keys

pytestmark = pytest.mark.ray

K1 = generate_encryption_key("k1")
K2 = generate_encryption_key("k2")


def _raw(url, key):
    async def read():
        s = open_store(url)
        try:
            rec = await s.load(key)
            cps = [(await s.get_checkpoint(key, i.cp_id)).data for i in await s.list_checkpoints(key)]
            return rec.revision, rec.meta, rec.messages, cps
        finally:
            await s.close()

    return asyncio.run(read())


def _starter(request, ray_cluster, tmp_path):
    """Starts (and restarts) a Ray runtime on one store with the given keys."""
    prefix = f"rpenc-{uuid.uuid4().hex[:10]}"
    url = (f"{TEST_DB_URL}?prefix={prefix}" if request.param == "redis"
           else f"sqlite:///{tmp_path / 'state.db'}")
    access = "actor" if request.param == "sqlite-actor" else "direct"
    namespace = f"t{os.getpid()}-{tmp_path.name}"[:60]

    def run(**keys):
        if repertory.is_initialized():
            repertory.shutdown()
        return repertory.init(store=url, num_hosts=2, namespace=namespace, store_access=access, **keys)

    run.url = url
    yield run
    if repertory.is_initialized():
        repertory.shutdown()
    if request.param == "redis":
        asyncio.run(drop_redis_keys(prefix))


@pytest.fixture(params=["sqlite"])
def start(request, ray_cluster, tmp_path):
    yield from _starter(request, ray_cluster, tmp_path)


@pytest.fixture(params=["sqlite-actor", pytest.param("redis", marks=pytest.mark.redis)])
def start_other(request, ray_cluster, tmp_path):
    """The StoreActor (hosts seal, the actor only ever holds sealed records) and Redis."""
    yield from _starter(request, ray_cluster, tmp_path)


def test_chat_restart_read_back_wrong_key_and_rekey(start):
    start(encryption_key=K1)
    agent = Agent(name="Assistant", instructions="You are a helpful assistant with memory")
    s = Session("alice-1", agent=agent, checkpoint_every=1)
    s.chat("My name is Alice")
    s.save_version("first")
    SharedState("board").set("plan", "secret plan")
    revision, meta, messages, cps = _raw(start.url, "alice-1")
    assert cps and {envelope_kid(b) for b in [meta, *messages, *cps]} == {"k1"}
    assert not any(b"Alice" in b for b in [meta, *messages, *cps])

    start(encryption_key=K1)  # a restarted runtime reads it back
    assert "Alice" in Session("alice-1", agent=agent).chat("What's my name?")
    assert SharedState("board").get("plan") == "secret plan"
    before = _raw(start.url, "alice-1")

    start(encryption_key=generate_encryption_key("k1"))  # same id, another key
    with pytest.raises(repertory.DecryptionFailed, match="does not decrypt"):
        Session("alice-1", agent=agent).chat("this must not be stored")
    assert _raw(start.url, "alice-1") == before  # byte-identical: nothing overwritten

    rt = start(encryption_key=[K2, K1])
    s = Session("alice-1", agent=agent)
    s.chat("resident now")  # the session is active on its host while the rekey runs
    assert repertory.rekey_sessions() == 2  # the session and the shared state
    s.chat("after the rekey")  # the host's copy is stale: it reloads, it does not overwrite
    assert [m["content"] for m in s.get_history()[0::2]] == [
        "My name is Alice", "What's my name?", "resident now", "after the rekey"]
    _, meta, messages, cps = _raw(start.url, "alice-1")
    assert {envelope_kid(b) for b in [meta, *messages, *cps]} == {"k2"}
    assert K2.split(":")[1] not in repr(rt.settings)

    start(encryption_key=K2, encryption_required=True)
    s = Session("alice-1", agent=agent)
    assert len(s.get_history()) == 8 and "Alice" in s.chat("What's my name again?")
    assert [v["description"] for v in s.list_versions()] == ["first"]
    assert SharedState("board").get("plan") == "secret plan"


def test_store_actor_and_redis_hold_only_sealed_records(start_other):
    start = start_other
    start(encryption_key=K1)
    s = Session("bob-1", user_id="bob", checkpoint_every=1)
    s.chat("My name is Bob")
    _, meta, messages, cps = _raw(start.url, "bob/bob-1")
    assert cps and {envelope_kid(b) for b in [meta, *messages, *cps]} == {"k1"}
    before = _raw(start.url, "bob/bob-1")
    start(encryption_key=K2)
    with pytest.raises(repertory.DecryptionFailed, match="not configured"):
        Session("bob-1", user_id="bob").chat("this must not be stored")
    assert _raw(start.url, "bob/bob-1") == before
    start(encryption_key=[K2, K1])
    assert "Bob" in Session("bob-1", user_id="bob").chat("What's my name?")
    assert repertory.rekey_sessions() == 1
    _, meta, messages, cps = _raw(start.url, "bob/bob-1")
    assert {envelope_kid(b) for b in [meta, *messages, *cps]} == {"k2"}
