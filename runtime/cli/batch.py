"""``repertory batch``: many sessions or workflows from a JSONL file, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from repertory.cli.common import LocalOpt, StoreOpt, console, err_console, exit_on_error, runtime_for

__all__ = ["batch"]


def batch(
    input: Annotated[Path, typer.Argument(help="Jobs, one JSON object a line (see repertory.batch).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results, one JSON line per job; "
                                      "re-run with the same file to resume.")],
    agents: Annotated[Optional[Path], typer.Option("--agents", "-a", help="Agents file (YAML or JSON): "
                                                   "name, instructions, model, tools.")] = None,
    default_agent: Annotated[Optional[str], typer.Option("--default-agent",
                                                         help="Agent for jobs that name none.")] = None,
    concurrency: Annotated[int, typer.Option(help="Jobs running at once.", min=1)] = 64,
    timeout: Annotated[float, typer.Option(help="Seconds per attempt of a job (0: no limit).", min=0)] = 300.0,
    retries: Annotated[int, typer.Option(help="Attempts after a failure, with backoff.", min=0)] = 2,
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """Run many sessions or workflows from a JSONL file; exit 1 if any job failed."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    from repertory._sync import start_on_portal
    from repertory.agents.spec import load_agents
    from repertory.batch.runner import BatchReport, abatch

    columns = (SpinnerColumn(), TextColumn("batch"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[jobs]:.1f} jobs/s  {task.fields[turns]:.1f} turns/s"),
               TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(), TimeRemainingColumn())
    with exit_on_error():
        agent_map = load_agents(agents) if agents is not None else None  # a bad file fails before start-up
        with runtime_for(store, local), Progress(*columns, console=console, disable=not console.is_terminal) as bar:
            task = bar.add_task("batch", total=None, jobs=0.0, turns=0.0, failed=0)

            def show(r: BatchReport) -> None:
                bar.update(task, completed=r.done, total=r.total, jobs=r.jobs_per_s, turns=r.turns_per_s,
                           failed=r.failed)

            # On the portal as a future, so that Ctrl-C can cancel the jobs before the runtime stops
            # (they would otherwise fail against a closed store and write error lines).
            job = start_on_portal(abatch, input, out, agents=agent_map, default_agent=default_agent,
                                  concurrency=concurrency, timeout=timeout or None, retries=retries, progress=show)
            try:
                report = job.result()
            except KeyboardInterrupt:
                job.cancel()
                err_console.print(f"[yellow]interrupted[/]: finished jobs are in {escape(str(out))}; "
                                  "run the same command again to resume")
                raise typer.Exit(130) from None
    console.print(f"Batch {escape(str(input))}: results in {escape(str(out))}")
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for name, value in (("jobs", report.total), ("ok", report.ok), ("failed", report.failed),
                        ("skipped (done before)", report.skipped), ("turns", report.turns),
                        ("seconds", f"{report.seconds:.2f}"), ("jobs/s", f"{report.jobs_per_s:.1f}"),
                        ("turns/s", f"{report.turns_per_s:.1f}")):
        table.add_row(name, f"[red]{value}[/]" if name == "failed" and value else str(value))
    console.print(table)
    if report.failed:
        shown = min(len(report.errors), 10)
        errors = Table(title=f"Failed jobs (first {shown} of {report.failed}; all are in the output)")
        errors.add_column("job", style="bold", overflow="fold")
        errors.add_column("error", overflow="fold")
        for jid, message in list(report.errors.items())[:10]:
            errors.add_row(escape(jid), escape(message if len(message) <= 300 else message[:300] + " ..."))
        console.print(errors)
        raise typer.Exit(1)
