"""The interop adapters beside repertory's default runtime (Ray, local): with no store given
they use the runtime's store, sessions chatted through the Ray hosts and LangGraph threads /
Agents sessions share the SQLite file, and repertory's listing sees only its sessions."""

from __future__ import annotations

import asyncio

import pytest

import repertory

pytest.importorskip("langgraph")
pytest.importorskip("agents")

from langgraph.checkpoint.base import empty_checkpoint  # noqa: E402

from repertory.interop.langgraph import RepertorySaver  # noqa: E402
from repertory.interop.openai_agents import RepertorySession  # noqa: E402


def test_adapters_share_the_ray_runtimes_store(runtime, tmp_path):
    session = repertory.Session(session_id="on-ray")
    session.chat("My name is Alice")
    with RepertorySaver() as saver:
        assert saver.store.url == f"sqlite:///{tmp_path / 'state.db'}"
        cp = empty_checkpoint()
        cp["channel_values"] = {"n": 1}
        saved = saver.put({"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}, cp, {"step": 1}, {})
    agents = RepertorySession("a1")

    async def add() -> None:
        await agents.add_items([{"role": "user", "content": "hi"}])
        await agents.aclose()
    asyncio.run(add())
    assert "Alice" in session.chat("What's my name?")  # the hosts write the same file meanwhile
    assert [s.session_id for s in repertory.list_sessions()] == ["on-ray"]
    with RepertorySaver() as saver:
        assert saver.get_tuple(saved).checkpoint["channel_values"] == {"n": 1}
    again = RepertorySession("a1")
    try:
        assert asyncio.run(again.get_items()) == [{"role": "user", "content": "hi"}]
    finally:
        again.close()
