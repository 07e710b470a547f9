"""The inspector's operations on the default Ray runtime over SQLite and Redis: what it lists and
what it writes (restore, fork, approval) read back through a new runtime on the same store, and
Runtime.astats() gathers every host's counters."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

import repertory
from contract_helpers import STORES, make_store
from repertory import Session, Task, Workflow
from repertory.server.auth import Viewer
from repertory.server.inspector import Inspector
from repertory.server.session_query import SessionQuery

pytestmark = pytest.mark.ray

ADMIN = Viewer(True, None, "admin")
ERIN = Viewer(False, "erin", "tok:e")


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    return make_store(request, tmp_path)


def test_inspector_writes_read_back_after_a_restart_on_ray(store, ray_cluster):
    namespace = f"insp{os.getpid()}-{uuid.uuid4().hex[:8]}"
    insp = Inspector()
    tasks = [Task("plan", name="plan"), Task("ship", name="ship", depends_on=["plan"], requires_approval=True)]
    rt = repertory.init(store=store.url, num_hosts=2, namespace=namespace)
    try:
        s = Session("insp-1", user_id="erin")
        s.chat("first")
        cp = s.create_checkpoint("one")
        s.chat("second")
        asyncio.run(insp.restore(ERIN, "insp-1", None, cp, "checkpoint", None))
        # (after the restore: a restore brings back the checkpoint's metadata, workflows included)
        assert Workflow(tasks, session=s, name="wf").run().status == "awaiting_approval"
        fork = asyncio.run(insp.fork(ERIN, "insp-1", None, "insp-1-fork", None))
        asyncio.run(insp.decide(ERIN, "insp-1", None, "wf", "ship", False, "not yet"))
        hosts = asyncio.run(rt.astats())
        assert sorted(h.host for h in hosts) == ["host-0", "host-1"]
        assert sum(h.turns for h in hosts) == 2 and sum(h.activations for h in hosts) >= 1
        assert any(h.turn_p50 is not None and h.series for h in hosts)
    finally:
        repertory.shutdown()
    repertory.init(store=store.url, num_hosts=2, namespace=namespace)
    try:
        listed = asyncio.run(insp.list_sessions(ERIN, SessionQuery()))
        assert sorted(r.session_id for r in listed.rows) == ["insp-1", fork] and listed.total == 2
        assert all(r.host.startswith("host-") and r.turns is not None for r in listed.rows)
        detail = asyncio.run(insp.session(ADMIN, "insp-1", "erin"))
        assert [m["content"] for m in detail["state"]["history"] if m["role"] == "user"] == ["first"]
        assert [f["session_id"] for f in detail["forks"]] == [fork]
        ship = detail["workflows"]["wf"]["tasks"]["ship"]
        assert (ship["status"], ship["note"]) == ("rejected", "not yet")
        assert asyncio.run(insp.session(ERIN, fork, None))["forked_from"] == "insp-1"
    finally:
        repertory.shutdown()
