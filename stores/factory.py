"""Open a store from its URL."""

from __future__ import annotations

from repertory.errors import InvalidInput

from .base import Store
from .urls import redact_url

__all__ = ["open_store", "redact_url"]


def open_store(url: str) -> Store:
    """``sqlite:///path/state.db``, ``redis://host:6379/0`` (or ``rediss://``; ``?prefix=rp``
    sets the key prefix, ``?wait=1`` makes commits wait for a replica),
    ``redis+cluster://host:port,host:port/`` (a Redis Cluster), ``memory://``; anything else is
    refused with the choices."""
    # not urlparse: it raises on some malformed URLs (an unbalanced '['), quoting nothing useful
    scheme = url.partition(":")[0].lower() if isinstance(url, str) and ":" in url else ""
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        # sqlite:///abs/path.db -> /abs/path.db (the URL form SQLAlchemy users know)
        return SQLiteStore(url[len("sqlite://"):])
    if scheme in ("redis", "rediss", "redis+cluster", "rediss+cluster"):
        from .redis import RedisStore

        return RedisStore(url)
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    raise InvalidInput(
        f"unknown store URL {redact_url(url) if isinstance(url, str) else url!r}; use 'sqlite:///path/to/state.db', "
        "'redis://host:6379/0' (or 'rediss://...'), 'redis+cluster://host:port,host:port/' or 'memory://'"
    )
