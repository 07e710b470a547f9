"""Keys that start with '~' (shared states, LangGraph threads, Agents SDK sessions) are not
sessions: listing, export and cleanup leave them alone, and no session id can take them."""

from __future__ import annotations

import asyncio
import time

import pytest

import repertory
from repertory.errors import InvalidSessionId
from repertory.ids import validate_session_id
from repertory.stores import StateWrite, open_store


def _write_raw(url: str, key: str) -> None:
    """A row under ``key`` in the store's own session table, as another subsystem might keep."""
    async def go() -> None:
        store = open_store(url)
        try:
            await store.commit(StateWrite(key, 0, b"\x80", updated_at=time.time() - 86400 * 400))
        finally:
            await store.close()
    asyncio.run(go())


@pytest.mark.parametrize("sid", ["~agents/x", "~x", "~lg/t"])
def test_no_session_id_starts_with_a_tilde(sid):
    with pytest.raises(InvalidSessionId):
        validate_session_id(sid)


def test_tilde_keys_are_not_listed_exported_or_cleaned(local, tmp_path):
    _write_raw(local.url, "~agents/x")
    _write_raw(local.url, "~other/y")
    repertory.Session(session_id="visible").chat("hi")
    assert [s.session_id for s in repertory.list_sessions()] == ["visible"]
    repertory.export_sessions(tmp_path / "out.jsonl")
    assert b"~" not in (tmp_path / "out.jsonl").read_bytes()
    assert [s.session_id for s in repertory.cleanup(older_than=0, dry_run=True)] == ["visible"]
