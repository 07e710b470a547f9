"""EncryptedStore over every backend: the store conformance suite, sealed records at rest,
restarts, wrong keys, plaintext migration, Redis TTL and rekey."""

import sqlite3
import time
import uuid

import pytest
import redis.asyncio as aredis

from redis_server import TEST_DB_URL, drop_redis_keys
from repertory.errors import DecryptionFailed, EncryptionError
from repertory.stores import CheckpointInfo, CheckpointRecord, StateWrite
from repertory.stores.crypto import KeyRing, envelope_kid, generate_encryption_key
from repertory.stores.encrypted import EncryptedStore
from repertory.stores.redis import RedisStore
from repertory.stores.sqlite import SQLiteStore

from test_store_conformance import *  # noqa: F401,F403  (the whole suite, run here over the wrapper)

K1 = generate_encryption_key("k1")
K2 = generate_encryption_key("k2")


@pytest.fixture
def store(backend):
    """Overrides the conformance suite's fixture: each backend behind the wrapper."""
    return EncryptedStore(backend, KeyRing(K1))


def _cp(key: str, cp_id: str, kind: str = "checkpoint", data: bytes = b"snapshot") -> CheckpointRecord:
    return CheckpointRecord(CheckpointInfo(key, cp_id, kind, 1, time.time(), 2, f"secret label {cp_id}"), data)


async def _fill(store, key: str = "alice/s1") -> None:
    await store.commit(StateWrite(key, 0, b"secret meta", [b"secret m0", b"secret m1"], updated_at=1.0,
                                  checkpoint=_cp(key, "c1")))
    await store.put_checkpoint(_cp(key, "v1", "version", b"secret version"))


async def test_records_are_sealed_at_rest(backend):
    await _fill(EncryptedStore(backend, KeyRing(K1)))
    raw = await backend.load("alice/s1")
    blobs = [raw.meta, *raw.messages, (await backend.get_checkpoint("alice/s1", "c1")).data,
             (await backend.get_checkpoint("alice/s1", "v1")).data]
    assert all(envelope_kid(b) == "k1" and b"secret" not in b and b"snapshot" not in b for b in blobs)
    assert raw.revision == 1 and len(raw.messages) == 2  # what the backend needs stays in the clear
    infos = await backend.list_checkpoints("alice/s1")
    assert [i.cp_id for i in infos] == ["c1", "v1"] and not any("secret" in i.label for i in infos)
    store = EncryptedStore(backend, KeyRing(K1))
    assert [i.label for i in await store.list_checkpoints("alice/s1")] == ["secret label c1", "secret label v1"]
    assert [i.label for i in await store.list_checkpoints("alice/s1", "version")] == ["secret label v1"]
    assert (await store.get_checkpoint("alice/s1", "v1")).info.label == "secret label v1"


async def test_a_wrong_key_fails_and_changes_nothing(backend):
    await _fill(EncryptedStore(backend, KeyRing(K1)))
    before = await backend.load("alice/s1")
    wrong = EncryptedStore(backend, KeyRing(generate_encryption_key("k1")))
    with pytest.raises(DecryptionFailed, match="does not decrypt"):
        await wrong.load("alice/s1")
    with pytest.raises(DecryptionFailed):
        await wrong.get_checkpoint("alice/s1", "v1")
    with pytest.raises(DecryptionFailed):
        await wrong.list_checkpoints("alice/s1")
    with pytest.raises(DecryptionFailed, match="not configured"):
        await EncryptedStore(backend, KeyRing(K2)).load("alice/s1")
    after = await backend.load("alice/s1")
    assert (after.revision, after.meta, after.messages) == (before.revision, before.meta, before.messages)


async def test_a_blob_moved_to_another_session_does_not_decrypt(backend):
    store = EncryptedStore(backend, KeyRing(K1))
    await _fill(store, "alice/s1")
    await store.commit(StateWrite("bob/s1", 0, b"bob meta", [b"bob m0"]))
    stolen = await backend.load("alice/s1")
    # the raw backend writes alice's sealed blobs into bob's session
    await backend.commit(StateWrite("bob/s1", 1, stolen.meta, stolen.messages, replace=True))
    with pytest.raises(DecryptionFailed, match="copied from another session"):
        await store.load("bob/s1")
    cp = await backend.get_checkpoint("alice/s1", "v1")
    await backend.put_checkpoint(CheckpointRecord(CheckpointInfo("bob/s1", "v1", "version", 1, 0.0, 0), cp.data))
    with pytest.raises(DecryptionFailed):
        await store.get_checkpoint("bob/s1", "v1")
    # and within one session, from one checkpoint to another
    await backend.put_checkpoint(CheckpointRecord(CheckpointInfo("alice/s1", "c1", "checkpoint", 1, 0.0, 0),
                                                  cp.data))
    with pytest.raises(DecryptionFailed):
        await store.get_checkpoint("alice/s1", "c1")


