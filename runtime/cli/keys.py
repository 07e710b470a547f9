"""``repertory keys new``: make an encryption key for encryption at rest."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from repertory.cli.common import err_console, exit_on_error

__all__ = ["app"]

app = typer.Typer(help="Encryption keys for encryption at rest (REPERTORY_ENCRYPTION_KEY).", no_args_is_help=True)


@app.command("new")
def keys_new(
    kid: Annotated[Optional[str], typer.Option("--kid", help="The key's id (default: a random one).")] = None,
) -> None:
    """Print a new random AES-256 key, 'kid:base64key', for REPERTORY_ENCRYPTION_KEY."""
    from repertory.stores.crypto import generate_encryption_key

    with exit_on_error():
        key = generate_encryption_key(kid)
    # The key alone on stdout: `export REPERTORY_ENCRYPTION_KEY=$(repertory keys new)` works.
    typer.echo(key)
    err_console.print("Keep it secret and backed up: what is encrypted with it cannot be read without it. "
                      "To rotate: REPERTORY_ENCRYPTION_KEY=new,old, `repertory sessions rekey`, then drop old.",
                      style="dim", highlight=False)
