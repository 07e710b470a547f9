"""Bytes stored per session (Store.usage, repertory.admin.storage_usage): on every backend, in
the CLI (``sessions show``, ``sessions ls --sort size``) and in the server's session info."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import repertory
from repertory import InvalidInput, Memory, Session, SessionNotFound
from repertory.admin import list_sessions, storage_usage
from repertory.cli import app
from repertory.server.auth import Caller
from repertory.server.service import SessionService
from repertory.stores import CheckpointInfo, CheckpointRecord, StateWrite, Store, StorageUsage
from repertory.stores.crypto import KeyRing, generate_encryption_key
from repertory.stores.encrypted import EncryptedStore


async def _fill(store: Store) -> None:
    await store.commit(StateWrite("u/a", 0, b"meta-a", [b"m" * 100, b"n" * 50], updated_at=time.time()))
    await store.commit(StateWrite("u/b", 0, b"meta-bb", [b"x" * 10], updated_at=time.time()))
    info = CheckpointInfo("u/a", "c1", "checkpoint", 1, time.time(), 1, "")
    await store.put_checkpoint(CheckpointRecord(info, b"c" * 30))


async def test_usage_sums_what_each_backend_stores(backend):
    await _fill(backend)
    got = await backend.usage(["u/a", "u/b", "u/missing"])
    assert got == {"u/a": StorageUsage(150, 6, 30), "u/b": StorageUsage(10, 7, 0)}
    assert got["u/a"].total == 186
    # The default (read everything) agrees with the backend's own query.
    assert await Store.usage(backend, ["u/a", "u/b", "u/missing"]) == got
    assert await backend.usage([]) == {}


async def test_usage_through_encryption_counts_the_sealed_records(backend):
    store = EncryptedStore(backend, KeyRing(generate_encryption_key("k1")))
    await _fill(store)
    sealed = (await store.usage(["u/a"]))["u/a"]
    assert sealed.messages > 150 and sealed.checkpoints > 30  # envelopes add a nonce and a tag


@pytest.fixture
def db(tmp_path: Path):
    repertory.init(runtime="local", store=f"sqlite:///{tmp_path / 's.db'}")
    big = Session("big", user_id="u1", checkpoint_every=2)
    for t in range(6):
        big.chat(f"turn {t} " + "y" * 300)
    Session("small", user_id="u1").chat("hi")
    repertory.shutdown()
    yield tmp_path / "s.db"
    if repertory.is_initialized():
        repertory.shutdown()


def test_storage_usage_splits_messages_checkpoints_memory_and_meta(db):
    repertory.init(runtime="local", store=f"sqlite:///{db}")
    got = storage_usage("big", "u1")
    assert set(got) == {"messages", "checkpoints", "memory", "meta", "total"}
    assert got["messages"] > 6 * 300 and 0 < got["checkpoints"] < got["messages"] and got["memory"] == 0
    assert got["total"] == got["messages"] + got["checkpoints"] + got["memory"] + got["meta"]
    with pytest.raises(SessionNotFound, match="sessions ls"):
        storage_usage("ghost", "u1")


def test_memory_counts_the_memories_the_session_recorded(tmp_path):
    repertory.init(runtime="local", store=f"sqlite:///{tmp_path / 's.db'}")
    memory = Memory(provider="sqlite")
    s = Session("m", user_id="u1")
    s.chat("hello")
    memory.add("Alice likes green tea", user_id="u1", session_id="m")
    memory.add("Bob likes coffee", user_id="u1", session_id="other")
    assert storage_usage("m", "u1", memory)["memory"] == len("Alice likes green tea")
    repertory.shutdown()


def test_listing_by_size_finds_the_big_ones(db):
    repertory.init(runtime="local", store=f"sqlite:///{db}")
    rows = list_sessions(sort="size")
    assert [r.session_id for r in rows] == ["big", "small"] and rows[0].bytes_stored > rows[1].bytes_stored
    assert [r.session_id for r in list_sessions(sort="size", limit=1)] == ["big"]
    assert list_sessions()[0].bytes_stored is None  # by update time: nothing is sized
    with pytest.raises(InvalidInput, match="'size'"):
        list_sessions(sort="bytes")


def _run(db: Path, *args: str):
    return CliRunner().invoke(app, ["sessions", *args, "--local", "--store", f"sqlite:///{db}"])


def test_cli_show_and_ls_sort_size(db):
    result = _run(db, "show", "big", "--user", "u1")
    assert result.exit_code == 0, result.output
    assert "stored" in result.output and "checkpoints" in result.output and "memory 0 B" in result.output
    result = _run(db, "ls", "--sort", "size")
    assert result.exit_code == 0, result.output
    assert "size" in result.output and result.output.index("big") < result.output.index("small")
    assert "KB" in result.output
    result = _run(db, "ls", "--sort", "weight")
    assert result.exit_code != 0 and "'size'" in result.output


async def test_the_session_info_of_the_api_reports_bytes_stored(db):
    repertory.init(runtime="local", store=f"sqlite:///{db}")
    info = await SessionService({}).info(Caller("u1", False, None, "test"), "big")
    assert info["bytes_stored"] == storage_usage("big", "u1")
