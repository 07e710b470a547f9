"""Which repertory store an interop adapter writes to, and its TTL option."""

from __future__ import annotations

import math
from datetime import timedelta

from repertory.config import Settings
from repertory.errors import InvalidInput
from repertory.runtimes.current import get_runtime, is_initialized
from repertory.stores import RedisStore, SQLiteStore, Store, open_store

__all__ = ["Backend", "check_ttl", "open_backend", "thread_tag"]

Backend = SQLiteStore | RedisStore


def open_backend(store: str | Store | None) -> tuple[Backend, bool]:
    """The store to use and whether the adapter opened it (and so closes it).

    ``None``: the running runtime's store if ``repertory.init()`` was called, else the embedded
    default (``$REPERTORY_HOME/state.db``). A URL opens its own store; a store object is shared.
    """
    owned = not isinstance(store, Store)
    if store is None:
        store = get_runtime().settings.store if is_initialized() else Settings().store
    if isinstance(store, str):
        store = open_store(store)
    if not isinstance(store, (SQLiteStore, RedisStore)):
        raise InvalidInput(f"interop adapters keep their data in a SQLite or Redis store, not {store.url!r}; "
                           "pass 'sqlite:///path/state.db' or 'redis://host:6379/0'")
    return store, owned


def check_ttl(ttl: float | timedelta | None) -> float | None:
    """``ttl`` in seconds (a number or a timedelta; None: keep until deleted)."""
    if isinstance(ttl, timedelta):
        ttl = ttl.total_seconds()
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl <= 0:
        raise InvalidInput(f"ttl must be a positive number of seconds, a timedelta or None, not {ttl!r}")
    return float(ttl)


_TAG_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})


def thread_tag(kind: str, ident: str) -> str:
    """``~<kind>/<ident>`` with braces escaped: a Redis hash tag per thread or session, which no
    repertory session key can equal ('~' never starts a session id)."""
    return f"~{kind}/{ident.translate(_TAG_ESCAPES)}"
