"""What the command groups share: the consoles, common options, error display, the runtime."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["LocalOpt", "StoreOpt", "UserOpt", "YesOpt", "console", "err_console", "exit_on_error",
           "history_table", "progress_bar", "runtime_for"]

console = Console()
err_console = Console(stderr=True)

StoreOpt = Annotated[Optional[str], typer.Option("--store", help="Store URL (default: sqlite in $REPERTORY_HOME or ./.repertory).")]
LocalOpt = Annotated[bool, typer.Option("--local", help="Run in this process without Ray.")]
UserOpt = Annotated[Optional[str], typer.Option("--user", "-u", help="User id scoping the session.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")]


def history_table(history: list[dict]) -> Table:
    table = Table(title="Stored history", show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("role", style="bold")
    table.add_column("content")
    for i, m in enumerate(history):
        table.add_row(str(i), m.get("role", ""), escape(str(m.get("content", ""))))
    return table


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Show repertory's errors as one red line and exit 1: they say what to do, a traceback does not."""
    from repertory import RepertoryError

    try:
        yield
    except RepertoryError as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        err_console.print(f"[red]error[/] ({type(exc).__name__}): {escape(text)}", highlight=False,
                          soft_wrap=True)
        raise typer.Exit(1) from None


@contextmanager
def runtime_for(store: str | None, local: bool) -> Iterator[None]:
    import repertory

    with console.status("Starting the runtime..."):
        repertory.init(store=store, runtime="local" if local else "ray")
    try:
        yield
    finally:
        repertory.shutdown()


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    from rich.progress import Progress

    # Only on a terminal: piped output gets the summary line, not bar redraws.
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
