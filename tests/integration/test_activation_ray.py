"""Single activation on Ray while two drivers disagree on the host set (issue 11 item 2): one
driver routes over one host, the other over two, on one store and namespace, so the sessions
of host 1 are asked of host 0 and host 1 at once. One host activates each session and the
other sends its calls on to it (SessionElsewhere, followed by the runtime): every turn (sent
whole or streamed) is answered once, no model call is repeated, and the histories are exact."""

from __future__ import annotations

import asyncio
import dataclasses
import os

import pytest

from repertory import Agent, Session
from repertory.config import Settings
from repertory.host.routing import host_index
from repertory.ids import SessionRef
from repertory.runtimes.ray import RayRuntime

pytestmark = pytest.mark.ray


def test_two_drivers_with_different_host_counts_activate_each_session_once(ray_cluster, tmp_path):
    settings = Settings(store=f"sqlite:///{tmp_path / 'state.db'}", namespace=f"act-{os.getpid()}-{tmp_path.name}"[:60],
                        num_hosts=1)
    one = RayRuntime(settings)
    two = RayRuntime(dataclasses.replace(settings, num_hosts=2))
    agent = Agent("Echo", model="repertory/demo")
    ids = [f"race{i}" for i in range(40) if host_index(SessionRef(f"race{i}").key, 2) == 1][:6]
    turns = 8
    try:
        async def streamed(s: Session, message: str) -> str:
            return "".join([chunk async for chunk in s.astream(message)])

        async def race() -> None:
            calls = []
            for sid in ids:
                for rt, name in ((one, "one"), (two, "two")):
                    s = Session(sid, agent=agent, runtime=rt)
                    calls += [s.achat(f"{sid} {name} {k}") for k in range(turns - 2)]
                    calls += [streamed(s, f"{sid} {name} {k}") for k in range(turns - 2, turns)]
            await asyncio.gather(*calls)

        asyncio.run(race())
        stats = {st["host"]: st for st in two.stats()}
        assert set(stats) == {"host-0", "host-1"}
        assert sum(st["activations"] for st in stats.values()) == len(ids)  # one activation each
        assert sum(st["cas_retries"] + st["repeated_model_calls"] for st in stats.values()) == 0
        for sid in ids:
            history = Session(sid, agent=agent, runtime=one).get_history()
            sent = sorted(f"{sid} {name} {k}" for name in ("one", "two") for k in range(turns))
            assert sorted(m["content"] for m in history[0::2]) == sent  # every turn once
            assert [m["role"] for m in history] == ["user", "assistant"] * (2 * turns)
    finally:
        two.shutdown()
        one.shutdown()
