"""How a host reaches AgentActors: by name, round robin, replacing dead replicas."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import ray
import structlog
from ray.exceptions import ActorDiedError, ActorUnavailableError, ActorUnschedulableError, RayTaskError

from repertory.agents.agent import Agent, Step, TurnOutput
from repertory.errors import AgentError, AgentReplicaLost, PromptUnknown
from repertory.host import wire
from repertory.host.envelope import Coalescer, decode_outcomes
from repertory.logs import get_logger
from repertory.state.prompt import Prompt

from .names import ActorNames
from .calls import iterate_streaming, unwrap_ray_error

__all__ = ["RayAgentPool", "log_context"]

T = TypeVar("T")
log = get_logger("repertory.agents")

# A replica that died, is restarting, or can never restart (its node left the cluster, and it
# was pinned to that node): the next replica takes the call.
class _ReplicaGone(Exception):
    """A replica's name no longer resolves when its (queued) call is sent."""


_GONE = (ActorDiedError, ActorUnavailableError, ActorUnschedulableError, _ReplicaGone)


_CARRIED = ("session", "turn_id", "request_id", "agent")  # what the replica's log lines of a call carry


def log_context() -> dict[str, Any]:
    """The caller's ids for the replica's log lines of this call (a failing tool, say), which
    are written in another process: the session, turn, request and agent bound here."""
    bound = structlog.contextvars.get_contextvars()
    return {k: bound[k] for k in _CARRIED if bound.get(k) is not None}


class _Misses:
    """Prompts sent to each replica as what it lacked, and how many it no longer held. While
    most of them miss (the replica's prompt cache holds fewer sessions than are active there),
    each miss costs a round trip more than a whole prompt would: prompts go whole, and one in
    PROBE_EVERY still tries. Recent sends weigh most (halved every WINDOW)."""

    LEARN, WINDOW, PROBE_EVERY = 8, 64, 8

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}  # replica -> [deltas sent, missed, sent whole since]
        self._whole: set[str] = set()  # replicas sent whole prompts now
        self.resends = 0  # prompts a replica no longer held, sent again whole (HostStats.prompt_resends)

    def whole(self, replica: str) -> bool:
        """Whether to send this replica the whole prompt although it received its lineage."""
        c = self._counts.get(replica)
        if c is None or c[0] < self.LEARN or 2 * c[1] <= c[0]:
            self._whole.discard(replica)
            return False
        if replica not in self._whole:
            self._whole.add(replica)
            log.warning("prompt_cache_too_small", replica=replica, missed=c[1], of=c[0],
                        hint="more long sessions are active on this agent replica than it keeps: whole prompts "
                             "are sent to it now; raise prompt_cache_bytes (repertory.init) or add replicas")
        c[2] += 1
        return c[2] % self.PROBE_EVERY != 0

    def sent(self, replica: str, missed: bool) -> None:
        c = self._counts.setdefault(replica, [0, 0, 0])
        self.resends += missed
        c[0] += 1
        c[1] += missed
        if c[0] >= self.WINDOW:
            c[0], c[1] = c[0] // 2, c[1] // 2


def _prompt_unknown(exc: BaseException) -> bool:
    """Whether a replica answered that it no longer holds what a prompt extends."""
    return isinstance(unwrap_ray_error(exc) if isinstance(exc, RayTaskError) else exc, PromptUnknown)


def _extends(prompt: Any) -> bool:
    """Whether ``prompt`` (as sent) was only what the replica lacked of a lineage."""
    return isinstance(prompt, dict) and prompt["base"] > 0


