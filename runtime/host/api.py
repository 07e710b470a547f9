"""The host boundary: one typed method per session operation.

:class:`HostAPI` is what a session handle can ask of the host that owns a session. The
in-process :class:`~repertory.host.core.HostCore` implements it; so do both runtimes, which
route each call to the session's host (``repertory.runtimes``), and the Ray shell
(``repertory.actors.session_host``) exposes the same names. Arguments and results cross
the boundary through :mod:`repertory.host.wire` on both runtimes, so what works locally
works on Ray.

Every method may raise :class:`~repertory.errors.InvalidInput` (a bad argument; nothing was
written), :class:`~repertory.errors.StoreUnavailable` (nothing acknowledged),
:class:`~repertory.errors.CorruptState` (the stored session cannot be read) and
:class:`~repertory.errors.ConcurrentUpdate` (another runtime kept winning the
compare-and-set); further errors are named per method.

Every method that writes takes an ``op_id`` (turns: ``TurnRequest.turn_id``), made once per
call and resent with it: an operation whose id the session has recorded is answered, not
applied again (``repertory.state.ops`` says with what). None applies the operation without
a record; the runtimes always send an id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from repertory.ids import SessionRef

__all__ = ["CheckpointKind", "HistoryMode", "HostAPI", "TurnReply", "TurnRequest"]

HistoryMode = Literal["transcript", "own"]  # what an agent of a multi-agent session sees
CheckpointKind = Literal["checkpoint", "version"]


@dataclass(slots=True)
class TurnRequest:
    """One user message for one session, as it travels from a handle to a host."""

    ref: SessionRef
    agent_key: str
    content: str
    turn_id: str
    replicas: int = 1
    ttl: float | None = None
    context: dict | None = None
    checkpoint_every: int | None = None
    keep_checkpoints: int | None = None
    agent_name: str | None = None  # the session's name for the agent (multi-agent sessions)
    shared_state_id: str | None = None
    parallel: bool = False  # run the model outside the mailbox; only the append is serialised
    history_mode: HistoryMode = "transcript"
    history_window: int | None = None  # only the last N messages go to the agent
    # The handle's agent definitions ({"agent": ..., "agents": {...}}, Agent.to_dict() each),
    # stored with the turn; None (a handle that continues with the stored ones) leaves them.
    agents: dict | None = None
    memory: dict | None = None  # long-term memory on: plain settings + scope (memory.settings.turn_memory)
    # The handle's window settings ({"messages", "tokens", "policy"}), stored with the turn where
    # they differ; None continues with the stored ones (agents.window).
    context_settings: dict | None = None
    prompt_context: str | None = "profile"  # what the prompt's context adds (state.context.PROMPT_CONTEXTS)
    # Journal each step of the turn (model replies that ask for tools, tool results), so that
    # a resend after a crash resumes from the last one; set where the agent has tools.
    journal: bool = False
    on_busy: str = "enqueue"  # what this message does to a busy session (host.busy)
    # stream_turn only: continue the turn's stream after this many characters of its reply
    # (an event id's offset, repertory.streams) instead of sending the message again.
    resume_from: int | None = None
    # The caller's request id (repertory.logs.bound_request_id: the server binds each request's
    # X-Request-ID), so that the host's log lines of this turn carry it too.
    request_id: str | None = None


@dataclass(slots=True)
class TurnReply:
    """The acknowledged result of a turn (its state is durable)."""

    content: str
    usage: dict
    n_messages: int
    revision: int
    replayed: bool = False


class HostAPI(Protocol):
    """The operations on one session; each runs under the session's mailbox, in arrival order."""

    async def turn(self, req: TurnRequest) -> TurnReply:
        """Run one turn; returns once it is durable. Raises ModelError, AgentError, MessageTooLarge,
        SessionBusy (``on_busy="reject"``) and TurnInterrupted (a later message cancelled it)."""

    def stream_turn(self, req: TurnRequest) -> AsyncIterator[str | TurnReply]:
        """Like :meth:`turn`, yielding text deltas first and the durable reply last. With
        ``resume_from``: the deltas after that offset of the turn's reply, from its running turn
        or its stored reply; StreamNotResumable if it has neither."""

    async def get_history(self, ref: SessionRef) -> list[dict[str, Any]]:
        """All messages, oldest first."""

    async def get_state(self, ref: SessionRef) -> dict[str, Any]:
        """The documented plain-dict state (history included)."""

    async def read_fields(self, ref: SessionRef) -> dict[str, Any]:
        """user_data, user_profile, metadata, times and counters, without the history."""

    async def set_history(self, ref: SessionRef, messages: list[dict[str, Any]], op_id: str | None = None) -> int:
        """Replace the history; returns the new revision."""

    async def set_state(self, ref: SessionRef, state: dict[str, Any], op_id: str | None = None) -> int:
        """Set any of history, user_data, user_profile, metadata, turns; returns the revision."""

    async def update_fields(self, ref: SessionRef, field: str, updates: dict[str, Any],
                            replace: bool = False, op_id: str | None = None) -> dict[str, Any]:
        """Merge ``updates`` into (or replace) user_data, user_profile or metadata."""

    async def update_item(self, ref: SessionRef, field: str, key: str, value: Any,
                          mode: Literal["merge", "append"], op_id: str | None = None) -> Any:
        """Merge into the dict, or append to the list, at ``field[key]``; returns the new item."""

    async def update_workflow(self, ref: SessionRef, workflow_id: str, tasks: dict[str, Any],
                              status: str | None = None, op_id: str | None = None) -> dict[str, Any]:
        """Record workflow task progress in the session's metadata; returns the workflow entry."""

    async def add_rating(self, ref: SessionRef, score: float, comment: str | None = None,
                         op_id: str | None = None) -> int:
        """Record an explicit rating of the session (0 to 1); returns how many it keeps."""

    async def set_ttl(self, ref: SessionRef, ttl: float | None, op_id: str | None = None) -> None:
        """Seconds the session lives after its last access; None keeps it."""

    async def create_checkpoint(self, ref: SessionRef, label: str, kind: CheckpointKind,
                                keep: int | None, op_id: str | None = None,
                                shared_state_id: str | None = None) -> dict[str, Any]:
        """Checkpoint (or save a version of) the current state, with a copy of the shared state
        ``shared_state_id`` if given; returns its info."""

    async def restore_checkpoint(self, ref: SessionRef, checkpoint: int | str, kind: CheckpointKind,
                                 op_id: str | None = None) -> int:
        """Write a checkpoint's state as a new revision. InvalidInput names the known ones."""

    async def list_checkpoints(self, ref: SessionRef, kind: CheckpointKind) -> list[dict[str, Any]]:
        """Checkpoints or versions, oldest first."""

    async def checkpoint_snapshot(self, ref: SessionRef, checkpoint: int | str,
                                  kind: CheckpointKind) -> dict[str, Any]:
        """A checkpoint as an exported-session document (for forks)."""

    async def pop_turn(self, ref: SessionRef, op_id: str | None = None) -> list[dict[str, Any]]:
        """Remove the last user message and what followed; returns the removed messages."""

    async def truncate(self, ref: SessionRef, keep: int, op_id: str | None = None) -> list[dict[str, Any]]:
        """Keep the first ``keep`` messages; returns the removed ones."""

    async def edit_message(self, ref: SessionRef, index: int, content: str,
                           op_id: str | None = None) -> list[dict[str, Any]]:
        """Replace a message's content; returns the message as it was."""

    async def export_session(self, ref: SessionRef, with_checkpoints: bool) -> dict[str, Any]:
        """The session as a document (files, exports, forks). Raises SessionNotFound."""

    async def import_session(self, ref: SessionRef, doc: dict[str, Any], overwrite: bool,
                             op_id: str | None = None) -> int:
        """Write an exported document as this session; returns the revision."""

    async def exists(self, ref: SessionRef) -> bool:
        """True if the store holds the session."""

    async def delete(self, ref: SessionRef, updated_before: float | None = None, op_id: str | None = None) -> bool:
        """Delete the session (with ``updated_before``: only if not updated since); True if it was.

        No op_id: a deleted session keeps no record. A resend after a host died removes
        nothing more (the session is gone) but may answer False."""
