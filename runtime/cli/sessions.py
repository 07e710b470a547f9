"""``repertory sessions ls|show|rm|cleanup|export|import|rekey``: stored sessions, from the terminal."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from repertory.cli.common import (LocalOpt, StoreOpt, UserOpt, YesOpt, console, exit_on_error, history_table,
                                  progress_bar, runtime_for)

if TYPE_CHECKING:
    from repertory.admin import SessionSummary

__all__ = ["app"]

app = typer.Typer(help="List, inspect, delete, clean up, export and import stored sessions.",
                  no_args_is_help=True)
_MAX_ROWS = 50  # rows shown when listing what cleanup removes


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


def _size(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _sessions_table(rows: list[SessionSummary], title: str, max_rows: int | None = None) -> Table:
    table = Table(title=title)
    sized = any(r.bytes_stored is not None for r in rows)
    table.add_column("session id", style="bold", overflow="fold")
    table.add_column("user", overflow="fold")
    table.add_column("messages", justify="right")
    if sized:
        table.add_column("size", justify="right")
    table.add_column("updated")
    table.add_column("expires")
    for r in rows[:max_rows]:
        size = [_size(r.bytes_stored or 0)] if sized else []
        table.add_row(escape(r.session_id), escape(r.user_id or "-"), str(r.n_messages), *size, _ago(r.updated_at),
                      _expires(r.expires_at))
    if max_rows is not None and len(rows) > max_rows:
        table.caption = f"... and {len(rows) - max_rows} more"
    return table


def _label(session_id: str, user: str | None) -> str:
    return repr(session_id) if user is None else f"{session_id!r} (user {user!r})"


@app.command("ls")
def sessions_ls(
    prefix: Annotated[str, typer.Option(help="Only keys starting with this (session id, or user/session).")] = "",
    user: UserOpt = None,
    older_than: Annotated[Optional[str], typer.Option(help="Only sessions idle this long: 30d, 12h, 45m, 2w.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Show at most this many.")] = None,
    sort: Annotated[str, typer.Option(help="'updated' (least recently updated first) or 'size' (largest "
                                           "first, with the bytes each stores).")] = "updated",
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """List stored sessions, least recently updated first (or largest first: --sort size)."""
    from repertory.admin import list_sessions, parse_duration

    with exit_on_error():
        age = parse_duration(older_than) if older_than else None
        with runtime_for(store, local):
            rows = list_sessions(prefix=prefix, user_id=user, older_than=age, limit=limit, sort=sort)
    if not rows:
        console.print("No sessions found.")
        return
    console.print(_sessions_table(rows, f"{len(rows)} session(s)"))


def _fmt_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_data(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=repr) if value else "-"


def _fmt_latency(perf: dict[str, Any]) -> str:
    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x * 1000:.1f} ms"

    parts = [f"p50 {ms(perf['latency_p50'])}, p95 {ms(perf['latency_p95'])}"]
    parts += [f"{name}: p50 {ms(a['latency_p50'])}, p95 {ms(a['latency_p95'])}" for name, a in perf["agents"].items()]
    return "; ".join(parts)


@app.command("show")
def sessions_show(
    session_id: Annotated[str, typer.Argument(help="The session id.")],
    user: UserOpt = None,
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """Show a session's history and state: user data, metadata, checkpoints, versions."""
    from repertory import Session, SessionNotFound
    from repertory.admin import storage_usage

    with exit_on_error(), runtime_for(store, local):
        s = Session(session_id, user_id=user)
        if not s.exists():
            raise SessionNotFound(f"session {_label(session_id, user)} not found; "
                                  "list the stored ones with: repertory sessions ls")
        history, state = s.get_history(), s.get_state()
        checkpoints, versions = s.list_checkpoints(), s.list_versions()
        stored = storage_usage(session_id, user)
    from repertory.session.analytics import analytics

    stats = analytics(state)
    perf, happy = stats["performance"], stats["satisfaction"]
    console.print(history_table(history))
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
                                   for v in versions) or "-"),
            ("duration", f"{stats['duration']:.1f} s"), ("topics", ", ".join(stats["topics"]) or "-"),
            ("satisfaction", f"{happy['score']:.2f} ({happy['method']}"
                             f"{', %d ratings' % happy['ratings'] if happy['ratings'] else ''})"),
            ("latency", _fmt_latency(perf)),
            ("tokens", f"{perf['tokens']['prompt']} in, {perf['tokens']['completion']} out"
                       f" ({perf['summary_tokens']['summaries']} summaries)"),
            ("cost", f"${perf['cost']:.6f} ({perf['priced_calls']} of {perf['model_calls']} calls priced)"),
            ("errors", f"{perf['errors']} failed turns; retries: "
                       + ", ".join(f"{k} {v}" for k, v in perf["retries"].items())),
            ("stored", f"{_size(stored['total'])}: messages {_size(stored['messages'])}, checkpoints "
                       f"{_size(stored['checkpoints'])}, memory {_size(stored['memory'])}, meta {_size(stored['meta'])}")]
    for name, value in rows:
        info.add_row(name, escape(value))
    console.print(info)


