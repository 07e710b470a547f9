"""Two applications on one Ray cluster with different stores are isolated (issue 16 item 3)."""

from __future__ import annotations

import os
import sqlite3

import pytest

from repertory import Agent, Session
from repertory.config import Settings
from repertory.runtimes.ray import RayRuntime

pytestmark = pytest.mark.ray


def _keys(path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT key FROM sessions ORDER BY key")]


def test_two_drivers_with_different_stores_share_no_actors(ray_cluster, tmp_path):
    namespace = f"scoped-{os.getpid()}"
    a = RayRuntime(Settings(store=f"sqlite:///{tmp_path / 'a.db'}", namespace=namespace, num_hosts=1))
    b = RayRuntime(Settings(store=f"sqlite:///{tmp_path / 'b.db'}", namespace=namespace, num_hosts=1))
    agent = Agent("Null", model="repertory/null")
    try:
        Session("only-a", agent=agent, runtime=a).chat("hello a")
        Session("only-b", agent=agent, runtime=b).chat("hello b")
        assert _keys(tmp_path / "a.db") == ["only-a"]
        assert _keys(tmp_path / "b.db") == ["only-b"]
        b.shutdown()
        b = None
        # B's shutdown stopped only B's actors: A's hosts still answer.
        assert Session("only-a", agent=agent, runtime=a).chat("still there") == "[null model] ok"
        assert len(Session("only-a", agent=agent, runtime=a).get_history()) == 4
    finally:
        if b is not None:
            b.shutdown()
        a.shutdown()


def test_same_store_and_namespace_share_the_hosts(ray_cluster, tmp_path):
    settings = Settings(store=f"sqlite:///{tmp_path / 'one.db'}", namespace=f"shared-{os.getpid()}", num_hosts=1)
    a, b = RayRuntime(settings), RayRuntime(settings)
    try:
        assert [s["pid"] for s in a.stats()] == [s["pid"] for s in b.stats()]
        assert b._owned == []  # B joined A's actors: it will not stop them
    finally:
        b.shutdown()
        a.shutdown()
