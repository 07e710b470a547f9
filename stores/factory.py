"""Open a store from its URL."""

from __future__ import annotations

from urllib.parse import urlparse

from repertory.errors import InvalidInput

from .base import Store

__all__ = ["open_store"]


def open_store(url: str) -> Store:
    """``sqlite:///path/state.db``, ``redis://host:6379/0`` (or ``rediss://``; ``?prefix=rp``
    sets the key prefix), ``memory://``; anything else is refused with the choices."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        path = url[len("sqlite://"):]
        if path.startswith("/") and not path.startswith("//"):
            path = path  # sqlite:///abs/path -> /abs/path ; sqlite:///rel is taken as absolute
        return SQLiteStore(path)
    if scheme in ("redis", "rediss"):
        from .redis import RedisStore

        return RedisStore(url)
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    raise InvalidInput(
        f"unknown store URL {url!r}; use 'sqlite:///path/to/state.db', "
        "'redis://host:6379/0' (or 'rediss://...') or 'memory://'"
    )
