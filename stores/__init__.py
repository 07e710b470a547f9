"""State backends and the codec.

The SQLite and Redis stores are imported on first use (``from repertory.stores import
RedisStore`` still works): ``import repertory`` must not load a database driver the
application never opens.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import CheckpointInfo, CheckpointRecord, SessionInfo, SessionRecord, StateWrite, StorageUsage, Store
from .codec import FORMAT_VERSION, Codec, MsgpackCodec
from .factory import open_store
from .memory import MemoryStore
from .urls import redact_url

if TYPE_CHECKING:
    from .redis import RedisStore
    from .sqlite import SQLiteStore

__all__ = [
    "FORMAT_VERSION",
    "CheckpointInfo",
    "CheckpointRecord",
    "Codec",
    "MemoryStore",
    "MsgpackCodec",
    "RedisStore",
    "SQLiteStore",
    "SessionInfo",
    "SessionRecord",
    "StateWrite",
    "StorageUsage",
    "Store",
    "open_store",
    "redact_url",
]

_LAZY = {"RedisStore": ".redis", "SQLiteStore": ".sqlite"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
