"""Linear checkpoint storage and bytes-per-session reporting on the default runtime (Ray):
checkpoints reference the stored history, edits and restores copy on write, everything reads
back after a restart, and the listing finds the biggest session by size."""

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import httpx
import pytest

import repertory
from repertory import Agent, Session, tokens
from repertory.admin import list_sessions, storage_usage
from repertory.stores.codec import MsgpackCodec
from repertory.server import ServerConfig, serve_in_thread
from repertory.stores.factory import open_store
from repertory.tokens import Keyring

from redis_server import TEST_DB_URL, drop_redis_keys

pytestmark = pytest.mark.ray

NULL = Agent("Null", model="repertory/null")
_codec = MsgpackCodec()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def start(request, ray_cluster, tmp_path):
    """Starts (and restarts) a default (Ray) runtime on one store."""
    prefix = f"rplin-{uuid.uuid4().hex[:10]}"
    url = f"{TEST_DB_URL}?prefix={prefix}" if request.param == "redis" else f"sqlite:///{tmp_path / 'state.db'}"
    namespace = f"t{os.getpid()}-{tmp_path.name}"[:60]

    def run():
        if repertory.is_initialized():
            repertory.shutdown()
        return repertory.init(store=url, num_hosts=2, namespace=namespace)

    run.url = url
    yield run
    if repertory.is_initialized():
        repertory.shutdown()
    if request.param == "redis":
        asyncio.run(drop_redis_keys(prefix))


def _formats(url: str, key: str) -> list[int]:
    async def read():
        s = open_store(url)
        try:
            return [_codec.decode((await s.get_checkpoint(key, i.cp_id)).data).get("format", 1)
                    for i in await s.list_checkpoints(key)]
        finally:
            await s.close()

    return asyncio.run(read())


def _contents(s: Session) -> list[str]:
    return [m["content"] for m in s.get_history()]


def test_checkpoints_are_linear_survive_edits_restores_and_a_restart(start):
    start()
    s = Session("big", agent=NULL, user_id="alice", checkpoint_every=5)
    for t in range(20):
        s.chat(f"turn {t} " + "x" * 200)
    small = Session("small", agent=NULL, user_id="alice")
    small.chat("hello")
    at_20 = _contents(s)
    stored = storage_usage("big", "alice")
    # 4 checkpoints hold no copy of the history (full copies would be 2.5x its bytes).
    assert stored["checkpoints"] < stored["messages"] / 2, stored
    s.edit_message(3, "edited")  # copy-on-write: checkpoints 1..4 keep the original message 3
    s.truncate(10)
    # 4 automatic, 1 before the edit, 1 before truncate, and 2 frozen segments (one per edit).
    assert _formats(start.url, "alice/big") == [2] * 8
    # The edited tails are stored once each, not once per checkpoint (that would be ~4x the history).
    assert storage_usage("big", "alice")["checkpoints"] < 2.5 * stored["messages"]

    start()  # a new runtime on the same store: everything acknowledged reads back
    s = Session("big", agent=NULL, user_id="alice", checkpoint_every=5)
    assert [c["id"] for c in s.list_checkpoints()] == [1, 2, 3, 4, 5, 6]
    assert _contents(s)[3] == "edited" and len(_contents(s)) == 10
    s.restore_checkpoint(4)
    assert _contents(s) == at_20
    s.restore_checkpoint(2)
    assert _contents(s) == at_20[:20]
    assert storage_usage("big", "alice") == storage_usage("big", "alice")  # reading changes nothing
    biggest = list_sessions(user_id="alice", sort="size")
    assert [r.session_id for r in biggest] == ["big", "small"]
    assert biggest[0].bytes_stored > biggest[1].bytes_stored > 0


@pytest.mark.parametrize("start", ["sqlite"], indirect=True)  # the backends' sums are covered above
def test_the_http_api_reports_bytes_stored_and_lists_by_size(start):
    start()
    ring, admin = Keyring({"k1": "s" * 40}), "a" * 32
    handle = serve_in_thread(ServerConfig(port=0, secret_keys=ring, admin_key=admin))
    try:
        for sid, turns in (("wide", 6), ("narrow", 1)):
            remote = Session(agent_url=handle.url, session_id=sid, token=tokens.issue(sid, "bob", secret=ring))
            for t in range(turns):
                remote.chat(f"turn {t} " + "z" * 300)
            remote.create_checkpoint()
        auth = {"Authorization": f"Bearer {tokens.issue('wide', 'bob', secret=ring)}"}
        info = httpx.get(f"{handle.url}/sessions/wide", headers=auth, timeout=30).json()
        stored = info["bytes_stored"]
        assert stored["messages"] > 6 * 300 and 0 < stored["checkpoints"] < stored["messages"]
        assert stored["total"] == sum(stored[k] for k in ("messages", "checkpoints", "memory", "meta"))
        listed = httpx.get(f"{handle.url}/sessions", params={"user_id": "bob", "sort": "size"},
                           headers={"Authorization": f"Bearer {admin}"}, timeout=30).json()
        assert [r["session_id"] for r in listed] == ["wide", "narrow"]
        assert listed[0]["bytes_stored"] > listed[1]["bytes_stored"]
    finally:
        handle.stop()


FIXTURE = Path(__file__).parents[1] / "fixtures" / "checkpoints_before_linear_storage.db"


@pytest.mark.parametrize("start", ["sqlite"], indirect=True)
def test_checkpoints_written_before_linear_storage_keep_loading(start, tmp_path):
    """The fixture was written by the release before linear storage (commit 40f04c4, local
    runtime): session u1/old, 6 turns with checkpoint_every=2 (c1..c3), version 0 after turn 6,
    then edit_message(1, "edited reply") (c4, "before edit"). Its checkpoints are full copies."""
    shutil.copy(FIXTURE, tmp_path / "state.db")
    start()
    s = Session("old", agent=NULL, user_id="u1")
    original = [c for t in range(6) for c in (f"turn {t}", "[null model] ok")]
    assert _contents(s) == [original[0], "edited reply", *original[2:]]
    assert _formats(start.url, "u1/old") == [1] * 5
    s.truncate(6)  # copy-on-write leaves the full copies alone; c5 is linear
    assert _formats(start.url, "u1/old") == [1] * 5 + [2, 2]  # c5 and the segment it references
    s.restore_checkpoint(2)
    assert _contents(s) == original[:8]
    assert s.restore_version(0)
    assert _contents(s) == original
    s.restore_checkpoint(5)  # the linear one, before the truncate
    assert _contents(s) == [original[0], "edited reply", *original[2:]]
    start()  # and after a restart
    s = Session("old", agent=NULL, user_id="u1")
    s.restore_checkpoint(1)
    assert _contents(s) == original[:4]
