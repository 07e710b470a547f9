"""State backends and the codec."""

from __future__ import annotations

from .base import CheckpointInfo, CheckpointRecord, SessionInfo, SessionRecord, StateWrite, Store
from .codec import FORMAT_VERSION, Codec, MsgpackCodec
from .factory import open_store
from .memory import MemoryStore
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
    "Store",
    "open_store",
]
