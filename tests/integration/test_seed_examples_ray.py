"""Every seed-page snippet in examples/ runs as written on the default runtime (Ray).

tests/unit/test_seed_examples.py runs them on the local runtime; users run them on Ray, where
an agent's tools, memory settings and shared state must cross to actors.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("seed_*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_seed_example_runs_on_ray(path, runtime, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the snippets write sessions/ and checkpoints/ relative to cwd
    os.makedirs("sessions", exist_ok=True)
    runpy.run_path(str(path), run_name="__main__")
