"""``repertory demo`` and ``repertory chat``: a session at the terminal."""

from __future__ import annotations

import os
import time
import uuid
from typing import Optional

import typer
from rich.markup import escape
from rich.panel import Panel

from repertory.cli.common import console, history_table

__all__ = ["chat", "demo"]


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
    console.print(history_table(again.get_history()))
    repertory.shutdown()
    console.print(f"Continue this session with: [bold]repertory chat --session {session_id}[/]")


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
                console.print(history_table(s.get_history()))
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
