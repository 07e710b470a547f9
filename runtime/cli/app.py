"""The ``repertory`` command line: ``demo``, ``chat``, ``batch``, ``serve``, ``sessions ls|show|rm|cleanup|export|import|rekey``,
``keys new``, ``chaos``, ``bench``.

One module per command group; this one assembles them.
"""

from __future__ import annotations

import typer

from repertory.cli import batch, bench, chaos, chat, keys, serve, sessions, stats

__all__ = ["app"]

app = typer.Typer(help="repertory: stateful LLM agent sessions on Ray.", no_args_is_help=True,
                  add_completion=False)
app.add_typer(sessions.app, name="sessions")
app.add_typer(keys.app, name="keys")
app.command()(chat.demo)
app.command()(chat.chat)
app.command("batch")(batch.batch)
app.command("serve")(serve.serve)
app.command("stats")(stats.stats)
app.command("chaos")(chaos.chaos)
app.command("bench")(bench.bench)

if __name__ == "__main__":
    app()
