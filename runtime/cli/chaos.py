"""``repertory chaos``: a seeded chaos run with its verdict; exit 1 on any anomaly."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from repertory.cli.common import StoreOpt, console, exit_on_error

__all__ = ["chaos", "parse_duration"]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"5m"``, ``"1h"`` -> seconds."""
    from repertory.errors import InvalidInput

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if m is None or float(m.group(1)) <= 0:
        raise InvalidInput(f"duration {text!r}: give a positive number of seconds, or e.g. 60s, 5m")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _summary(report) -> Table:
    table = Table(title=f"chaos run, seed {report.config.seed}: {report.seconds:.0f} s")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("turns acknowledged", str(report.turns))
    table.add_row("state operations acknowledged", str(report.ops))
    table.add_row("given up (unacknowledged)", str(report.unacknowledged))
    table.add_row("errors retried", ", ".join(f"{k} {v}" for k, v in report.errors.most_common()) or "0")
    for kind, n in sorted(report.faults_by_kind().items()):
        table.add_row(f"faults: {kind}", str(n))
    table.add_row("faults not injected", str(len(report.failed_faults)))
    style = "green" if report.ok else "red"
    table.add_row(f"[{style}]anomalies[/]", f"[{style}]{len(report.anomalies)}[/]")
    return table


def _recoveries(report) -> Table:
    table = Table(title="recovery per fault (to the next acknowledged turn on a session it hit)")
    for col in ("#", "fault", "target", "recovery s"):
        table.add_column(col, justify="right" if col in ("#", "recovery s") else "left")
    for i, (fault, seconds) in enumerate(report.faults):
        table.add_row(str(i), fault.kind, fault.target, "-" if seconds is None else f"{seconds:.2f}")
    return table


def chaos(
    seed: Annotated[int, typer.Option("--seed", help="Seeds the fault schedule and the clients.")] = 1,
    duration: Annotated[str, typer.Option("--duration", help="How long the load runs: 60s, 5m, ...")] = "60s",
    sessions: Annotated[int, typer.Option("--sessions", help="Sessions under load.")] = 8,
    clients: Annotated[int, typer.Option("--clients", help="Concurrent clients (each owns some sessions).")] = 4,
    store: StoreOpt = None,
    faults: Annotated[str, typer.Option("--faults", help="Fault kinds: host, replica, store-actor, "
                                        "redis-restart (a private Redis, no --store), redis-failover (a private 3+3 "
                                        "Redis Cluster with wait=1, no --store), node (a worker node of the run's own "
                                        "3-node Ray cluster removed and a fresh one added).")] = "host,replica,store-actor",
    every: Annotated[float, typer.Option("--every", help="About one fault per this many seconds.")] = 5.0,
    workdir: Annotated[Optional[Path], typer.Option("--workdir", help="Where the log (acks.jsonl), the "
                                                    "SQLite file and the private Redis go (default: a temp dir).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the figures to this file as JSON.")] = None,
) -> None:
    """Run turns and state operations under seeded faults, then check every session against the
    acknowledgement log; exit 1 on any anomaly."""
    from repertory.chaos.faults import parse_kinds
    from repertory.chaos.run import ChaosConfig, run_chaos

    with exit_on_error():
        config = ChaosConfig(seed=seed, duration=parse_duration(duration), sessions=sessions, clients=clients,
                             store=store, faults=parse_kinds(faults), every=every, workdir=workdir)
        with console.status(f"Chaos run, seed {seed}, {config.duration:.0f} s..."):
            report = run_chaos(config)
    console.print(_summary(report))
    console.print(_recoveries(report))
    for failed in report.failed_faults:
        console.print(f"[yellow]not injected[/]: {escape(failed)}", highlight=False)
    for a in report.anomalies[:50]:
        console.print(f"[red]{a.kind}[/] {escape(a.session)}: {escape(a.detail)}", highlight=False)
    console.print(f"log: {report.log_path}", highlight=False)
    if json_out is not None:
        json_out.write_text(json.dumps(report.figures(), indent=2))
    if not report.ok:
        raise typer.Exit(1)
