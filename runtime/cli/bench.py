"""``repertory bench``: the benchmark suite, each figure beside its same-run baseline."""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from repertory.cli.common import exit_on_error

__all__ = ["bench"]


class Which(str, Enum):
    runtime = "runtime"
    store = "store"
    batch = "batch"
    all = "all"


def _ratio_text(value: float) -> str:
    return f"{value:,.2f}×" if value < 100 else f"{value:,.0f}×"


def _value_text(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if abs(value) >= 100 or value == math.floor(value) else f"{value:,.2f} {unit}"


def _summary(figures: list) -> Table:
    table = Table(title="repertory bench: figures and their same-run baselines", title_justify="left",
                  caption="ratio = figure ÷ baseline: below 1 is faster for a time, above 1 is more for a rate (/s)",
                  caption_justify="left")
    for column in ("benchmark", "figure", "value", "baseline", "baseline value", "ratio"):
        table.add_column(column, justify="right" if column in ("value", "baseline value", "ratio") else "left",
                         overflow="fold")
    for f in figures:
        table.add_row(f.benchmark, f.name, _value_text(f.value, f.unit), f.baseline,
                      _value_text(f.baseline_value, f.unit), _ratio_text(f.ratio))
    return table


def bench(
    which: Annotated[Which, typer.Argument(help="Which benchmark: runtime, store, batch, or all of them.")] = Which.all,
    quick: Annotated[bool, typer.Option("--quick", help="A short configuration of each (store: seconds; "
                                        "runtime, batch: a few minutes on 2 busy cores).")] = False,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="Also write the figures to this file as JSON.",
                                                      dir_okay=False)] = None,
    sessions_served: Annotated[Optional[int], typer.Option(
        "--sessions-served", min=1, help="runtime only: one host serves N stored sessions under a resident cap "
                                         "(--resident-cap), reporting activations/s and RSS.")] = None,
    resident_cap: Annotated[int, typer.Option("--resident-cap", min=1,
                                              help="resident sessions with --sessions-served.")] = 1000,
) -> None:
    """Run the benchmarks with their same-run baselines; print their tables and the ratios."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    import repertory
    from repertory.bench import SUITES, suite
    from repertory.bench.common import console, load_info

    names = list(SUITES) if which is Which.all else [which.value]
    with exit_on_error():
        if json_file is not None and not json_file.parent.is_dir():
            raise repertory.InvalidInput(f"--json {json_file}: the folder {json_file.parent} does not exist; "
                                         "create it or give another path")
        if sessions_served is not None and which is not Which.runtime:
            raise repertory.InvalidInput("--sessions-served is a runtime benchmark: run `repertory bench runtime "
                                         "--sessions-served N`")
        figures = []
        load_start = load_info()
        # The bar shares the benchmarks' console, so their progress lines and tables print above it.
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            task = progress.add_task("benchmarks", total=len(names))
            for name in names:
                progress.update(task, description=f"bench {name}{' (quick)' if quick else ''}")
                if sessions_served is not None and name == "runtime":
                    from repertory.bench.served import run as served

                    figures += served(sessions_served, resident_cap)
                else:
                    figures += suite(name)(quick)
                progress.advance(task)
        console.print(_summary(figures))
        if json_file is not None:
            doc = {"quick": quick, "benchmarks": names, "load_start": load_start, "load_end": load_info(),
                   "figures": [f.as_dict() for f in figures]}
            json_file.write_text(json.dumps(doc, indent=2) + "\n")
            console.print(f"figures written to {json_file}")
