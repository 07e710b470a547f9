"""Linear checkpoint storage and bytes-per-session reporting on the default runtime (Ray):
checkpoints reference the stored history, edits and restores copy on write, everything reads
back after a restart, and the listing finds the biggest session by size."""

import asyncio
import os
import uuid

import pytest

import repertory
from repertory import Agent, Session
from repertory.admin import list_sessions, storage_usage
from repertory.stores.codec import MsgpackCodec
from repertory.stores.factory import open_store

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