class RayAgentPool:
    """Looks up agent replicas by name and spreads calls over them."""

    def __init__(self, names: ActorNames, *, lineages: bool = True) -> None:
        self.names = names
        self._lineages = lineages  # send what a replica lacks of a prompt (Settings.prompt_cache_bytes)
        self._misses = _Misses()
        self._handles: dict[str, object] = {}
        self._next: dict[str, int] = {}
        # Concurrent calls to one replica travel as one envelope (repertory.host.envelope); each
        # carries an id, so that a cancelled caller can stop its own call on the replica.
        self._calls: Coalescer[tuple[str, int], tuple[str, bytes], bytes] = Coalescer(
            self._run_one, self._run_many, abandon=self._abandon)

    def _replica(self, replica: tuple[str, int]):
        try:
            return self._handle(*replica)[1]
        except AgentError as exc:
            raise _ReplicaGone(str(exc)) from exc

    async def _run_one(self, replica: tuple[str, int], call: tuple[str, bytes]) -> bytes:
        ref = self._replica(replica).run.remote(call[1])
        try:
            return await ref
        except asyncio.CancelledError:  # a busy policy cancelled the turn: stop the model call too
            ray.cancel(ref)
            raise

    async def _run_many(self, replica: tuple[str, int], calls: list[tuple[str, bytes]]) -> list[bytes | BaseException]:
        return decode_outcomes(await self._replica(replica).run_many.remote(wire.encode(calls)))

    def _abandon(self, replica: tuple[str, int], call: tuple[str, bytes]) -> None:
        try:  # fire and forget: the cancelled caller does not wait, and a dead replica has no call
            self._replica(replica).cancel.remote(wire.encode([call[0]]))
        except _ReplicaGone:
            pass

    @property
    def prompt_resends(self) -> int:
        """Prompts a replica no longer held, sent again whole (HostStats.prompt_resends)."""
        return self._misses.resends

    def _prompt_for(self, history: Prompt, replica: str, whole: bool = False) -> bytes | dict[str, Any]:
        """What to send ``replica`` of ``history``: what it lacks, unless it must go whole."""
        if not self._lineages:
            return history.blob()
        return history.for_replica(replica, whole=whole or (history.holds(replica) and self._misses.whole(replica)))

    def _missed(self, history: Prompt, replica: str) -> None:
        """``replica`` no longer held what a prompt of ``history`` extended: the next goes whole."""
        self._misses.sent(replica, True)
        history.forget(replica)

    def _delivered(self, history: Prompt, replica: str, prompt: Any) -> None:
        """``replica`` took ``prompt`` (as sent) of ``history``: it holds the lineage now."""
        if _extends(prompt):
            self._misses.sent(replica, False)
        history.delivered(replica)

    def _start(self, agent_key: str, replicas: int, history: Any = None) -> int:
        """The replica a call tries first: one that holds the prompt's lineage (it is sent only
        what it lacks), else round robin over calls."""
        if replicas > 1 and isinstance(history, Prompt):
            for i in range(replicas):
                if history.holds(self.names.agent(agent_key, i)):
                    return i
        i = self._next.get(agent_key, 0)
        self._next[agent_key] = (i + 1) % max(replicas, 1)
        return i

    def _handle(self, agent_key: str, index: int):
        name = self.names.agent(agent_key, index)
        h = self._handles.get(name)
        if h is None:
            try:
                h = ray.get_actor(name, namespace=self.names.namespace)
            except ValueError:
                raise AgentError(
                    f"agent {agent_key!r} has no actor {name!r}; create the Session (or call "
                    "runtime.ensure_agent) in a driver connected to this cluster first"
                ) from None
            self._handles[name] = h
        return name, h

    async def _on_a_replica(self, agent_key: str, replicas: int, start: int,
                            send: Callable[[int, Any], Awaitable[T]], failed: str) -> T:
        """``send(index, handle)`` on the first replica, from ``start``, that answers: every
        replica at least twice (one may be restarting), a replica gone for good skipped."""
        last: BaseException | None = None
        n = max(replicas, 1)
        for attempt in range(2 * n + 2):
            index = (start + attempt) % n
            try:
                name, h = self._handle(agent_key, index)
            except AgentError as exc:  # this replica is gone for good: try the others
                last = exc
                continue
            try:
                return await send(index, h)
            except RayTaskError as exc:
                raise unwrap_ray_error(exc) from None
            except _GONE as exc:
                # Ray restarts the replica; try the next one meanwhile.
                self._handles.pop(name, None)
                last = exc
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AgentError(f"no replica of agent {agent_key!r} {failed}: {last}")

    async def run(self, agent_key: str, replicas: int, history: bytes | list[dict] | Prompt, context: dict | None,
                  shared_state_id: str | None = None, memory: dict | None = None,
                  window: dict | None = None) -> TurnOutput:
        rest = [context, shared_state_id, memory, window, log_context()]
        call_id = uuid.uuid4().hex

        async def send(index: int, _: Any) -> TurnOutput:
            async def call(prompt: Any) -> bytes:
                return await self._calls.call((agent_key, index), (call_id, wire.encode([prompt, *rest])))

            if not isinstance(history, Prompt):
                return wire.decode(await call(history))
            name = self.names.agent(agent_key, index)
            prompt = self._prompt_for(history, name)
            try:
                out = await call(prompt)
            except (PromptUnknown, RayTaskError) as exc:
                if not _prompt_unknown(exc):
                    raise
                self._missed(history, name)
                prompt = history.for_replica(name, whole=True)
                out = await call(prompt)
            self._delivered(history, name, prompt)
            return wire.decode(out)

        return await self._on_a_replica(agent_key, replicas, self._start(agent_key, replicas, history), send,
                                        "answered")

    async def stream(self, agent_key: str, replicas: int, history: bytes | list[dict] | Prompt, context: dict | None,
                     shared_state_id: str | None = None, memory: dict | None = None,
                     window: dict | None = None, *, deltas: bool = True, steps: bool = False,
                     resume: list[dict] | None = None) -> AsyncIterator[str | Step | TurnOutput]:
        rest = [context, shared_state_id, memory, window, deltas, steps, resume, log_context()]
        last: BaseException | None = None
        n, start = max(replicas, 1), self._start(agent_key, replicas, history)
        attempt = whole = 0
        while attempt < 2 * n + 2:  # every replica at least twice (one may be restarting)
            try:
                name, h = self._handle(agent_key, (start + attempt) % n)
            except AgentError as exc:  # this replica is gone for good: try the others
                last, attempt = exc, attempt + 1
                continue
            prompt = self._prompt_for(history, name, bool(whole)) if isinstance(history, Prompt) else history
            # A journaled turn is never retried by Ray from its start (max_task_retries): that
            # would run its tools again. The host resumes it from the journal instead.
            options = {"max_task_retries": 0} if steps else {}
            gen = h.stream.options(num_returns="streaming", **options).remote(wire.encode([prompt, *rest]))
            started = False
            try:
                async for item in iterate_streaming(gen, lambda i: i if isinstance(i, str) else wire.decode(i)):
                    started = True
                    yield item
                if isinstance(history, Prompt):
                    self._delivered(history, name, prompt)
                return
            except (asyncio.CancelledError, GeneratorExit):  # the turn was cancelled or left: stop the model call
                ray.cancel(gen)
                raise
            except PromptUnknown:
                if started or whole or not isinstance(history, Prompt):
                    raise
                self._missed(history, name)
                whole = 1  # the same replica, sent the whole prompt
            except _GONE as exc:
                if started:  # what it yielded is out: the host resumes from the journal, or fails
                    raise AgentReplicaLost(f"agent {agent_key!r}: replica {name!r} died during a turn ({exc}); "
                                           "resend the turn with the same turn id") from exc
                # As in run: Ray restarts the replica (a host restarted after a crash may find
                # it still down); try the next one meanwhile.
                self._handles.pop(name, None)
                last, attempt = exc, attempt + 1
                await asyncio.sleep(0.05 * attempt)
        raise AgentError(f"no replica of agent {agent_key!r} answered: {last}")

    async def definition(self, agent_key: str, replicas: int) -> Agent:
        """The agent definition, from the first replica that answers (agent_placement="host")."""
        async def send(_: int, h: Any) -> Agent:
            return await h.definition.remote()

        return await self._on_a_replica(agent_key, replicas, 0, send, "gave its definition")
