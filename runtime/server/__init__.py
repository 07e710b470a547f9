"""The HTTP server: ``repertory serve``, :func:`create_app`, :func:`serve_in_thread`.

Needs the ``serve`` extra (FastAPI, uvicorn, limits; Ray Serve for ``--ray-serve``).
"""

from __future__ import annotations

from repertory.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app", "serve_in_thread"]


def __getattr__(name: str):  # FastAPI and uvicorn load only when an app is built
    if name == "create_app":
        from repertory.server.app import create_app

        return create_app
    if name == "serve_in_thread":
        from repertory.server.runner import serve_in_thread

        return serve_in_thread
    raise AttributeError(name)
