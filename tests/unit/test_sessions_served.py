"""A host that serves many sessions holds no more than its resident cap (issue 12, item 3).

Sizes, not time: 3,000 distinct stored sessions pass through one HostCore with a cap of 20;
every container the host, its counters, its Prometheus metrics, its store and its agent pool
hold stays bounded by the cap, and the metrics' series do not grow with the sessions served.
"""

import uuid

from prometheus_client import CollectorRegistry

from repertory.agents.agent import Agent
from repertory.bench.served import store_sessions, host_structure_sizes
from repertory.config import Settings
from repertory.host.api import TurnRequest
from repertory.host.core import HostCore
from repertory.host.metrics import PrometheusMetrics
from repertory.ids import SessionRef
from repertory.runtimes.local import LocalAgentPool
from repertory.stores import SQLiteStore

CAP = 20
SESSIONS = 3000


def _series(registry: CollectorRegistry) -> int:
    return sum(len(family.samples) for family in registry.collect())


async def test_serving_many_sessions_keeps_the_host_within_its_cap(tmp_path):
    db = tmp_path / "served.db"
    store = SQLiteStore(db)
    agent = Agent("Served", model="repertory/null")
    pool = LocalAgentPool()
    pool.add(agent)
    registry = CollectorRegistry()
    host = HostCore(store, pool, Settings(store=f"sqlite:///{db}", max_resident=CAP, idle_timeout=0),
                    metrics=PrometheusMetrics("host-0", registry))
    keys = [f"served-{i:05d}" for i in range(SESSIONS)]
    await store_sessions(store, keys)

    early: dict[str, int] = {}
    series_early = 0
    for i, key in enumerate(keys):
        ref = SessionRef(key)
        reply = await host.turn(TurnRequest(ref=ref, agent_key=agent.key, content=f"turn of {key}",
                                            turn_id=uuid.uuid4().hex))
        assert reply.n_messages == 4  # a stored session was activated, not a new one created
        if i % 7 == 0:
            assert len(await host.get_history(ref)) == 4
        assert len(host._slots) <= CAP
        if i == 200:
            early, series_early = host_structure_sizes(host), _series(registry)

    late = host_structure_sizes(host)
    assert host.activations >= SESSIONS and host.passivations >= SESSIONS - CAP
    assert all(n <= max(CAP, 60) for n in late.values()), late  # 60: the latency ring's fixed windows
    assert late == early  # nothing grew between 200 and 3,000 sessions served
    assert _series(registry) == series_early
    await host.close()
    await store.close()
