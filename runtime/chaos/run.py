"""A chaos run: clients drive turns and state operations while the seeded schedule injects faults;
afterwards every session is read back through a fresh runtime and checked against the log.

Clients are asyncio tasks, each owning some sessions (one writer per session, so the order of
its acknowledgements is the order its turns must be stored in). A turn carries a client-made
``turn_id`` and a unique text; a state operation appends its own op id to
``metadata["chaos_ops"]`` under that op id. On any error the client resends the same id until
it is acknowledged or ``give_up_after`` passes: the exactly-once ids make a resend safe, and
the checker finds out if they do not.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from repertory.chaos.checker import Anomaly, StoredSession, check, recovery_times
from repertory.chaos.faults import REDIS_KINDS, Fault, FaultInjector, schedule
from repertory.chaos.log import AckLog, FaultRecord, read_log
from repertory.chaos.nodes import RayNodes
from repertory.chaos.redis_cluster import start_cluster
from repertory.chaos.redis_server import PrivateRedis
from repertory.errors import InvalidInput

__all__ = ["ChaosConfig", "ChaosReport", "run_chaos"]

log = structlog.get_logger(__name__)

OPS_FIELD = "chaos_ops"  # the metadata list each state operation appends its op id to


@dataclass(slots=True)
class ChaosConfig:
    seed: int = 1
    duration: float = 60.0  # seconds of load; faults stop `quiet_tail` before the end
    sessions: int = 8
    clients: int = 4
    faults: tuple[str, ...] = ("host", "replica", "store-actor")
    store: str | None = None  # default: a SQLite file in workdir (a private Redis with redis-restart)
    workdir: Path | None = None  # the log, the SQLite file, the private Redis's data; default: a temp dir
    every: float = 5.0  # about one fault per this many seconds
    quiet_tail: float = 5.0
    op_share: float = 0.3  # the share of state operations among the clients' steps
    give_up_after: float = 90.0  # a client stops resending one turn after this long
    num_hosts: int = 2
    replicas: int = 2
    namespace: str | None = None


@dataclass(slots=True)
class ChaosReport:
    config: ChaosConfig
    log_path: Path
    store: str
    turns: int = 0  # acknowledged
    ops: int = 0  # acknowledged
    unacknowledged: int = 0  # given up after give_up_after
    errors: Counter[str] = field(default_factory=Counter)  # errors clients saw (and retried), by type
    faults: list[tuple[FaultRecord, float | None]] = field(default_factory=list)  # with recovery seconds
    failed_faults: list[str] = field(default_factory=list)  # scheduled but could not be injected
    anomalies: list[Anomaly] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.anomalies

    def faults_by_kind(self) -> dict[str, int]:
        return dict(Counter(f.kind for f, _ in self.faults))

    def figures(self) -> dict:
        """The run's figures as plain data (``repertory chaos --json``)."""
        return {
            "seed": self.config.seed, "duration": self.config.duration, "seconds": round(self.seconds, 2),
            "store": self.store, "log": str(self.log_path), "turns": self.turns, "ops": self.ops,
            "unacknowledged": self.unacknowledged, "errors": dict(self.errors),
            "faults_by_kind": self.faults_by_kind(), "failed_faults": list(self.failed_faults),
            "faults": [{"kind": f.kind, "target": f.target, "at": f.at,
                        "recovery_s": None if t is None else round(t, 3)} for f, t in self.faults],
            "anomalies": [{"kind": a.kind, "session": a.session, "detail": a.detail} for a in self.anomalies],
            "ok": self.ok,
        }


