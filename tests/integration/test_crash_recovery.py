"""Hosts and the StoreActor killed with SIGKILL mid-stream: every acknowledged turn survives."""

import os
import signal
import threading
import time

import pytest
import ray

import repertory
from repertory import Agent, Session
from repertory.host.routing import host_index

pytestmark = pytest.mark.ray


def _run_turns(session, n, acked):
    for i in range(n):
        session.chat(f"turn {i}")
        acked.append(i)


def _progressed(worker, acked, since, turns=20, timeout=120.0):
    """Wait until ``turns`` more turns are acknowledged than ``since`` (or the worker ends), so
    that each kill lands mid-stream, after the restarted actor took turns again."""
    deadline = time.monotonic() + timeout
    while worker.is_alive() and len(acked) < since + turns:
        assert time.monotonic() < deadline, f"no progress in {timeout}s ({len(acked)} turns acknowledged)"
        time.sleep(0.01)
    return worker.is_alive()


def _check(session, acked):
    users = [m["content"] for m in session.get_history() if m["role"] == "user"]
    # every acknowledged turn is there, once, in order; nothing else is
    assert users == [f"turn {i}" for i in acked]


def test_host_sigkill_during_1000_turns(runtime):
    s = Session(session_id="crashy", agent=Agent("Null", model="repertory/null"))
    acked: list[int] = []
    worker = threading.Thread(target=_run_turns, args=(s, 1000, acked))
    worker.start()
    idx = host_index("crashy", runtime.num_hosts)
    kills = 0
    while kills < 4 and _progressed(worker, acked, len(acked)):
        pid = {st["host"]: st["pid"] for st in runtime.stats()}[f"host-{idx}"]
        os.kill(pid, signal.SIGKILL)
        kills += 1
    worker.join(timeout=240)
    assert not worker.is_alive() and kills >= 2
    assert len(acked) == 1000
    _check(s, acked)


def test_store_actor_sigkill_mid_stream(ray_cluster, tmp_path):
    rt = repertory.init(store=f"sqlite:///{tmp_path / 'state.db'}", num_hosts=2, store_access="actor",
                        namespace=f"storekill-{os.getpid()}")
    try:
        s = Session(session_id="via-store-actor", agent=Agent("Null", model="repertory/null"))
        acked: list[int] = []
        worker = threading.Thread(target=_run_turns, args=(s, 300, acked))
        worker.start()
        kills = 0
        store = ray.get_actor(rt.names.store(), namespace=rt.settings.namespace)
        while kills < 3 and _progressed(worker, acked, len(acked)):
            try:
                pid = ray.get(store.__ray_call__.remote(lambda self: os.getpid()), timeout=30)
            except (ray.exceptions.ActorUnavailableError, ray.exceptions.ActorDiedError):
                continue  # still restarting from the last kill
            os.kill(pid, signal.SIGKILL)
            kills += 1
        worker.join(timeout=240)
        assert not worker.is_alive() and len(acked) == 300 and kills >= 1
        _check(s, acked)
    finally:
        repertory.shutdown()
