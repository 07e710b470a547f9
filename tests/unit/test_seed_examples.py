"""Every seed-page snippet in examples/ runs on repertory (local runtime, SQLite)."""

import os
import runpy
from pathlib import Path

import pytest

import repertory

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("seed_*.py"))


@pytest.fixture
def local_runtime(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the snippets write sessions/ and checkpoints/ relative to cwd
    os.makedirs("sessions", exist_ok=True)
    repertory.init(runtime="local", store=f"sqlite:///{tmp_path / 'state.db'}")
    yield
    repertory.shutdown()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_seed_example_runs(path, local_runtime):
    runpy.run_path(str(path), run_name="__main__")
