"""The ``repertory`` command line: ``demo``, ``chat``, ``batch``, ``sessions ls|show|rm|cleanup|export|import``."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

if TYPE_CHECKING:
    from repertory.admin.sessions import SessionSummary

app = typer.Typer(help="repertory: stateful LLM agent sessions on Ray.", no_args_is_help=True,
                  add_completion=False)
sessions_app = typer.Typer(help="List, inspect, delete, clean up, export and import stored sessions.",
                           no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")
console = Console()
err_console = Console(stderr=True)


def _history_table(history: list[dict]) -> Table:
    table = Table(title="Stored history", show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("role", style="bold")
    table.add_column("content")
    for i, m in enumerate(history):
        table.add_row(str(i), m.get("role", ""), escape(str(m.get("content", ""))))
    return table


@app.command()
def demo(
    store: Optional[str] = typer.Option(None, help="Store URL (default: sqlite in $REPERTORY_HOME or ./.repertory)"),
    local: bool = typer.Option(False, "--local", help="Run in this process without Ray."),
) -> None:
    """Walk through the basics offline: a session that remembers, across a runtime restart."""
    import repertory
    from repertory import Agent, Session
    from repertory.stores.urls import redact_url

    runtime = "local" if local else "ray"
    console.print(Panel.fit(
        "repertory demo: sessions that remember, on the embedded defaults\n"
        f"(runtime: {runtime}, model: the offline demo model '{repertory.DEMO_MODEL}', "
        "which quotes what reached its prompt; it is not a language model)", style="cyan"))
    with console.status("Starting the runtime (local Ray, SQLite store)..."):
        t0 = time.perf_counter()
        rt = repertory.init(store=store, runtime=runtime)
        console.print(f"runtime up in {time.perf_counter() - t0:.1f}s, store: [bold]{escape(redact_url(rt.settings.store))}[/]")
    session_id = str(uuid.uuid4())
    agent = Agent(name="Assistant", instructions="You are a helpful assistant with memory")
    with console.status("Starting the agent..."):
        session = Session(session_id=session_id, agent=agent)
    console.print(f"session_id = [bold]{session_id}[/]")
    for msg in ("My name is Alice", "I prefer Python over JavaScript", "What's my name?"):
        console.print(f"[bold green]you[/]   {escape(msg)}")
        with console.status("thinking..."):
            reply = session.chat(msg)
        console.print(f"[bold blue]agent[/] {escape(reply)}")
    console.print("\n[bold]Restarting the runtime[/]: every acknowledged turn is already in the store.")
    with console.status("shutting down and starting again..."):
        repertory.shutdown()
        repertory.init(store=store, runtime=runtime)
        again = Session(session_id=session_id, agent=agent)
    for msg in ("What's my favourite programming language?", "What did we discuss earlier?"):
        console.print(f"[bold green]you[/]   {escape(msg)}")
        with console.status("thinking..."):
            reply = again.chat(msg)
        console.print(f"[bold blue]agent[/] {escape(reply)}")
    console.print("[bold]Streaming[/] the next reply chunk by chunk:")
    console.print("[bold green]you[/]   Do you remember my name?")
    console.print("[bold blue]agent[/] ", end="")
    for chunk in again.stream("Do you remember my name?"):
        console.print(chunk, end="", markup=False, highlight=False)
    console.print()
    console.print(_history_table(again.get_history()))
    repertory.shutdown()
    console.print(f"Continue this session with: [bold]repertory chat --session {session_id}[/]")


@app.command()
def chat(
    session: Optional[str] = typer.Option(None, "--session", "-s", help="Session id to continue (default: new)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="litellm model string (default: demo model)."),
    user: Optional[str] = typer.Option(None, "--user", help="User id scoping the session."),
    instructions: Optional[str] = typer.Option(
        None, help="The agent's instructions (default: a continued session's own, else a helpful assistant)."),
    store: Optional[str] = typer.Option(None, help="Store URL."),
    local: bool = typer.Option(False, "--local", help="Run in this process without Ray."),
) -> None:
    """Chat with an agent on a persistent session (Ctrl-D or /quit to leave).

    A continued session (--session) keeps its stored agent unless --model or --instructions
    replace it."""
    import repertory
    from repertory import Agent, RepertoryError, Session

    with console.status("Starting the runtime..."):
        repertory.init(store=store, runtime="local" if local else "ray")
        agent = None
        if session is None or model is not None or instructions is not None:
            agent = Agent(name="Assistant", instructions=instructions or "You are a helpful assistant.",
                          model=model or os.environ.get("REPERTORY_MODEL"))
        s = Session(session_id=session, agent=agent, user_id=user)
        n = len(s.get_history())
        try:
            agent = s.agent  # a continued session's stored agent
        except RepertoryError as exc:
            repertory.shutdown()
            console.print(f"[red]{type(exc).__name__}[/]: {exc}")
            raise typer.Exit(1) from None
    console.print(f"session [bold]{s.session_id}[/] ({n} stored messages), model [bold]{agent.model}[/]. "
                  "Type /history, /quit.")
    try:
        while True:
            try:
                line = console.input("[bold green]you[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if line in ("/quit", "/exit"):
                break
            if line == "/history":
                console.print(_history_table(s.get_history()))
                continue
            if not line:
                continue
            try:
                console.print("[bold blue]agent[/] ", end="")
                for chunk in s.stream(line):
                    console.print(chunk, end="", markup=False, highlight=False)
                console.print()
            except RepertoryError as exc:
                console.print(f"\n[red]{type(exc).__name__}[/]: {exc}")
    finally:
        repertory.shutdown()
    console.print(f"Saved. Continue with: repertory chat --session {s.session_id}")


# -- sessions ---------------------------------------------------------------------------
StoreOpt = Annotated[Optional[str], typer.Option("--store", help="Store URL (default: sqlite in $REPERTORY_HOME or ./.repertory).")]
LocalOpt = Annotated[bool, typer.Option("--local", help="Run in this process without Ray.")]
UserOpt = Annotated[Optional[str], typer.Option("--user", "-u", help="User id scoping the session.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")]
_MAX_ROWS = 50  # rows shown when listing what cleanup removes


@contextmanager
def _errors() -> Iterator[None]:
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
def _runtime(store: str | None, local: bool) -> Iterator[None]:
    import repertory

    with console.status("Starting the runtime..."):
        repertory.init(store=store, runtime="local" if local else "ray")
    try:
        yield
    finally:
        repertory.shutdown()


def _ago(when: datetime) -> str:
    secs = (datetime.now(timezone.utc) - when).total_seconds()
    if secs < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{int(secs // size)}{unit} ago"
    return f"{int(secs)}s ago"


def _expires(when: datetime | None) -> str:
    if when is None:
        return "never"
    left = (when - datetime.now(timezone.utc)).total_seconds()
    if left <= 0:
        return "expired"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            return f"in {int(left // size)}{unit}"
    return f"in {int(left)}s"


def _sessions_table(rows: list[SessionSummary], title: str, max_rows: int | None = None) -> Table:
    table = Table(title=title)
    table.add_column("session id", style="bold", overflow="fold")
    table.add_column("user", overflow="fold")
    table.add_column("messages", justify="right")
    table.add_column("updated")
    table.add_column("expires")
    for r in rows[:max_rows]:
        table.add_row(escape(r.session_id), escape(r.user_id or "-"), str(r.n_messages), _ago(r.updated_at),
                      _expires(r.expires_at))
    if max_rows is not None and len(rows) > max_rows:
        table.caption = f"... and {len(rows) - max_rows} more"
    return table


def _label(session_id: str, user: str | None) -> str:
    return repr(session_id) if user is None else f"{session_id!r} (user {user!r})"


@contextmanager
def _progress(description: str) -> Iterator[Callable[[int, int], None]]:
    from rich.progress import Progress

    # Only on a terminal: piped output gets the summary line, not bar redraws.
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@sessions_app.command("ls")
def sessions_ls(
    prefix: Annotated[str, typer.Option(help="Only keys starting with this (session id, or user/session).")] = "",
    user: UserOpt = None,
    older_than: Annotated[Optional[str], typer.Option(help="Only sessions idle this long: 30d, 12h, 45m, 2w.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Show at most this many.")] = None,
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """List stored sessions, least recently updated first."""
    from repertory.admin.sessions import list_sessions, parse_duration

    with _errors():
        age = parse_duration(older_than) if older_than else None
        with _runtime(store, local):
            rows = list_sessions(prefix=prefix, user_id=user, older_than=age, limit=limit)
    if not rows:
        console.print("No sessions found.")
        return
    console.print(_sessions_table(rows, f"{len(rows)} session(s)"))


def _fmt_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_data(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=repr) if value else "-"


@sessions_app.command("show")
def sessions_show(
    session_id: Annotated[str, typer.Argument(help="The session id.")],
    user: UserOpt = None,
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """Show a session's history and state: user data, metadata, checkpoints, versions."""
    from repertory import Session, SessionNotFound

    with _errors(), _runtime(store, local):
        s = Session(session_id, user_id=user)
        if not s.exists():
            raise SessionNotFound(f"session {_label(session_id, user)} not found; "
                                  "list the stored ones with: repertory sessions ls")
        history, state = s.get_history(), s.get_state()
        checkpoints, versions = s.list_checkpoints(), s.list_versions()
    console.print(_history_table(history))
    info = Table(title=f"Session {escape(_label(session_id, user))}", show_header=False)
    info.add_column(style="bold")
    info.add_column(overflow="fold")
    rows = [("created", _fmt_time(state["created_at"])), ("updated", _fmt_time(state["updated_at"])),
            ("turns", str(state["turns"])), ("revision", str(state["revision"])),
            ("user_data", _fmt_data(state["user_data"])), ("user_profile", _fmt_data(state["user_profile"])),
            ("metadata", _fmt_data(state["metadata"])),
            ("checkpoints", ", ".join(f"{c['id']} (turn {c['turn']}{': ' + c['label'] if c['label'] else ''})"
                                      for c in checkpoints) or "-"),
            ("versions", ", ".join(f"{v['version']} (turn {v['turn']}{': ' + v['description'] if v['description'] else ''})"
                                   for v in versions) or "-")]
    for name, value in rows:
        info.add_row(name, escape(value))
    console.print(info)


