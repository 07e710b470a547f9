"""The inspector's session list: search, filters and paging over a store's listing, server-side.

A store lists sessions as :class:`~repertory.stores.base.SessionInfo` lines (key, revision,
message count, times), which is enough to search, filter by activity and TTL, count and page
100k sessions. What a line lacks (turns, agent, size) is read from the stored record of the
sessions on the page only; the agent filter needs it for every candidate, so it reads records
lazily, newest first, until the page is full or :data:`AGENT_SCAN_LIMIT` records were read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from repertory.errors import InvalidInput
from repertory.ids import RESERVED_KEY_PREFIX
from repertory.state.session_state import SessionState
from repertory.stores.base import SessionInfo, SessionRecord

__all__ = ["AGENT_SCAN_LIMIT", "MAX_PAGE", "SessionQuery", "SessionRow", "agent_names", "filter_infos", "page", "row_of"]

MAX_PAGE = 200
AGENT_SCAN_LIMIT = 5000
TtlFilter = Literal["any", "expiring", "pinned"]


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """What the list shows: ``q`` searches session ids and user ids (substring, case-insensitive);
    ``active_within``/``idle_for`` are seconds since the last activity; ``ttl`` keeps sessions
    that expire or that never do; ``agent`` keeps sessions that ran an agent of that name."""

    q: str = ""
    user_id: str | None = None
    agent: str | None = None
    active_within: float | None = None
    idle_for: float | None = None
    ttl: TtlFilter = "any"
    offset: int = 0
    limit: int = 50

    def __post_init__(self) -> None:
        if not 0 < self.limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}; page with offset")
        if self.offset < 0:
            raise InvalidInput("offset must not be negative")
        if self.ttl not in ("any", "expiring", "pinned"):
            raise InvalidInput("ttl must be 'any', 'expiring' or 'pinned'")
        for name in ("active_within", "idle_for"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidInput(f"{name} must be a number of seconds, not negative")


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One line of the inspector's list."""

    key: str
    session_id: str
    user_id: str | None
    n_messages: int
    updated_at: float
    expires_at: float | None
    revision: int
    host: str
    turns: int | None = None
    agents: tuple[str, ...] = ()
    size_bytes: int | None = None


def filter_infos(infos: Sequence[SessionInfo], query: SessionQuery, now: float) -> list[SessionInfo]:
    """The listed sessions that match ``query`` (all but the agent filter), newest activity first."""
    needle = query.q.strip().lower()
    out = []
    for i in infos:
        if i.key.startswith(RESERVED_KEY_PREFIX):
            continue  # shared states and interop data: not sessions
        if needle and needle not in i.key.lower():  # the key is "user/session": both are searched
            continue
        idle = now - i.updated_at
        if query.active_within is not None and idle > query.active_within:
            continue
        if query.idle_for is not None and idle < query.idle_for:
            continue
        if query.ttl == "expiring" and i.expires_at is None or query.ttl == "pinned" and i.expires_at is not None:
            continue
        out.append(i)
    out.sort(key=lambda i: i.updated_at, reverse=True)
    return out


def agent_names(meta: dict[str, Any]) -> tuple[str, ...]:
    """The names of the agents a session stores (its default agent first)."""
    names = []
    agent = meta.get("agent")
    if isinstance(agent, dict) and agent.get("name"):
        names.append(str(agent["name"]))
    names.extend(str(n) for n in (meta.get("agents") or {}) if str(n) not in names)
    return tuple(names)


def row_of(info: SessionInfo, host: str, record: SessionRecord | None) -> SessionRow:
    """A list line; with the stored record, its turns, agents and size too."""
    user_id, _, session_id = info.key.rpartition("/")
    row = SessionRow(info.key, session_id, user_id or None, info.n_messages, info.updated_at, info.expires_at,
                     info.revision, host)
    if record is None:
        return row
    meta = SessionState.from_record(record).meta
    size = len(record.meta) + sum(len(m) for m in record.messages)
    return SessionRow(row.key, row.session_id, row.user_id, len(record.messages), record.updated_at,
                      record.expires_at, record.revision, host, int(meta.get("turns", 0)), agent_names(meta), size)


async def page(infos: Sequence[SessionInfo], query: SessionQuery, now: float, host_of: Callable[[str], str],
               load: Callable[[str], Awaitable[SessionRecord | None]]) -> tuple[int | None, list[SessionRow], bool]:
    """(total, rows, complete): one page of the sessions that match; ``total`` is None when the
    agent filter stopped before reading every candidate (``complete`` False)."""
    matched = filter_infos(infos, query, now)
    if query.agent is None:
        rows = []
        for info in matched[query.offset:query.offset + query.limit]:
            rows.append(row_of(info, host_of(info.key), await load(info.key)))
        return len(matched), rows, True
    found: list[SessionRow] = []
    skipped = 0
    for n, info in enumerate(matched):
        if n >= AGENT_SCAN_LIMIT:
            return None, found, False
        row = row_of(info, host_of(info.key), await load(info.key))
        if query.agent not in row.agents:
            continue
        if skipped < query.offset:
            skipped += 1
            continue
        found.append(row)
        if len(found) == query.limit:
            return None, found, False
    return skipped + len(found), found, True