async def test_plaintext_records_read_then_written_encrypted(backend):
    await backend.commit(StateWrite("old", 0, b"plain meta", [b"plain m0"]))
    store = EncryptedStore(backend, KeyRing(K1))
    rec = await store.load("old")
    assert (rec.meta, rec.messages) == (b"plain meta", [b"plain m0"])
    await store.commit(StateWrite("old", rec.revision, b"meta 2", [b"m1"], base_count=1))
    raw = await backend.load("old")
    assert raw.messages[0] == b"plain m0" and envelope_kid(raw.messages[1]) == "k1"
    assert envelope_kid(raw.meta) == "k1"
    with pytest.raises(EncryptionError, match="encryption_required"):
        await EncryptedStore(backend, KeyRing(K1), required=True).load("old")
    await backend.put_checkpoint(CheckpointRecord(CheckpointInfo("old", "c1", "checkpoint", 1, 0.0, 0, "plain"),
                                                  b"plain cp"))
    assert [i.label for i in await store.list_checkpoints("old")] == ["plain"]
    assert (await store.get_checkpoint("old", "c1")).data == b"plain cp"
    with pytest.raises(EncryptionError, match="label"):
        await EncryptedStore(backend, KeyRing(K1), required=True).list_checkpoints("old")


async def test_rekey_rewrites_old_key_and_plaintext_under_the_current_key(backend):
    await _fill(EncryptedStore(backend, KeyRing(K1)))
    await backend.commit(StateWrite("plain", 0, b"plain meta", [b"plain m0"]))
    rotated = EncryptedStore(backend, KeyRing([K2, K1]))
    assert await rotated.acquire_lease("alice/s1", "rekey", 10) == 0.0
    assert await rotated.rekey("alice/s1", "rekey") is True
    await rotated.release_lease("alice/s1", "rekey")
    assert await rotated.rekey("plain", None) is True
    assert await rotated.rekey("alice/s1", None) is False  # nothing left to do
    raw = await backend.load("alice/s1")
    assert {envelope_kid(b) for b in [raw.meta, *raw.messages]} == {"k2"}
    assert envelope_kid((await backend.get_checkpoint("alice/s1", "v1")).data) == "k2"
    only_new = EncryptedStore(backend, KeyRing(K2), required=True)
    rec = await only_new.load("alice/s1")
    assert (rec.meta, rec.messages) == (b"secret meta", [b"secret m0", b"secret m1"])
    assert (await only_new.get_checkpoint("alice/s1", "c1")).data == b"snapshot"
    assert [i.label for i in await only_new.list_checkpoints("alice/s1")] == ["secret label c1", "secret label v1"]
    assert (await only_new.load("plain")).messages == [b"plain m0"]


async def test_sqlite_round_trip_after_a_restart(tmp_path):
    path = tmp_path / "state.db"
    first = EncryptedStore(SQLiteStore(path), KeyRing(K1))
    await _fill(first)
    await first.close()
    again = EncryptedStore(SQLiteStore(path), KeyRing([K2, K1]))
    rec = await again.load("alice/s1")
    assert (rec.meta, rec.messages) == (b"secret meta", [b"secret m0", b"secret m1"])
    assert (await again.get_checkpoint("alice/s1", "v1")).data == b"secret version"
    assert [i.cp_id for i in await again.list_checkpoints("alice/s1")] == ["c1", "v1"]
    await again.close()
    with sqlite3.connect(path) as conn:  # nothing readable in the file
        blobs = [r[0] for r in conn.execute("SELECT data FROM messages UNION ALL SELECT meta FROM sessions "
                                            "UNION ALL SELECT data FROM checkpoints")]
    assert blobs and not any(b"secret" in b for b in blobs)


@pytest.mark.redis
async def test_redis_round_trip_after_a_restart_with_ttl(tmp_path):
    prefix = f"rptest-{uuid.uuid4().hex}"
    try:
        first = EncryptedStore(RedisStore(TEST_DB_URL, prefix=prefix), KeyRing(K1))
        await first.commit(StateWrite("alice/s1", 0, b"secret meta", [b"secret m0"], updated_at=time.time(),
                                      expires_at=time.time() + 120, checkpoint=_cp("alice/s1", "c1")))
        await first.close()
        again = EncryptedStore(RedisStore(TEST_DB_URL, prefix=prefix), KeyRing(K1))
        rec = await again.load("alice/s1")
        assert (rec.meta, rec.messages) == (b"secret meta", [b"secret m0"])
        assert (await again.get_checkpoint("alice/s1", "c1")).data == b"snapshot"
        await again.close()
        client = aredis.Redis(host="127.0.0.1", port=6379, db=15)
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            assert keys
            for k in keys:
                assert 0 < await client.pttl(k) <= 120_000, k  # every key of the session expires
            meta = await client.hget(f"{prefix}:{{alice/s1}}:meta", "meta")
            assert envelope_kid(meta) == "k1" and b"secret" not in meta
        finally:
            await client.aclose()
    finally:
        await drop_redis_keys(prefix)


async def test_rekey_without_the_old_key_fails_and_changes_nothing(backend):
    await _fill(EncryptedStore(backend, KeyRing(K1)))
    before = await backend.load("alice/s1")
    with pytest.raises(DecryptionFailed, match="not configured"):
        await EncryptedStore(backend, KeyRing(K2)).rekey("alice/s1", None)
    after = await backend.load("alice/s1")
    assert (after.revision, after.meta, after.messages) == (before.revision, before.meta, before.messages)
