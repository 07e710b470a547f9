"""What happens to a message that reaches a busy session, and the turns it may cancel.

A session processes one message at a time (its mailbox, ``repertory.host.core``). A turn
that arrives while others are in the mailbox follows its ``on_busy`` policy:

- ``"enqueue"`` (the default): it waits its turn.
- ``"reject"``: :class:`~repertory.errors.SessionBusy` at once; nothing is written.
- ``"interrupt"``: the turns ahead of it are cancelled (the running one's model call stops);
  each is recorded in the history as its user message plus the partial reply, marked
  ``interrupted: True`` and ending with :data:`INTERRUPTED_MARK` (the model sees it), then
  the new message runs with them in its history.
- ``"rollback"``: the turns ahead of it are cancelled and leave no message in the history.

A turn whose model call has finished is committing: it is not cancelled, and the new message
runs after it. The caller of a cancelled turn gets :class:`~repertory.errors.TurnInterrupted`;
the session records the turn id (``cancelled_turns``), so a resend answers the same error.

:class:`RunningTurn` is a turn in the mailbox as its host sees it: its policy state, its
model call (to cancel), and the reply text streamed so far, which followers (the stream that
started it, clients resuming after a reconnect) read from any offset.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator
from typing import Any, Literal

from repertory.errors import InvalidInput, RuntimeNotReady

__all__ = ["BUSY_POLICIES", "CANCELLED_KEPT", "INTERRUPTED_MARK", "BusyPolicy", "RunningTurn", "check_on_busy",
           "interrupted_reply"]

BusyPolicy = Literal["enqueue", "reject", "interrupt", "rollback"]
BUSY_POLICIES: tuple[str, ...] = ("enqueue", "reject", "interrupt", "rollback")
INTERRUPTED_MARK = "[interrupted]"
CANCELLED_KEPT = 64  # cancelled turn ids a session remembers (as session_state.RECENT_TURNS)


def check_on_busy(policy: object) -> BusyPolicy:
    """``policy`` if it is one of :data:`BUSY_POLICIES`, else :class:`InvalidInput`."""
    if policy not in BUSY_POLICIES:
        raise InvalidInput(f"on_busy must be one of {list(BUSY_POLICIES)}, got {policy!r:.40}")
    return policy  # type: ignore[return-value]


def interrupted_reply(partial: str, timestamp: float) -> dict[str, Any]:
    """The assistant message that records an interrupted turn's partial reply."""
    sep = " " if partial and not partial[-1].isspace() else ""
    return {"role": "assistant", "content": f"{partial}{sep}{INTERRUPTED_MARK}", "interrupted": True,
            "timestamp": timestamp}


class RunningTurn:
    """A turn in a session's mailbox: queued, calling its model, committing, then finished."""

    __slots__ = ("turn_id", "content", "phase", "cancelled", "task", "chunks", "ends", "streamed",
                 "reply", "error", "_wake", "_waiting", "_done")

    def __init__(self, turn_id: str, content: str) -> None:
        self.turn_id = turn_id
        self.content = content
        self.phase: Literal["queued", "model", "committing"] = "queued"
        self.cancelled: BusyPolicy | None = None  # the policy of the message that cancelled it
        self.task: asyncio.Task | None = None  # its model call, while it runs
        self.chunks: list[str] = []  # the reply streamed so far; one reply, dropped with the turn
        self.ends: list[int] = []  # each chunk's end offset
        self.streamed = False  # chunks came from the model (not only a stored reply)
        self.reply: Any = None
        self.error: BaseException | None = None
        self._wake = asyncio.Event()
        self._waiting = 0  # followers waiting for the next chunk: no event to swap without them
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    @property
    def text(self) -> str:
        """The reply streamed so far."""
        return "".join(self.chunks)

    def cancel(self, policy: BusyPolicy) -> bool:
        """Cancel the turn for a message with ``policy``; False once its model call finished."""
        if self.phase == "committing" or self._done:
            return False
        self.cancelled = self.cancelled or policy
        if self.task is not None:
            self.task.cancel()
        return True

    def add(self, text: str) -> None:
        """A chunk of the reply; wakes the followers."""
        if not text:
            return
        self.chunks.append(text)
        self.ends.append((self.ends[-1] if self.ends else 0) + len(text))
        self._notify()

    def finish(self, reply: Any = None, error: BaseException | None = None) -> None:
        """The turn's outcome: its reply, or the error its caller got."""
        self.reply, self.error, self._done = reply, error, True
        self._notify()

    def _notify(self) -> None:
        if self._waiting:
            self._wake.set()
            self._wake = asyncio.Event()

    async def follow(self, offset: int = 0) -> AsyncIterator[tuple[str, int]]:
        """``(chunk, end offset)`` for the reply after ``offset`` characters, live, until the
        turn finishes. A chunk that ``offset`` falls inside is yielded from there."""
        i = bisect.bisect_right(self.ends, offset)
        while True:
            while i < len(self.chunks):
                start = self.ends[i] - len(self.chunks[i])
                piece = self.chunks[i][max(offset - start, 0):]
                i += 1
                if piece:
                    yield piece, self.ends[i - 1]
            if self._done:
                return
            self._waiting += 1
            try:
                await self._wake.wait()
            finally:
                self._waiting -= 1

    def outcome(self) -> Any:
        """The reply of a finished turn, or its error raised."""
        if self.error is not None:
            raise self.error
        if not self._done:
            raise RuntimeNotReady(f"turn {self.turn_id!r} has not finished")
        return self.reply