@app.command("rm")
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
    with exit_on_error(), runtime_for(store, local):
        s = Session(session_id, user_id=user)
        if not s.exists():
            raise SessionNotFound(f"session {label} not found; nothing to delete")
        if not yes and not typer.confirm(f"Delete session {label} and its checkpoints?"):
            console.print("Aborted: nothing was deleted.")
            raise typer.Exit(1)
        s.delete()
    console.print(f"Deleted session {escape(label)}.")


@app.command("cleanup")
def sessions_cleanup(
    older_than: Annotated[str, typer.Option(help="Remove sessions not updated for this long: 30d, 12h, 2w.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete; without it, only show what would go.")] = False,
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """Remove sessions idle for --older-than (a dry run unless --yes)."""
    from repertory.admin import cleanup, parse_duration

    with exit_on_error():
        age = parse_duration(older_than)
        with runtime_for(store, local):
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


@app.command("export")
def sessions_export(
    out: Annotated[Path, typer.Argument(help="A .jsonl file, or a folder for one .rps file per session.")],
    prefix: Annotated[str, typer.Option(help="Only keys starting with this.")] = "",
    checkpoints: Annotated[bool, typer.Option("--checkpoints/--no-checkpoints",
                                              help="Include checkpoints and versions.")] = True,
    plaintext: Annotated[bool, typer.Option("--plaintext", help="Write it decrypted even when an encryption "
                                                                 "key is configured.")] = False,
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """Export sessions to a .jsonl file or a folder of session files (encrypted if a key is set)."""
    from repertory.admin import export_sessions

    with exit_on_error(), runtime_for(store, local), progress_bar("exporting") as progress:
        n = export_sessions(out, prefix=prefix, with_checkpoints=checkpoints, progress=progress,
                            plaintext=plaintext)
    console.print(f"Exported {n} session(s) to {escape(str(out))}.")


@app.command("import")
def sessions_import(
    src: Annotated[Path, typer.Argument(help="A .jsonl export, or a folder of .rps session files.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace sessions that already exist.")] = False,
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """Import sessions from an export; existing ones are skipped unless --overwrite."""
    from repertory.admin import import_sessions

    with exit_on_error(), runtime_for(store, local), progress_bar("importing") as progress:
        result = import_sessions(src, overwrite=overwrite, progress=progress)
    console.print(f"Imported {int(result)} session(s) from {escape(str(src))}.")
    if result.skipped:
        shown = ", ".join(result.skipped[:10]) + (" ..." if len(result.skipped) > 10 else "")
        console.print(f"[yellow]Skipped {len(result.skipped)} existing session(s)[/] (add --overwrite to "
                      f"replace them): {escape(shown)}")


@app.command("rekey")
def sessions_rekey(
    prefix: Annotated[str, typer.Option(help="Only keys starting with this.")] = "",
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """Re-encrypt stored sessions under the first key of REPERTORY_ENCRYPTION_KEY (old keys or plaintext)."""
    from repertory.admin import rekey_sessions

    with exit_on_error(), runtime_for(store, local), progress_bar("re-encrypting") as progress:
        n = rekey_sessions(prefix, progress=progress)
    console.print(f"Re-encrypted {n} session(s); the others were already under the current key.")