@sessions_app.command("rm")
def sessions_rm(
    session_id: Annotated[str, typer.Argument(help="The session id.")],
    user: UserOpt = None,
    yes: YesOpt = False,
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """Delete a session with its checkpoints (asks first unless --yes)."""
    from repertory import Session, SessionNotFound

    label = _label(session_id, user)
    with _errors(), _runtime(store, local):
        s = Session(session_id, user_id=user)
        if not s.exists():
            raise SessionNotFound(f"session {label} not found; nothing to delete")
        if not yes and not typer.confirm(f"Delete session {label} and its checkpoints?"):
            console.print("Aborted: nothing was deleted.")
            raise typer.Exit(1)
        s.delete()
    console.print(f"Deleted session {escape(label)}.")


@sessions_app.command("cleanup")
def sessions_cleanup(
    older_than: Annotated[str, typer.Option(help="Remove sessions not updated for this long: 30d, 12h, 2w.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete; without it, only show what would go.")] = False,
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """Remove sessions idle for --older-than (a dry run unless --yes)."""
    from repertory.admin.sessions import cleanup, parse_duration

    with _errors():
        age = parse_duration(older_than)
        with _runtime(store, local):
            rows = cleanup(age, dry_run=not yes)
    if not rows:
        console.print(f"No session has been idle for {escape(older_than)}; nothing to remove.")
    elif not yes:
        console.print(_sessions_table(rows, f"Would remove {len(rows)} session(s) idle for {escape(older_than)}",
                                      _MAX_ROWS))
        console.print(f"Dry run: nothing was deleted. Add --yes to delete these {len(rows)} session(s).")
    else:
        console.print(_sessions_table(rows, f"Removed {len(rows)} session(s)", _MAX_ROWS))
        console.print(f"Removed {len(rows)} session(s) idle for {escape(older_than)}.")


@sessions_app.command("export")
def sessions_export(
    out: Annotated[Path, typer.Argument(help="A .jsonl file, or a folder for one .rps file per session.")],
    prefix: Annotated[str, typer.Option(help="Only keys starting with this.")] = "",
    checkpoints: Annotated[bool, typer.Option("--checkpoints/--no-checkpoints",
                                              help="Include checkpoints and versions.")] = True,
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """Export sessions to a .jsonl file or a folder of session files."""
    from repertory.admin.sessions import export_sessions

    with _errors(), _runtime(store, local), _progress("exporting") as progress:
        n = export_sessions(out, prefix=prefix, with_checkpoints=checkpoints, progress=progress)
    console.print(f"Exported {n} session(s) to {escape(str(out))}.")


@sessions_app.command("import")
def sessions_import(
    src: Annotated[Path, typer.Argument(help="A .jsonl export, or a folder of .rps session files.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace sessions that already exist.")] = False,
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """Import sessions from an export; existing ones are skipped unless --overwrite."""
    from repertory.admin.sessions import import_sessions

    with _errors(), _runtime(store, local), _progress("importing") as progress:
        result = import_sessions(src, overwrite=overwrite, progress=progress)
    console.print(f"Imported {int(result)} session(s) from {escape(str(src))}.")
    if result.skipped:
        shown = ", ".join(result.skipped[:10]) + (" ..." if len(result.skipped) > 10 else "")
        console.print(f"[yellow]Skipped {len(result.skipped)} existing session(s)[/] (add --overwrite to "
                      f"replace them): {escape(shown)}")


# -- batch ------------------------------------------------------------------------------
@app.command("batch")
def batch_cmd(
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
    with _errors():
        agent_map = load_agents(agents) if agents is not None else None  # a bad file fails before start-up
        with _runtime(store, local), Progress(*columns, console=console, disable=not console.is_terminal) as bar:
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


if __name__ == "__main__":
    app()
