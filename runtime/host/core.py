"""The session host: many virtual session actors in one process.

Each session gets a *slot*: its own lock (its mailbox: asyncio locks wake waiters in arrival
order, so messages are processed one at a time, first come first served) and, while active,
its resident state. A slot is activated on the first message (state loaded from the store)
and passivated when idle or when the host holds more than ``max_resident`` sessions. Every
turn is written to the store before it is acknowledged, so passivation only drops memory.

Within one runtime a session has one host, so its writes never collide. Two runtimes on one
store (two clusters, two processes) can: the loser of a compare-and-set would run its model
again on the fresh history. So a host that loses one marks the session *contended* and, for
the next minute, takes the session's store-side lease around each message: it waits for the
other runtime's turn, then reads what is stored, then calls the model once. The other runtime
finds its own write refused while the lease is held, and does the same. Uncontended sessions
take no lease and pay nothing. Repeated model calls, retries and lease waits are counted in
the session's ``metrics`` and the host's stats.

Within one runtime, while the host set changes (host.hostset), two hosts may be asked for
one session: with an :class:`~repertory.host.activation.Activation` a host takes the
session's activation lease before using its state and answers ``SessionElsewhere`` if
another host holds it (host.activation); the runtime resends the call there.

:class:`HostCore` implements :class:`~repertory.host.api.HostAPI` and knows nothing about
Ray: ``repertory.actors.session_host`` wraps it in an actor, and the local runtime calls it
directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from types import EllipsisType
from typing import Any, Protocol, TypeVar

import structlog

from repertory.agents.agent import Step, TurnOutput
from repertory.agents.tool_calls import interrupted_results
from repertory.config import Settings
from repertory.errors import (AgentError, AgentReplicaLost, ConcurrentUpdate, InvalidInput, ModelError, RuntimeNotReady,
                              SessionBusy, SessionElsewhere, StoreError, StreamNotResumable, TurnInterrupted)
from repertory.host.activation import Activation
from repertory.host.api import CheckpointKind, TurnReply, TurnRequest
from repertory.host.busy import CANCELLED_KEPT, RunningTurn, check_on_busy, interrupted_reply
from repertory.host.metrics import HostMetrics
from repertory.host.routing import host_index
from repertory.host.stats import HostCounters, HostStats
from repertory.ids import SessionRef
from repertory.shared.core import stored_shared_state
from repertory.state import ops as state_ops
from repertory.state.conflicts import retry_conflicts
from repertory.state.context import prompt_context
from repertory.state.prompt import Prompt
from repertory.state.session_state import SessionState, check_message
from repertory.stores.base import SessionRecord, Store
from repertory.stores.codec import MsgpackCodec
from repertory.streams import rechunk

__all__ = ["AgentPool", "HostCore"]

log = structlog.get_logger("repertory.host")
T = TypeVar("T")
CONTEXT_MESSAGES = 10  # recent messages whose topics a "full" prompt context names
CONTENDED_FOR = 60.0  # seconds a session is leased around each message after a conflict or a wait
_codec = MsgpackCodec()


class AgentPool(Protocol):
    """Where a host sends prompts: in-process agent cores or AgentActors. A :class:`Prompt`
    reaches either as what it lacks (``Prompt.for_replica``, ``state.prompt.in_process``)."""

    async def run(self, agent_key: str, replicas: int, history: Prompt | list[dict], context: dict | None,
                  shared_state_id: str | None = None, memory: dict | None = None,
                  window: dict | None = None) -> TurnOutput: ...

    def stream(self, agent_key: str, replicas: int, history: Prompt | list[dict], context: dict | None,
               shared_state_id: str | None = None, memory: dict | None = None,
               window: dict | None = None, *, deltas: bool = True, steps: bool = False,
               resume: list[dict] | None = None) -> AsyncIterator[str | Step | TurnOutput]: ...


class _Slot:
    __slots__ = ("lock", "state", "last_used", "busy", "touched", "contended_until", "turns", "lease_until")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.state: SessionState | None = None
        self.last_used = time.monotonic()
        self.busy = 0
        self.touched = 0.0
        self.contended_until = 0.0  # until then, messages take the session's lease (see module doc)
        self.turns: dict[str, RunningTurn] = {}  # turns in the mailbox, by turn id (host.busy)
        self.lease_until = 0.0  # the activation lease is surely held until then (host.activation)


class _Mailbox:
    """Hold a session's lock: its turn in the mailbox. A waiting caller counts as busy, so
    passivation never drops a slot (and its lock) that someone is queued on. A class rather
    than an asynccontextmanager: no async generator to create and finalise on every message."""

    __slots__ = ("host", "slot")

    def __init__(self, host: HostCore, ref: SessionRef) -> None:
        self.host = host
        self.slot = host._slot(ref.key)

    async def __aenter__(self) -> _Slot:
        self.slot.busy += 1
        try:
            await self.slot.lock.acquire()
        except BaseException:
            self.host._left(self.slot)
            raise
        return self.slot

    async def __aexit__(self, *exc: object) -> None:
        self.slot.lock.release()
        self.host._left(self.slot)


class _Effort:
    """What one message cost beyond one attempt: lost compare-and-sets, lease waits, model calls."""

    __slots__ = ("conflicts", "lease_waits", "model_calls")

    def __init__(self) -> None:
        self.conflicts = 0
        self.lease_waits = 0
        self.model_calls = 0

    def metrics(self) -> dict[str, int]:
        return {"repeated_model_calls": max(self.model_calls - 1, 0), "cas_retries": self.conflicts,
                "lease_waits": self.lease_waits}


def _caller(req: TurnRequest) -> dict[str, str]:
    """The caller's request id for the turn's log lines, when it sent one."""
    return {"request_id": req.request_id} if req.request_id else {}


def _cancelled_text(turn_id: str, policy: str) -> str:
    if policy == "interrupt":
        return (f"turn {turn_id!r} was interrupted by a later message (on_busy='interrupt'): its partial reply is "
                "in the history, marked interrupted. Send the message again with a new turn id to run it")
    return (f"turn {turn_id!r} was rolled back by a later message (on_busy='rollback') and left nothing in the "
            "history. Send the message again with a new turn id to run it")


class _LeaseTimeout(Exception):
    """Waited a whole turn_timeout for another runtime's lease: not worth another attempt
    (a ConcurrentUpdate would be retried); raised to the caller as ConcurrentUpdate."""


class HostCore:
    """Hosts virtual sessions; see the module docstring."""

    def __init__(self, store: Store, agents: AgentPool, settings: Settings, *, name: str = "host",
                 sweep_store: bool = False, metrics: HostMetrics | None = None,
                 activation: Activation | None = None, metrics_every: float = 0.0) -> None:
        self.store = store
        # Single activation across hosts (host.activation); None: this host is the only one
        # its callers reach for a session (the local runtime, a dedicated host).
        self.activation = activation
        self._keeper: asyncio.Task | None = None
        self._sweep_store = sweep_store
        self._last_store_sweep = 0.0
        self.agents = agents
        self.settings = settings
        self.name = name
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._sweeper: asyncio.Task | None = None
        self.activations = 0
        self.passivations = 0
        self.owner = f"{name}-{uuid.uuid4().hex[:12]}"  # whose writes and leases these are
        self.cas_retries = 0
        self.lease_waits = 0
        self.repeated_model_calls = 0
        self.turns_cancelled = 0
        self._streams: set[asyncio.Task] = set()  # streamed turns run on when their reader leaves
        self.metrics = metrics or HostMetrics()  # Prometheus (host.metrics); off by default
        self.counters = HostCounters(sink=self.metrics)  # turns and latencies (host.stats)
        self.in_progress = 0  # turns running or waiting here
        # Seconds between publications of the host's counts after turns (0: after every turn).
        # A Ray host publishes each one through its node's metrics agent, which costs more than
        # the turn's own bookkeeping; it also publishes them on a timer (actors/session_host.py).
        self.metrics_every = metrics_every
        self._metrics_synced = 0.0

    # -- slots ------------------------------------------------------------------------
    def _slot(self, key: str) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
            if self._sweeper is None and self.settings.idle_timeout > 0:
                self._sweeper = asyncio.get_running_loop().create_task(self._sweep_idle())
        else:
            self._slots.move_to_end(key)
        slot.last_used = time.monotonic()
        return slot

    async def _state(self, slot: _Slot, ref: SessionRef, ttl: float | None | EllipsisType = ...) -> SessionState:
        if slot.state is None:
            started = time.perf_counter()
            rec = await self.store.load(ref.key)
            self.counters.record_store(time.perf_counter() - started)
            if rec is None:  # a session starts with its handle's TTL, else the store's default
                ttl = self.settings.default_ttl if ttl is ... else ttl
                slot.state = SessionState.new(ref.key, ref.session_id, ref.user_id, ttl)  # type: ignore[arg-type]
            else:
                slot.state = SessionState.from_record(rec)
            slot.state.owner = self.owner
            self.activations += 1
            slot.touched = time.time() if rec is None else self._last_refresh(rec, slot.state)
        state = slot.state
        if state.revision == 0 and ttl is not ...:
            # Not stored yet (a read activated it, say a handle reading its stored agents):
            # the turn that creates the session brings its handle's TTL.
            state.meta["ttl"] = ttl
        ttl = state.meta.get("ttl")
        if ttl and state.revision > 0:
            now = time.time()
            # Access refreshes the expiry; at most every tenth of the TTL, so reads stay cheap.
            # The refresh also tells whether the store still holds the session: a resident
            # copy never outlives its stored state. Between refreshes it cannot have expired,
            # since its expiry is at least a whole TTL after the last refresh or write.
            if now - slot.touched >= ttl / 10 or slot.touched == 0.0:
                slot.touched = now
                try:
                    alive = await self.store.touch(ref.key, now + ttl)
                except StoreError as exc:  # the read still answers; the expiry is refreshed later
                    log.warning("ttl_refresh_failed", session=ref.key, error=str(exc))
                    alive = True
                if not alive:
                    log.info("resident_session_expired", session=ref.key)
                    slot.state = None
                    return await self._state(slot, ref)
        return state

    @staticmethod
    def _last_refresh(rec: SessionRecord, state: SessionState) -> float:
        """When a loaded session's expiry was last set (0.0: unknown, refresh it now). The store's
        expiry is a whole TTL after the last write or refresh, so an activation refreshes it only
        once a tenth of the TTL has passed since, not every time: on Redis that refresh was a
        second round trip (a script) after every load."""
        ttl = state.meta.get("ttl")
        if rec.expires_at is None or not ttl:
            return 0.0
        return min(rec.expires_at - ttl, time.time())

    async def _with_session(self, ref: SessionRef, fn: Callable[[SessionState], Awaitable[T]],
                            ttl: float | None | EllipsisType = ..., effort: _Effort | None = None) -> T:
        """Run ``fn`` with the session's state under its mailbox lock, retrying lost CAS."""
        effort = effort or _Effort()
        async with _Mailbox(self, ref) as slot:
            async def body() -> T:
                if self.activation is not None:
                    await self._activate(slot, ref.key)
                state = await self._state(slot, ref, ttl)
                try:
                    return await fn(state)
                except StoreError:
                    # The write may or may not have landed: forget the resident copy so the
                    # next message reads what the store really holds.
                    slot.state = None
                    raise

            def attempt() -> Awaitable[T]:
                if slot.contended_until < time.monotonic():
                    return body()  # the common case: no lease, no extra store call
                return self._leased(ref, slot, effort, body)

            def stale() -> None:
                slot.state = None
                slot.contended_until = time.monotonic() + CONTENDED_FOR
                effort.conflicts += 1
                self.cas_retries += 1

            try:
                return await retry_conflicts(attempt, on_conflict=stale, what=ref.key)
            except _LeaseTimeout as exc:
                raise ConcurrentUpdate(str(exc)) from None

    async def _activate(self, slot: _Slot, key: str) -> None:
        """Hold the session's activation lease (host.activation) before its state is used."""
        assert self.activation is not None
        try:
            if await self.activation.hold(slot, key):
                slot.state = None  # the lease had lapsed: read what is stored
        except SessionElsewhere:
            slot.state = None  # active on another host: no copy stays here
            raise
        if self._keeper is None:
            self._keeper = asyncio.get_running_loop().create_task(self._keep_leases())

    async def _keep_leases(self) -> None:
        assert self.activation is not None
        while True:
            await asyncio.sleep(self.activation.ttl / 4)
            await self.activation.keep(self._slots.items())

    def _drop(self, key: str) -> None:
        """Passivate one idle session: drop its slot, give its activation lease back."""
        slot = self._slots.pop(key)
        if self.activation is not None:
            self.activation.release(key, slot)
        self.passivations += 1

    async def _leased(self, ref: SessionRef, slot: _Slot, effort: _Effort, body: Callable[[], Awaitable[T]]) -> T:
        """Run ``body`` holding the session's store lease (a contended session; module docstring)."""
        ttl = self.settings.lease_ttl
        deadline = time.monotonic() + self.settings.turn_timeout
        pause = 0.002
        while (left := await self.store.acquire_lease(ref.key, self.owner, ttl)) > 0.0:
            effort.lease_waits += 1
            self.lease_waits += 1
            if time.monotonic() >= deadline:
                raise _LeaseTimeout(f"session {ref.key!r} stayed leased to another runtime for "
                                    f"{self.settings.turn_timeout:g} s; retry later")
            await asyncio.sleep(min(left, pause))
            pause = min(pause * 2, 0.1)
        if effort.lease_waits:
            slot.contended_until = time.monotonic() + CONTENDED_FOR
        # The other runtime may have written since this copy was read (while it held the lease,
        # or before it took one): read what is stored, so that the model sees it.
        slot.state = None
        renew = asyncio.get_running_loop().create_task(self._renew_lease(ref.key, ttl))
        try:
            return await body()
        finally:
            renew.cancel()
            try:
                await self.store.release_lease(ref.key, self.owner)
            except StoreError as exc:  # it lapses by itself within a TTL
                log.warning("lease_release_failed", session=ref.key, error=str(exc))

    async def _renew_lease(self, key: str, ttl: float) -> None:
        # A model call may outlast the lease; renew it while the message runs.
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await self.store.acquire_lease(key, self.owner, ttl)
            except StoreError as exc:
                log.warning("lease_renewal_failed", session=key, error=str(exc))

    def _left(self, slot: _Slot) -> None:
        """A caller left the session's mailbox."""
        slot.busy -= 1
        slot.last_used = time.monotonic()
        self._evict_over_cap()

    def _op(self, ref: SessionRef, op: Callable[..., Awaitable[T]], *args: Any) -> Awaitable[T]:
        """Run a :mod:`repertory.state.ops` function on the session under its mailbox."""
        async def run(state: SessionState) -> T:
            return await op(self.store, state, *args)

        return self._with_session(ref, run)

    def _evict_over_cap(self) -> None:
        excess = len(self._slots) - self.settings.max_resident
        if excess <= 0:
            return
        for key in list(self._slots):  # oldest first
            if excess <= 0:
                break
            if self._slots[key].busy == 0:
                self._drop(key)
                excess -= 1

    def passivate_idle(self, idle_for: float) -> int:
        """Drop sessions idle for ``idle_for`` seconds; returns how many."""
        cutoff = time.monotonic() - idle_for
        return self.passivate_where(lambda key, slot: slot.last_used < cutoff)

    def passivate_moved(self, index: int, hosts: int) -> int:
        """Drop the idle sessions that host ``index`` no longer owns among ``hosts`` hosts (the
        host set changed): their activation leases go back, so their new host takes them at once."""
        return self.passivate_where(lambda key, _slot: host_index(key, hosts) != index)

    def passivate_where(self, which: Callable[[str, Any], bool]) -> int:
        """Drop the idle sessions for which ``which(key, slot)`` holds; returns how many. The
        runtime drops those that moved to another host when the host set changed."""
        gone = [k for k, s in self._slots.items() if s.busy == 0 and which(k, s)]
        for k in gone:
            self._drop(k)
        return len(gone)

    async def _sweep_idle(self) -> None:
        period = max(self.settings.idle_timeout / 4, 0.05)
        while True:
            await asyncio.sleep(period)
            n = self.passivate_idle(self.settings.idle_timeout)
            if n:
                log.debug("passivated", host=self.name, sessions=n, resident=len(self._slots))
            if self._sweep_store and time.monotonic() - self._last_store_sweep > self.settings.sweep_interval:
                self._last_store_sweep = time.monotonic()
                try:
                    gone = await self.store.sweep_expired()
                    if gone:
                        log.info("expired_sessions_swept", host=self.name, sessions=gone)
                except Exception as exc:  # a failed sweep is retried next period
                    log.warning("sweep_failed", host=self.name, error=str(exc))

    # -- turns ------------------------------------------------------------------------
    async def _commit_turn(self, state: SessionState, req: TurnRequest, out: TurnOutput,
                           user_msg: dict, effort: _Effort, before: Sequence[dict] = ()) -> TurnReply:
        fields = None if req.context_settings is None and out.window is None else self._window_fields(state, req, out)
        if req.shared_state_id is not None and state.meta.get("shared_state_id") != req.shared_state_id:
            # Which shared state the session's agents work on: the inspector shows it with the session.
            fields = {**(fields or {}), "shared_state_id": req.shared_state_id}
        write, meta, messages = state.append_write([*before, user_msg, *out.messages], turn_id=req.turn_id,
                                                   metrics=effort.metrics(), agents=req.agents, fields=fields)
        started = time.perf_counter()
        revision = await self.store.commit(write)
        self.counters.record_store(time.perf_counter() - started)
        state.applied(revision, meta, messages)
        log.debug("turn_committed", turn=meta["turns"], revision=revision, messages=len(messages), **out.usage)
        self._model_metrics(out)
        if req.checkpoint_every and meta["turns"] % req.checkpoint_every == 0:
            await state_ops.create_checkpoint(self.store, state, label=f"auto at turn {meta['turns']}",
                                              shared=await self._shared_copy(req.shared_state_id),
                                              keep=req.keep_checkpoints)
        return TurnReply(out.reply, out.usage, len(messages), revision)

    @staticmethod
    def _window_fields(state: SessionState, req: TurnRequest, out: TurnOutput) -> dict[str, Any] | None:
        """Meta fields the turn changed: the handle's window settings where they differ from the
        stored ones, the window's state where the agent moved it. Usually none."""
        fields: dict[str, Any] = {}
        if req.context_settings is not None and req.context_settings != state.meta.get("context"):
            fields["context"] = req.context_settings
        if out.window is not None:
            old = state.meta.get("window") or {"usage": {}, "summaries": 0}
            usage = dict(old["usage"])
            for k, v in out.window["usage"].items():
                usage[k] = usage.get(k, 0) + v
            fields["window"] = {"start": out.window["start"], "summary": out.window["summary"], "usage": usage,
                                # a summary in the new state is one this turn made (agents.window)
                                "summaries": old["summaries"] + (out.window["summary"] is not None)}
        return fields or None

    def _replay(self, state: SessionState, req: TurnRequest) -> TurnReply | None:
        # A resent request (the caller lost the reply when a host died): answer from the store.
        # A turn that a later message cancelled answers as it did then: it never runs.
        for tid, policy in state.meta.get("cancelled_turns", ()):
            if tid == req.turn_id:
                raise TurnInterrupted(_cancelled_text(tid, policy))
        content = state.replay(req.turn_id, req.content)
        if content is None:
            return None
        return TurnReply(content, {}, len(state.messages), state.revision, replayed=True)


    @staticmethod
    def _user_message(req: TurnRequest) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "user", "content": req.content, "timestamp": time.time()}
        if req.agent_name is not None:
            msg["agent"] = req.agent_name
        return msg

    @staticmethod
    def _repairs(state: SessionState) -> list[dict[str, Any]]:
        """Results for tool calls the stored history left unanswered (agents.tool_calls): a
        history written by another framework, or imported, may end in a call without its result,
        and providers refuse such a prompt. Recorded with the turn, before its user message."""
        n, total = 1, len(state.messages)
        while True:
            tail = state.recent(min(n, total))  # one message decoded, in the common case
            if not tail or tail[0].get("role") != "tool" or len(tail) == total:
                return interrupted_results(tail)
            n *= 2  # it starts inside a group of tool results: read further back

    @staticmethod
    def _prompt(state: SessionState, req: TurnRequest, user_msg: dict,
                before: Sequence[dict] = ()) -> tuple[Prompt | list[dict], dict | None, dict | None]:
        """The history to send, the window settings and state for the agent (None: no
        settings, nothing left out yet), and the prompt's context. ``before``: repairs of the
        history (:meth:`_repairs`), sent and stored before ``user_msg``."""
        meta = state.meta
        context = req.context
        if req.prompt_context is not None and (req.prompt_context != "profile" or meta["user_profile"]):
            context = prompt_context(req.prompt_context, context, meta, lambda: state.recent(CONTEXT_MESSAGES))
        settings = req.context_settings if req.context_settings is not None else meta.get("context")
        stored = meta.get("window")
        if req.history_mode == "own" and req.agent_name is not None:
            history = [m for m in state.history() if m.get("agent") == req.agent_name]
            if req.history_window:
                history = history[-req.history_window:]
            # Another agent's turns interleave: no start to store, the agent only leaves messages out.
            return [*history, *before, user_msg], {**(settings or {}), "offset": None}, context
        n = len(state.messages)
        first = min(stored["start"], n) if stored else 0  # the window's start (agents.window)
        cut = req.history_window
        if settings and settings["messages"] and settings["policy"] == "drop":
            cut = min(cut, settings["messages"]) if cut else settings["messages"]
        if cut:
            first = max(first, n - cut)
        prompt = state.prompt(user_msg, start=first, before=before)
        if settings is None and stored is None and first == 0:
            return prompt, None, context
        return prompt, {**(settings or {}), "offset": first, "summary": stored["summary"] if stored else None}, context

    def _model_metrics(self, out: TurnOutput) -> None:
        calls = [m["latency"] for m in out.messages if m.get("role") == "assistant" and "latency" in m]
        tokens_in, tokens_out = out.usage.get("prompt_tokens", 0), out.usage.get("completion_tokens", 0)
        for i, latency in enumerate(calls or [None]):  # tokens once per turn, a latency per model call
            self.metrics.model(latency, tokens_in if i == 0 else 0, tokens_out if i == 0 else 0)

    def _tag(self, out: TurnOutput, req: TurnRequest) -> TurnOutput:
        if req.agent_name is not None:
            for m in out.messages:
                m["agent"] = req.agent_name
        return out

    async def _agent_output(self, state: SessionState, req: TurnRequest, history: Prompt | list[dict],
                            context: dict | None, window: dict | None,
                            deltas: Callable[[str], Awaitable[None]] | None = None) -> tuple[TurnOutput, bool]:
        """The agent's output for the turn, and whether the turn has a step journal to drop.

        With ``req.journal`` each step is journaled (Store.put_step) as it arrives, before the
        turn is acknowledged; a journal that an earlier attempt of this turn id left (its host
        died) is sent along, and the agent resumes after its last step: no tool that reported
        runs again, no model step is paid twice. ``deltas`` receives text chunks (streaming).
        """
        if not req.journal and deltas is None:  # the common turn: one call, nothing journaled
            return await self.agents.run(req.agent_key, req.replicas, history, context, req.shared_state_id,
                                         req.memory, window), False
        journaled = False
        for attempt in range(3):
            resume = await self._journal(state, req) if req.journal else None
            journaled = journaled or resume is not None
            out: TurnOutput | None = None
            try:
                async for item in self.agents.stream(req.agent_key, req.replicas, history, context,
                                                     req.shared_state_id, req.memory, window,
                                                     deltas=deltas is not None, steps=req.journal, resume=resume):
                    if isinstance(item, str):
                        await deltas(item)  # type: ignore[misc]
                    elif isinstance(item, Step):
                        ttl = state.meta.get("ttl")
                        await self.store.put_step(state.key, req.turn_id, item.seq, _codec.encode(item.message),
                                                  time.time() + ttl if ttl else None)
                        journaled = True
                    else:
                        out = item
            except AgentReplicaLost as exc:
                # The replica died mid-turn, this host did not: go on from the journal on another
                # (or the restarted) replica. Streamed text already sent cannot be taken back.
                if not req.journal or deltas is not None or attempt == 2:
                    raise
                log.warning("agent_replica_lost_resuming", error=str(exc))
                continue
            if out is None:
                raise ModelError("the agent's stream ended without a final message")
            return out, journaled
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def _journal(self, state: SessionState, req: TurnRequest) -> list[dict] | None:
        """The steps an earlier attempt of this turn journaled, or None."""
        source = f"the step journal of turn {req.turn_id!r} of session {state.key!r}"
        resume = [_codec.decode(blob, source=source) for _, blob in await self.store.load_steps(state.key, req.turn_id)]
        if resume:
            log.info("turn_resumed", steps=len(resume))
        return resume or None

    async def _drop_journal(self, key: str, turn_id: str) -> None:
        # Best effort: the turn is settled either way, and a journal left behind expires with
        # its session or goes with its delete; only a resend of this very turn id would read it.
        try:
            await self.store.drop_steps(key, turn_id)
        except StoreError as exc:
            log.warning("step_journal_not_dropped", session=key, error=str(exc))

    async def turn(self, req: TurnRequest) -> TurnReply:
        """Process one user message; returns once the turn is durable."""
        check_message(req.content, self.settings.max_message_bytes)
        # Every log line of this turn carries the session and turn ids.
        with structlog.contextvars.bound_contextvars(session=req.ref.key, turn_id=req.turn_id, agent=req.agent_name,
                                                     host=self.name, **_caller(req)):
            with self._counted():
                return await self._turn(req)

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """Count a turn: in progress while the block runs, then acknowledged with its latency or
        failed with its error's type (a reader that leaves a stream counts as neither)."""
        started = time.perf_counter()
        self.in_progress += 1
        try:
            yield
        except SessionElsewhere:
            raise  # sent on to the session's host, which counts the turn
        except Exception as exc:
            self.counters.record_turn_error(type(exc).__name__)
            raise
        finally:
            self.in_progress -= 1
            if not self.metrics_every or time.monotonic() - self._metrics_synced >= self.metrics_every:
                self.sync_metrics()
        self.counters.record_turn(time.perf_counter() - started)

    def sync_metrics(self) -> None:
        """Publish this host's own counts to its metrics (host.metrics)."""
        self._metrics_synced = time.monotonic()
        self.metrics.sync(self, len(self._slots), self.in_progress)

    async def _turn(self, req: TurnRequest) -> TurnReply:
        if req.parallel:
            return await self._parallel_turn(req)
        slot, record, registered = self._admit(req)
        return await self._settled(slot, req, record, registered, self._run_turn(req, record, stream=False))

    # -- busy sessions (host.busy) ----------------------------------------------------
    def _admit(self, req: TurnRequest) -> tuple[_Slot, RunningTurn, bool]:
        """Apply the message's busy policy, then register its turn in the mailbox. A resend of
        a turn already there follows no policy (it is the same message) and is not registered."""
        policy = check_on_busy(req.on_busy)
        slot = self._slot(req.ref.key)
        if req.turn_id in slot.turns:
            return slot, RunningTurn(req.turn_id, req.content), False
        if slot.turns:
            if policy == "reject":
                raise SessionBusy(f"session {req.ref.session_id!r} is processing another message; nothing was "
                                  "written. Send it again later, or with on_busy='enqueue' to wait its turn")
            if policy in ("interrupt", "rollback"):
                for other in slot.turns.values():
                    if other.cancel(policy):
                        log.info("turn_cancel_requested", cancelled=other.turn_id, by=req.turn_id, policy=policy)
        record = slot.turns[req.turn_id] = RunningTurn(req.turn_id, req.content)
        slot.busy += 1  # the slot and its records stay resident until the turn leaves
        return slot, record, True

    async def _settled(self, slot: _Slot, req: TurnRequest, record: RunningTurn, registered: bool,
                       work: Awaitable[TurnReply]) -> TurnReply:
        """Await a turn, give its outcome to the record's followers, and leave the mailbox."""
        try:
            reply = await work
        except Exception as exc:
            record.finish(error=exc)
            raise
        except BaseException:
            record.finish(error=RuntimeNotReady(f"the host stopped during turn {req.turn_id!r}; resend it "
                                                "with the same turn id"))
            raise
        finally:
            if registered and slot.turns.get(req.turn_id) is record:
                del slot.turns[req.turn_id]
                self._left(slot)
        record.finish(reply)
        return reply

    async def _model(self, record: RunningTurn, call: Awaitable[T]) -> T | None:
        """Await the turn's model call as a task that a busy policy may cancel; None if it did."""
        record.phase = "model"
        task = asyncio.ensure_future(call)
        record.task = task
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:  # the turn itself was cancelled (its host stops)
            task.cancel()
            raise
        finally:
            record.task = None
        if task.cancelled():
            if record.cancelled is None:
                raise ModelError("the model call was cancelled; send the message again")
            return None
        record.phase = "committing"  # too late to cancel: the reply is written and answered
        return task.result()

    async def _record_cancelled(self, state: SessionState, req: TurnRequest, record: RunningTurn,
                                user_msg: dict) -> TurnReply:
        """Write what a cancelled turn leaves (host.busy), then raise TurnInterrupted."""
        policy = record.cancelled
        cancelled = [*state.meta.get("cancelled_turns", ())[-(CANCELLED_KEPT - 1):], [req.turn_id, policy]]
        if policy == "interrupt":
            partial = interrupted_reply(record.text, time.time())
            if req.agent_name is not None:
                partial["agent"] = req.agent_name
            write, meta, messages = state.append_write([user_msg, partial], fields={"cancelled_turns": cancelled})
        else:
            write, meta, messages = state.meta_write(dict(state.meta, cancelled_turns=cancelled))
        state.applied(await self.store.commit(write), meta, messages)
        self.turns_cancelled += 1
        log.info("turn_cancelled", policy=policy, partial_chars=len(record.text))
        raise TurnInterrupted(_cancelled_text(req.turn_id, policy))

    @staticmethod
    def _deltas_into(record: RunningTurn) -> Callable[[str], Awaitable[None]]:
        """Where a streamed turn's text chunks go: its record, which its readers follow."""
        async def add(chunk: str) -> None:
            record.add(chunk)
        return add

    async def _run_turn(self, req: TurnRequest, record: RunningTurn, *, stream: bool) -> TurnReply:
        effort = _Effort()

        async def run(state: SessionState) -> TurnReply:
            replay = self._replay(state, req)
            if replay is not None:
                if stream:
                    record.add(replay.content)
                return replay
            user_msg = self._user_message(req)
            if record.cancelled:  # cancelled while it waited in the mailbox: no model call
                return await self._record_cancelled(state, req, record, user_msg)
            self._count_model_call(effort, req)
            before = self._repairs(state)
            history, window, context = self._prompt(state, req, user_msg, before)
            deltas: Callable[[str], Awaitable[None]] | None = None
            if stream:
                record.streamed = True
                deltas = self._deltas_into(record)
            try:
                result = await self._model(record, self._agent_output(state, req, history, context, window, deltas))
            except (ModelError, AgentError) as exc:
                await self._count_error(state)
                if req.journal and not isinstance(exc, AgentReplicaLost):  # a resend may still resume it
                    await self._drop_journal(state.key, req.turn_id)
                raise
            if result is None:  # a busy policy cancelled it: its steps will not be resumed
                if req.journal:
                    await self._drop_journal(state.key, req.turn_id)
                return await self._record_cancelled(state, req, record, user_msg)
            out, journaled = result
            reply = await self._commit_turn(state, req, self._tag(out, req), user_msg, effort, before)
            if journaled:
                await self._drop_journal(state.key, req.turn_id)
            return reply

        return await self._with_session(req.ref, run, req.ttl, effort)


    async def _count_error(self, state: SessionState) -> None:
        """Count a failed turn in the session's metrics (analytics report it). Best effort: the
        turn's own error is what the caller gets, whatever happens here."""
        if state.revision == 0:
            return  # no session to count it in: a failed first turn stores nothing
        metrics = dict(state.meta.get("metrics", {}))
        metrics["errors"] = metrics.get("errors", 0) + 1
        write, meta, messages = state.meta_write(dict(state.meta, metrics=metrics))
        try:
            state.applied(await self.store.commit(write), meta, messages)
        except (StoreError, ConcurrentUpdate) as exc:
            log.warning("error_count_not_written", session=state.key, error=str(exc))

    def _count_model_call(self, effort: _Effort, req: TurnRequest) -> None:
        effort.model_calls += 1
        if effort.model_calls > 1:  # the history changed under the first call: paid again
            self.repeated_model_calls += 1
            log.info("model_call_repeated", session=req.ref.key, calls=effort.model_calls)

    async def _parallel_turn(self, req: TurnRequest) -> TurnReply:
        """A turn whose model call runs outside the mailbox (agents of one session in parallel).

        The prompt is the history when the turn starts; the user message and the agent's
        messages are appended together, in completion order, so pairs never interleave.
        """
        user_msg = self._user_message(req)
        effort = _Effort()

        async def read(state: SessionState) -> tuple[TurnReply | None, tuple]:
            return self._replay(state, req), self._prompt(state, req, user_msg)

        replay, (prompt, window, context) = await self._with_session(req.ref, read, req.ttl, effort)
        if replay is not None:
            return replay
        self._count_model_call(effort, req)
        out = self._tag(await self.agents.run(req.agent_key, req.replicas, prompt, context,
                                              req.shared_state_id, req.memory, window), req)

        async def append(state: SessionState) -> TurnReply:
            # A lost compare-and-set here redoes only the append: the exchange joins the
            # history whenever it finishes, so the model is not called again.
            replay = self._replay(state, req)
            return replay if replay is not None else await self._commit_turn(state, req, out, user_msg, effort)

        return await self._with_session(req.ref, append, req.ttl, effort)

    async def stream_turn(self, req: TurnRequest) -> AsyncIterator[str | TurnReply]:
        """Like :meth:`turn`, yielding text deltas first and the durable :class:`TurnReply` last.

        The turn runs in its own task and goes on if the reader leaves (a client that lost its
        connection): it is written as any turn, and a reader may follow it again from an offset
        of its reply (``req.resume_from``), live or, once written, from the store.
        """
        check_message(req.content, self.settings.max_message_bytes)
        if req.resume_from is not None:
            async for item in self._resume(req):
                yield item
            return
        slot, record, registered = self._admit(req)

        async def drive() -> None:  # its own task, so the bound ids stay in it
            structlog.contextvars.bind_contextvars(session=req.ref.key, turn_id=req.turn_id, host=self.name,
                                                   **_caller(req))
            try:
                await self._settled(slot, req, record, registered, self._run_turn(req, record, stream=True))
            except Exception:  # the record holds it: its readers raise it
                pass

        task = asyncio.get_running_loop().create_task(drive())
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)
        with self._counted():
            async for chunk, _ in record.follow(0):
                yield chunk
            reply = record.outcome()
        yield reply

    async def _resume(self, req: TurnRequest) -> AsyncIterator[str | TurnReply]:
        """The reply of turn ``req.turn_id`` after ``req.resume_from`` characters: followed live
        while the turn is in the mailbox, else re-chunked from the stored reply."""
        offset = req.resume_from or 0
        slot = self._slots.get(req.ref.key)
        record = slot.turns.get(req.turn_id) if slot is not None else None
        if record is not None and record.content == req.content:
            async for chunk, _ in record.follow(offset):
                yield chunk
            reply: TurnReply = record.outcome()
            if not record.streamed:  # a turn sent with chat(): its reply came whole
                for chunk, _ in rechunk(reply.content[offset:], offset):
                    yield chunk
            yield dataclasses.replace(reply, replayed=True)
            return

        async def read(state: SessionState) -> TurnReply | None:
            return self._replay(state, req)

        stored = await self._with_session(req.ref, read)
        if stored is None:
            raise StreamNotResumable(f"turn {req.turn_id!r} of session {req.ref.session_id!r} is neither running "
                                     "nor stored (it failed, or its host stopped before acknowledging it); send "
                                     "the message again with the same turn id and no event id to run it")
        if offset > len(stored.content):
            raise InvalidInput(f"the event id's offset {offset} is past the end of the stored reply "
                               f"({len(stored.content)} characters); pass the event id of a chunk received")
        for chunk, _ in rechunk(stored.content[offset:], offset):
            yield chunk
        yield stored

    # -- state operations (HostAPI) ---------------------------------------------------
    async def get_history(self, ref: SessionRef) -> list[dict[str, Any]]:
        async def get(state: SessionState) -> list[dict[str, Any]]:
            return state.history()

        return await self._with_session(ref, get)

    async def get_state(self, ref: SessionRef) -> dict[str, Any]:
        async def get(state: SessionState) -> dict[str, Any]:
            return state.public_state()

        return await self._with_session(ref, get)

    async def read_fields(self, ref: SessionRef) -> dict[str, Any]:
        return await self._op(ref, state_ops.read_fields)

    # Writing operations take the caller's op_id: one applied already is answered, not redone
    # (state.ops records the id in the operation's own compare-and-set write).
    async def set_history(self, ref: SessionRef, messages: list[dict[str, Any]], op_id: str | None = None) -> int:
        return await self._op(ref, state_ops.set_history, messages, op_id)

    async def set_state(self, ref: SessionRef, state: dict[str, Any], op_id: str | None = None) -> int:
        return await self._op(ref, state_ops.set_state, state, op_id)

    async def update_fields(self, ref: SessionRef, field: str, updates: dict[str, Any],
                            replace: bool = False, op_id: str | None = None) -> dict[str, Any]:
        return await self._op(ref, state_ops.update_fields, field, updates, replace, op_id)

    async def update_item(self, ref: SessionRef, field: str, key: str, value: Any, mode: str,
                          op_id: str | None = None) -> Any:
        return await self._op(ref, state_ops.update_item, field, key, value, mode, op_id)

    async def update_workflow(self, ref: SessionRef, workflow_id: str, tasks: dict[str, Any],
                              status: str | None = None, op_id: str | None = None) -> dict[str, Any]:
        return await self._op(ref, state_ops.update_workflow, workflow_id, tasks, status, op_id)

    async def add_rating(self, ref: SessionRef, score: float, comment: str | None = None,
                         op_id: str | None = None) -> int:
        return await self._op(ref, state_ops.add_rating, score, comment, op_id)

    async def set_ttl(self, ref: SessionRef, ttl: float | None, op_id: str | None = None) -> None:
        return await self._op(ref, state_ops.set_ttl, ttl, op_id)

    async def create_checkpoint(self, ref: SessionRef, label: str, kind: CheckpointKind,
                                keep: int | None, op_id: str | None = None,
                                shared_state_id: str | None = None) -> dict[str, Any]:
        """Checkpoint the session; with ``shared_state_id``, a copy of that shared state is
        recorded with it, read under the session's mailbox: between two of its turns, with
        every write its turns made (and what other sessions wrote until then)."""
        async def run(state: SessionState) -> dict[str, Any]:
            shared = await self._shared_copy(shared_state_id)
            return await state_ops.create_checkpoint(self.store, state, label, kind, keep, op_id, shared)

        return await self._with_session(ref, run)

    async def _shared_copy(self, shared_state_id: str | None) -> dict[str, Any] | None:
        return None if shared_state_id is None else await stored_shared_state(self.store, shared_state_id)

    async def restore_checkpoint(self, ref: SessionRef, checkpoint: int | str, kind: CheckpointKind,
                                 op_id: str | None = None) -> int:
        return await self._op(ref, state_ops.restore_checkpoint, checkpoint, kind, op_id)

    async def list_checkpoints(self, ref: SessionRef, kind: CheckpointKind) -> list[dict[str, Any]]:
        return await self._op(ref, state_ops.list_checkpoints, kind)

    async def checkpoint_snapshot(self, ref: SessionRef, checkpoint: int | str,
                                  kind: CheckpointKind) -> dict[str, Any]:
        return await self._op(ref, state_ops.checkpoint_snapshot, checkpoint, kind)

    async def pop_turn(self, ref: SessionRef, op_id: str | None = None) -> list[dict[str, Any]]:
        return await self._op(ref, state_ops.pop_turn, op_id)

    async def truncate(self, ref: SessionRef, keep: int, op_id: str | None = None) -> list[dict[str, Any]]:
        return await self._op(ref, state_ops.truncate, keep, op_id)

    async def edit_message(self, ref: SessionRef, index: int, content: str,
                           op_id: str | None = None) -> list[dict[str, Any]]:
        return await self._op(ref, state_ops.edit_message, index, content, op_id)

    async def export_session(self, ref: SessionRef, with_checkpoints: bool) -> dict[str, Any]:
        return await self._op(ref, state_ops.export_session, with_checkpoints)

    async def import_session(self, ref: SessionRef, doc: dict[str, Any], overwrite: bool,
                             op_id: str | None = None) -> int:
        return await self._op(ref, state_ops.import_session, doc, overwrite, op_id)

    async def exists(self, ref: SessionRef) -> bool:
        slot = self._slots.get(ref.key)
        state = slot.state if slot is not None else None
        if state is not None and state.revision > 0 and not state.meta.get("ttl"):
            return True  # without a TTL only a delete removes it (another runtime's shows at the next write)
        return await self.store.load(ref.key) is not None

    async def delete(self, ref: SessionRef, updated_before: float | None = None, op_id: str | None = None) -> bool:
        """Delete a session; with ``updated_before``, only if it was not updated since (cleanup
        must not remove a session that was used after it was listed). A resend of a delete
        (same ``op_id``) is answered True and deletes nothing, not even a session created since.

        The slot stays: turns already waiting on its lock run after the delete, in order,
        on a fresh session (dropping the slot would let later turns take a new lock).
        """
        async with _Mailbox(self, ref) as slot:
            if updated_before is not None:
                rec = await self.store.load(ref.key)
                if rec is None and op_id is not None:
                    return await self.store.delete(ref.key, op_id)  # True if this op deleted it
                if rec is None or rec.updated_at >= updated_before:
                    return False
            slot.state = None
            return await self.store.delete(ref.key, op_id)

    @property
    def redirects(self) -> int:
        """Calls this host sent on to the host holding their session (host.activation)."""
        return self.activation.redirects if self.activation is not None else 0

    @property
    def takeovers(self) -> int:
        """Activation leases this host took from a dead incarnation of itself."""
        return self.activation.takeovers if self.activation is not None else 0

    @property
    def prompt_resends(self) -> int:
        """Prompts an agent replica no longer held, sent again whole (agents on Ray only)."""
        return getattr(self.agents, "prompt_resends", 0)

    def snapshot(self) -> HostStats:
        """This host's counters (:class:`~repertory.host.stats.HostStats`)."""
        return self.counters.snapshot(self.name, resident=len(self._slots), activations=self.activations,
                                      passivations=self.passivations, cas_retries=self.cas_retries,
                                      lease_waits=self.lease_waits, repeated_model_calls=self.repeated_model_calls,
                                      turns_cancelled=self.turns_cancelled,
                                      redirects=self.redirects, takeovers=self.takeovers,
                                      prompt_resends=self.prompt_resends,
                                      turns_in_mailboxes=sum(len(slot.turns) for slot in list(self._slots.values())))

    def stats(self) -> dict[str, Any]:
        return self.snapshot().to_dict()

    async def close(self) -> None:
        for task in list(self._streams):
            task.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None
        if self.activation is not None:
            for key, slot in list(self._slots.items()):
                self.activation.release(key, slot)
            await self.activation.drain()
        self._slots.clear()
