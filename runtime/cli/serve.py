"""``repertory serve``: the HTTP API over the runtime (uvicorn, or Ray Serve replicas)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from repertory.cli.common import LocalOpt, StoreOpt, console, exit_on_error

__all__ = ["serve"]


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    agents: Annotated[Optional[Path], typer.Option("--agents", "-a", help="Agents file (YAML or JSON); "
                                                   "a chat names one, else the first.")] = None,
    ray_serve: Annotated[bool, typer.Option("--ray-serve", help="Run as a Ray Serve deployment.")] = False,
    replicas: Annotated[int, typer.Option(help="Ray Serve replicas.", min=1)] = 2,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (default: a local one).")] = None,
    rate_limit: Annotated[str, typer.Option(help="Requests per token, e.g. 600/minute ('' for none).")]
    = "600/minute",
    insecure_no_auth: Annotated[bool, typer.Option("--insecure-no-auth", help="Serve every session without "
                                                   "tokens (development only; refused unless on loopback).")]
    = False,
    store: StoreOpt = None,
    local: LocalOpt = False,
) -> None:
    """Serve sessions over HTTP at http://HOST:PORT/agent. Token keys come from
    REPERTORY_SECRET_KEYS (kid:secret,...) and the admin key from REPERTORY_ADMIN_KEY (or their
    _FILE forms); they are never logged."""
    import repertory
    from repertory.agents.spec import load_agents
    from repertory.server.config import ServerConfig
    from repertory.server.runner import run, serve_ray

    with exit_on_error():
        agent_map = load_agents(agents) if agents is not None else {}
        config = ServerConfig(host=host, port=port, agents=agent_map, rate_limit=rate_limit or None,
                              insecure_no_auth=insecure_no_auth)
        if config.keyring() is None and not insecure_no_auth:
            raise repertory.InvalidInput("no token keys: set REPERTORY_SECRET_KEYS=kid:secret (32+ random "
                                         "characters), or use --insecure-no-auth on 127.0.0.1 for development")
        if ray_serve and local:
            raise repertory.InvalidInput("--ray-serve runs on Ray; drop --local")
        with console.status("Starting the runtime..."):
            rt = repertory.init(address=address, store=store, runtime="local" if local else "ray")
        try:
            if ray_serve:
                config.init = {"store": rt.settings.store, "namespace": rt.settings.namespace}
                url = serve_ray(config, replicas)
                console.print(f"Serving on {escape(url)} with {replicas} Ray Serve replicas; Ctrl-C stops")
                while True:
                    time.sleep(3600)
            console.print(f"Serving on http://{escape(host)}:{port}/agent; Ctrl-C stops")
            run(config)
        except KeyboardInterrupt:
            pass
        finally:
            if ray_serve:
                from ray import serve as ray_serve_api

                ray_serve_api.shutdown()
            repertory.shutdown()
