"""RepertorySaver beyond the conformance suite: a real graph interrupted in one process and
resumed in another, TTL, read-back from a fresh saver, pickle refused, and its data invisible
to repertory's own session listing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("langgraph")

from langgraph.checkpoint.base import empty_checkpoint  # noqa: E402
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer  # noqa: E402

import repertory  # noqa: E402
from redis_server import TEST_DB_URL, drop_redis_keys  # noqa: E402
from repertory.errors import CorruptState, InvalidInput  # noqa: E402
from repertory.interop.langgraph import RepertorySaver  # noqa: E402

GRAPH = Path(__file__).parents[1] / "interop_graph.py"


def _run(url: str, thread: str, mode: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(GRAPH), url, thread, mode], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_graph_interrupted_in_one_process_resumes_in_another(url):
    stopped = _run(url, "t-1", "start")
    assert stopped["next"] == ["approve"] and stopped["interrupt"]["question"] == "go ahead?"
    first_pid = stopped["interrupt"]["steps"][1].split()[-1]
    resumed = _run(url, "t-1", "resume")
    steps = resumed["state"]["steps"]
    assert resumed["next"] == [] and resumed["state"]["answer"] == "yes"
    assert steps[:2] == ["input", f"plan by pid {first_pid}"] and steps[2].startswith("act (yes)")
    assert steps[2].split()[-1] != first_pid  # really another process


def _config(thread: str, parent: str | None = None) -> dict:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": "", **({"checkpoint_id": parent} if parent else {})}}


def _put(saver: RepertorySaver, thread: str, value: object, parent: str | None = None) -> dict:
    cp = empty_checkpoint()
    cp["channel_values"] = {"value": value}
    return saver.put(_config(thread, parent), cp, {"source": "loop", "step": 1}, {})


def test_a_fresh_saver_reads_everything_back(url):
    with RepertorySaver(url) as a:
        saved = _put(a, "t", {"text": "héllo", "n": [1, 2.5, None]})
        a.put_writes(saved, [("value", "pending")], "task-1")
    with RepertorySaver(url) as b:
        tup = b.get_tuple(_config("t"))
        assert tup.checkpoint["channel_values"]["value"] == {"text": "héllo", "n": [1, 2.5, None]}
        assert tup.metadata["source"] == "loop" and tup.pending_writes == [("task-1", "value", "pending")]
        assert [t.config["configurable"]["checkpoint_id"] for t in b.list(None)] == \
            [saved["configurable"]["checkpoint_id"]]


def test_ttl_expires_a_thread_and_a_new_write_starts_it_afresh(url):
    with RepertorySaver(url, ttl=0.3) as saver:
        first = _put(saver, "t", 1)
        assert saver.get_tuple(_config("t")) is not None
        time.sleep(0.6)
        assert saver.get_tuple(_config("t")) is None and list(saver.list(_config("t"))) == []
        _put(saver, "t", 2)
        assert [t.checkpoint["channel_values"]["value"] for t in saver.list(_config("t"))] == [2]
        assert saver.get_tuple(_config("t", first["configurable"]["checkpoint_id"])) is None
        time.sleep(0.6)
        if url.startswith("sqlite"):
            assert saver.sweep_expired() == 1


def test_reads_refresh_the_ttl(url):
    with RepertorySaver(url, ttl=1.0) as saver:
        _put(saver, "t", 1)
        for _ in range(4):  # 1.6 s in all: alive only because reads refresh it
            time.sleep(0.4)
            assert saver.get_tuple(_config("t")) is not None
    with RepertorySaver(url, ttl=1.0, refresh_on_read=False) as saver:
        _put(saver, "u", 1)
        time.sleep(0.6)
        assert saver.get_tuple(_config("u")) is not None
        time.sleep(0.6)
        assert saver.get_tuple(_config("u")) is None


def test_pickle_is_never_written_nor_loaded(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with pytest.raises(InvalidInput, match="pickle"):
        RepertorySaver(url, serde=JsonPlusSerializer(pickle_fallback=True))
    with RepertorySaver(url) as saver:
        saved = _put(saver, "t", 1)
        saver.store.write(lambda conn: conn.execute("UPDATE lg_checkpoints SET type = 'pickle'"))
        with pytest.raises(CorruptState, match="pickle"):
            saver.get_tuple(saved)


def test_threads_are_not_sessions(tmp_path, monkeypatch):
    """Saver and session on the runtime's own store (store=None): repertory's listing, export
    and cleanup do not see them."""
    agents = pytest.importorskip("repertory.interop.openai_agents")
    repertory.init(runtime="local", store=f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with RepertorySaver() as saver:
            assert saver.store.url == f"sqlite:///{tmp_path / 'state.db'}"
            _put(saver, "thread-1", 1)
        session = agents.RepertorySession("agents-1")
        asyncio.run(session.add_items([{"role": "user", "content": "hi"}]))
        session.close()
        repertory.Session(session_id="real").chat("hello")
        assert [s.session_id for s in repertory.list_sessions()] == ["real"]
        assert [s.session_id for s in repertory.cleanup(older_than=0, dry_run=True)] == ["real"]
    finally:
        repertory.shutdown()


def test_redis_keys_put_a_thread_in_one_slot_under_the_prefix():
    import redis
    from redis.crc import key_slot

    prefix = f"rptest-{uuid.uuid4().hex}"
    try:
        with RepertorySaver(f"{TEST_DB_URL}?prefix={prefix}") as saver:
            saved = _put(saver, "a{b}c", 1)
            saver.put_writes(saved, [("value", 2)], "task")
            raw = redis.Redis.from_url(TEST_DB_URL)
            names = [n.decode() for n in raw.scan_iter(match=f"{prefix}:*")]
            assert len(names) == 5 and all(n.startswith(f"{prefix}:{{~lg/a%7Bb%7Dc}}:") for n in names)
            assert len({key_slot(n.encode()) for n in names}) == 1
            assert [t.config["configurable"]["thread_id"] for t in saver.list(None)] == ["a{b}c"]
            saver.delete_thread("a{b}c")
            assert not list(raw.scan_iter(match=f"{prefix}:*"))
    finally:
        asyncio.run(drop_redis_keys(prefix))


def test_an_unreachable_redis_is_a_typed_error_both_ways():
    from repertory.errors import StoreUnavailable

    with RepertorySaver("redis://127.0.0.1:1/0") as saver:
        with pytest.raises(StoreUnavailable, match="did not answer"):
            saver.get_tuple(_config("t"))
        with pytest.raises(StoreUnavailable, match="did not answer"):
            asyncio.run(saver.aget_tuple(_config("t")))


def test_threads_of_many_callers_at_once(url):
    """Sync callers on many threads (as a server running graphs would): each reads and writes
    through connections of its own; nothing is lost or mixed up."""
    from concurrent.futures import ThreadPoolExecutor

    with RepertorySaver(url) as saver:
        def work(i: int) -> list[int]:
            parent = None
            for n in range(15):
                parent = _put(saver, f"t{i}", n, parent)["configurable"]["checkpoint_id"]
                assert saver.get_tuple(_config(f"t{i}")).checkpoint["channel_values"]["value"] == n
            return [t.checkpoint["channel_values"]["value"] for t in saver.list(_config(f"t{i}"))]

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(work, range(8)))
    assert results == [list(range(14, -1, -1))] * 8
