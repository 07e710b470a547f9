"""The interop examples run as written, on the default store and on Redis (docs/interop.md
shows them)."""

from __future__ import annotations

import asyncio
import re
import runpy
import sys
import uuid
from pathlib import Path

import pytest

from redis_server import TEST_DB_URL, drop_redis_keys

EXAMPLES = Path(__file__).parents[2] / "examples"
pytest.importorskip("langgraph")
pytest.importorskip("agents")


@pytest.fixture(params=["default", pytest.param("redis", marks=pytest.mark.redis)])
def store_arg(request, tmp_path, monkeypatch):
    """No argument (the runtime's default store, under a private REPERTORY_HOME) or a Redis URL
    with a private key prefix."""
    monkeypatch.setenv("REPERTORY_HOME", str(tmp_path / "home"))
    if request.param == "default":
        yield []
        assert (tmp_path / "home" / "state.db").exists()
        return
    prefix = f"rptest-{uuid.uuid4().hex}"
    yield [f"{TEST_DB_URL}?prefix={prefix}"]
    asyncio.run(drop_redis_keys(prefix))


@pytest.mark.parametrize("name", ["interop_langgraph.py", "interop_openai_agents.py"])
def test_example_runs(name, store_arg, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [name, *store_arg])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    out = capsys.readouterr().out
    assert "Alice" in out


DOC_BLOCKS = re.findall(r"```python\n(.*?)```", (Path(__file__).parents[2] / "docs" / "interop.md").read_text(), re.S)


def test_the_doc_has_examples():
    assert len(DOC_BLOCKS) == 2


@pytest.mark.parametrize("index", range(len(DOC_BLOCKS)))
def test_doc_example_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default store: ./.repertory/state.db
    monkeypatch.delenv("REPERTORY_HOME", raising=False)
    exec(compile(DOC_BLOCKS[index], f"docs/interop.md python block {index + 1}", "exec"), {"__name__": "__doc__"})
    assert (tmp_path / ".repertory" / "state.db").exists() and capsys.readouterr().out.strip()
