"""The benchmark suite, importable: ``repertory bench`` and the scripts in ``benchmarks/`` run it.

Each benchmark module has ``run(quick) -> list[Figure]``: it measures its baseline in the same
run, prints rich tables, and returns every figure beside that baseline and the ratio of the two.
Peers the store benchmark compares against come with ``pip install 'repertory[bench]'``; a peer
that is not installed is skipped with the line that installs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from repertory.bench.common import Figure

__all__ = ["SUITES", "Figure", "suite"]

# name -> module under repertory.bench; `all` runs them in this order (cheapest first).
SUITES: dict[str, str] = {"store": "repertory.bench.store", "runtime": "repertory.bench.runtime",
                          "batch": "repertory.bench.batch"}


def suite(name: str) -> Callable[[bool], list[Figure]]:
    """The ``run(quick)`` of the benchmark ``name`` (one of :data:`SUITES`)."""
    from repertory.errors import InvalidInput

    if name not in SUITES:
        raise InvalidInput(f"no benchmark named {name!r}: choose one of {', '.join(SUITES)} (or all)")
    return importlib.import_module(SUITES[name]).run