class _Client:
    def __init__(self, name: str, sessions: list, rng: random.Random, acks: AckLog, report: ChaosReport,
                 config: ChaosConfig) -> None:
        self.name, self.sessions, self.rng, self.acks = name, sessions, rng, acks
        self.report, self.config = report, config
        self.started: set[str] = set()  # sessions with an acknowledged turn: they exist in the store
        self.n = 0

    async def _until_acked(self, what: str, call):
        deadline = time.monotonic() + self.config.give_up_after
        delay = 0.05
        while True:
            try:
                return await call()
            except Exception as exc:  # noqa: BLE001 - any failure is retried with the same id
                self.report.errors[type(exc).__name__] += 1
                log.debug("chaos.retry", client=self.name, what=what, error=repr(exc)[:200])
                if time.monotonic() > deadline:
                    self.report.unacknowledged += 1
                    log.warning("chaos.gave_up", client=self.name, what=what, error=repr(exc)[:200])
                    return None
                await asyncio.sleep(delay)  # back-off before the resend, not a synchronisation
                delay = min(delay * 2, 1.0)

    async def turn(self, session) -> None:
        sid = session.session_id
        turn_id = f"{self.name}-t{self.n}"
        message = f"{turn_id} on {sid}: note {self.rng.randrange(10**6)}"
        self.acks.sent(self.name, sid, turn_id, message)
        reply = await self._until_acked(turn_id, lambda: session.achat(message, turn_id=turn_id))
        if reply is not None:
            self.acks.turn(self.name, sid, turn_id, message, reply, ack=time.time())
            self.report.turns += 1
            self.started.add(sid)

    async def op(self, session) -> None:
        sid = session.session_id
        op_id = f"{self.name}-o{self.n}"
        self.acks.op_sent(self.name, sid, op_id)
        rt = session.runtime
        done = await self._until_acked(op_id, lambda: rt.update_item(session.ref, "metadata", OPS_FIELD, op_id,
                                                                     "append", op_id=op_id))
        if done is not None:
            self.acks.op(self.name, sid, op_id, ack=time.time())
            self.report.ops += 1

    async def warm_up(self) -> None:
        """One turn on each of its sessions: hosts and replicas start before the clock does."""
        for session in self.sessions:
            self.n += 1
            await self.turn(session)

    async def run(self, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            self.n += 1
            session = self.rng.choice(self.sessions)
            if session.session_id in self.started and self.rng.random() < self.config.op_share:
                await self.op(session)
            else:
                await self.turn(session)


async def _inject_all(plan: list[Fault], injector: FaultInjector, acks: AckLog, report: ChaosReport,
                      start: float) -> None:
    for fault in plan:
        await asyncio.sleep(max(0.0, start + fault.at - time.monotonic()))  # the schedule's clock
        try:
            target, hit = await injector.inject(fault)
        except Exception as exc:  # noqa: BLE001 - a fault that cannot be injected is reported, not fatal
            report.failed_faults.append(f"{fault.kind} at {fault.at}s: {exc!r}"[:300])
            log.warning("chaos.fault_failed", kind=fault.kind, error=repr(exc)[:200])
            continue
        # timed from when it struck, not from when the injector returned (a node fault returns
        # once the fresh node has joined, a Redis kill once the node rejoined as a replica)
        acks.fault(fault.kind, target, at=injector.landed_at, sessions=hit)
        log.info("chaos.fault", kind=fault.kind, target=target)


async def _drive(config: ChaosConfig, sessions: list, injector: FaultInjector, acks: AckLog,
                 report: ChaosReport) -> None:
    plan = schedule(config.seed, config.duration, config.faults, every=config.every, quiet_tail=config.quiet_tail)
    clients = [_Client(f"c{c}", sessions[c::config.clients], random.Random(f"{config.seed}-{c}"), acks, report, config)
               for c in range(min(config.clients, len(sessions)))]
    # Actor start-up takes seconds on a loaded machine; the run's duration is load under faults.
    await asyncio.gather(*(c.warm_up() for c in clients))
    start = time.monotonic()
    await asyncio.gather(_inject_all(plan, injector, acks, report, start),
                         *(c.run(start + config.duration) for c in clients))


def _read_back(store: str, namespace: str, session_ids: list[str]) -> dict[str, StoredSession]:
    import repertory
    from repertory.session.handle import Session

    repertory.init(store=store, namespace=namespace)
    try:
        stored = {}
        for sid in session_ids:
            s = Session(session_id=sid)  # no agent: reading starts no agent actors
            if s.exists():
                stored[sid] = StoredSession(s.get_history(), list(s.metadata.get(OPS_FIELD, [])))
        return stored
    finally:
        repertory.shutdown()


def _stop_nodes(nodes: RayNodes | None) -> None:
    if nodes is not None:
        import ray

        ray.shutdown()
        nodes.shutdown()


def run_chaos(config: ChaosConfig) -> ChaosReport:
    """Run the load and the faults for ``config.duration``, then check every session.

    Starts its own runtime (the default Ray runtime) and shuts it down; call it with none running."""
    import repertory
    from repertory._sync import run_sync
    from repertory.agents.agent import Agent
    from repertory.session.handle import Session

    if config.sessions < 1 or config.clients < 1 or config.duration <= 0:
        raise InvalidInput("a chaos run needs --sessions >= 1, --clients >= 1 and a positive --duration")
    workdir = Path(config.workdir or tempfile.mkdtemp(prefix="repertory-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    redis = cluster = nodes = None
    own = [k for k in config.faults if k in REDIS_KINDS]
    if own and config.store is not None:
        raise InvalidInput(f"the {own[0]} fault runs the store on its own private Redis; leave out --store")
    if "redis-restart" in config.faults:
        redis = PrivateRedis(workdir / "redis")
        redis.start()
    if "redis-failover" in config.faults:
        cluster = start_cluster(workdir / "redis-cluster")
    if redis is not None:
        store = f"{redis.url}?prefix=chaos{config.seed}"
    elif cluster is not None:
        # WAIT for one replica: an acknowledged commit survives its master's death
        store = cluster.url(f"chaos{config.seed}", wait=1, wait_timeout=500)
    else:
        store = config.store or f"sqlite:///{workdir / 'state.db'}"
    namespace = config.namespace or f"chaos-{config.seed}-{os.getpid()}"
    log_path = workdir / "acks.jsonl"
    report = ChaosReport(config, log_path, store)
    began = time.monotonic()
    try:
        settings: dict = {"store_access": "actor"} if "store-actor" in config.faults else {}
        if "node" in config.faults:
            nodes = RayNodes()
            settings["address"] = nodes.address
            settings["num_hosts"] = 1 + len(nodes.workers)  # a host per node: a removed node takes hosts along
        rt = repertory.init(store=store, namespace=namespace, **{"num_hosts": config.num_hosts, **settings})
        # a replica on every node: one on the head survives any number of node faults (a replica
        # whose node left is not started again; its calls go to the others)
        replicas = 1 + len(nodes.workers) if nodes is not None else config.replicas
        agent = Agent("Chaos", model="repertory/demo", replicas=replicas)
        session_ids = [f"chaos-{config.seed}-{k}" for k in range(config.sessions)]
        acks = AckLog(log_path)
        try:
            sessions = [Session(session_id=sid, agent=agent) for sid in session_ids]
            injector = FaultInjector(rt, agent, session_ids, redis, cluster, nodes)
            run_sync(_drive, config, sessions, injector, acks, report)
        finally:
            acks.close()
            repertory.shutdown()
            _stop_nodes(nodes)  # the read-back runs on a fresh private Ray, not on these nodes
            nodes = None
        stored = _read_back(store, namespace, session_ids)
    finally:
        if redis is not None:
            redis.stop()
        if cluster is not None:
            cluster.stop()
        _stop_nodes(nodes)
    records = read_log(log_path)
    report.anomalies = check(records, stored)
    report.faults = recovery_times(records)
    report.seconds = time.monotonic() - began
    log.info("chaos.done", turns=report.turns, ops=report.ops, faults=len(report.faults),
             anomalies=len(report.anomalies))
    return report
