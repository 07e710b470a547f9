"""Memory settings: what a :class:`~repertory.Memory` is configured with, checked once.

:class:`MemorySettings` validates the provider, its config, the quality threshold, the cap
and the scorer at construction, and turns them into plain data (:meth:`to_dict`) for the
trip to the process that runs the agent. :func:`turn_memory` is what a session sends with
each turn when memory is on: that plain dict plus the scope (``user:<id>``, or
``session:<id>`` when the session has no user) and the database path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from repertory.errors import MemoryConfigError
from repertory.memory.quality import MemoryItem, QualityFilter, Scorer

__all__ = ["PROVIDERS", "MemorySettings", "default_db_path", "memory_scope", "turn_memory"]

PROVIDERS = ("sqlite", "chromadb", "mem0")
_SQLITE_KEYS = {"db_path", "embedding_model"}
_LATER = {
    "chromadb": ("chromadb", "pip install 'repertory[chroma]'"),
    "mem0": ("mem0", "pip install mem0ai"),
}


def _check_provider(provider: Any, config: Mapping[str, Any]) -> None:
    if provider == "sqlite":
        unknown = sorted(set(config) - _SQLITE_KEYS)
        if unknown:
            raise MemoryConfigError(
                f"unknown memory config key(s) {unknown} for provider 'sqlite'; it reads 'db_path' (the SQLite "
                "file; default: the runtime's own database) and accepts 'embedding_model' unused (sqlite recalls "
                "by keywords, FTS5/BM25)")
        return
    if provider in _LATER:
        module, install = _LATER[provider]
        also = []
        if importlib.util.find_spec(module) is None:
            also.append(f"its package is not installed ({install})")
        if provider == "chromadb" and not config.get("embedding_model"):
            also.append("it would need config['embedding_model'] (chromadb's default embedder downloads a "
                        "model at run time, which fails offline)")
        raise MemoryConfigError(
            f"the {provider!r} memory provider is not built yet in this release of repertory (a later step of "
            f"issue 9){'; also, ' + ' and '.join(also) if also else ''}. Use Memory(provider='sqlite') meanwhile: "
            "offline keyword recall (FTS5/BM25) in the runtime's database or config['db_path']")
    raise MemoryConfigError(f"unknown memory provider {provider!r}; choose one of {list(PROVIDERS)} "
                            "('sqlite' works offline and is the default)")


def _check_db_path(value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise MemoryConfigError(f"config['db_path'] must be a file path, got {value!r}")
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(value))))
    if path.is_dir():
        raise MemoryConfigError(f"config['db_path'] {str(path)!r} is a folder; give a file path in it, "
                                f"e.g. {str(path / 'memories.db')!r}")
    if not path.parent.is_dir():
        raise MemoryConfigError(f"the folder of config['db_path'] {str(path)!r} does not exist; create "
                                f"{str(path.parent)!r} first or choose another path")
    return str(path)


class MemorySettings:
    """Provider, config, ``quality_threshold``, ``max_memories``, ``recall_limit`` and the scorer.

    Every check runs here, at construction: a bad setting raises
    :class:`~repertory.errors.MemoryConfigError` saying what to do.
    """

    def __init__(self, provider: str = "sqlite", config: Mapping[str, Any] | None = None,
                 quality_threshold: float | None = None, max_memories: int | None = None, *,
                 recall_limit: int = 5, scorer: Scorer | None = None) -> None:
        if config is None:
            config = {}
        if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
            raise MemoryConfigError(f"config must be a dict of str keys, got {type(config).__name__}")
        _check_provider(provider, config)
        if quality_threshold is not None and (
                isinstance(quality_threshold, bool) or not isinstance(quality_threshold, (int, float))
                or not 0.0 <= quality_threshold <= 1.0):
            raise MemoryConfigError(f"quality_threshold must be a number from 0 to 1 (scores are 0..1) or None, "
                                    f"got {quality_threshold!r}")
        for name, n in (("max_memories", max_memories), ("recall_limit", recall_limit)):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise MemoryConfigError(f"{name} must be a positive int{' or None' if name == 'max_memories' else ''}, "
                                        f"got {n!r}")
        self.provider = provider
        self.config = dict(config)
        self.db_path: str | None = _check_db_path(config["db_path"]) if "db_path" in config else None
        self.quality_threshold = None if quality_threshold is None else float(quality_threshold)
        self.max_memories = max_memories
        self.recall_limit = recall_limit
        self.scorer: Scorer = QualityFilter()
        if scorer is not None:
            self.set_quality_scorer(scorer)

    def set_quality_scorer(self, scorer: Scorer) -> None:
        """Score candidates with ``scorer(memory_item) -> float`` instead of the default
        :class:`QualityFilter`. The item has ``content``, ``timestamp``, ``relevance``,
        ``importance``, ``kind`` and ``scope``. Set it before the agent's first session: a
        function reaches agent actors with the agent definition, when it is deployed."""
        if not callable(scorer):
            raise MemoryConfigError(f"the quality scorer must be callable (memory_item -> float), "
                                    f"got {type(scorer).__name__}")
        self.scorer = scorer

    def score(self, item: MemoryItem) -> float:
        """The scorer's verdict on ``item`` (higher is better), as a float."""
        value = float(self.scorer(item))
        if math.isnan(value):
            raise MemoryConfigError(f"the quality scorer returned NaN for {item.get('content')!r}")
        return value

    def accepts(self, score: float) -> bool:
        """True unless ``quality_threshold`` rejects ``score``."""
        return self.quality_threshold is None or score >= self.quality_threshold

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (a custom scorer function is not data: ``filter`` is None)."""
        return {"provider": self.provider, "db_path": self.db_path, "quality_threshold": self.quality_threshold,
                "max_memories": self.max_memories, "recall_limit": self.recall_limit,
                "filter": self.scorer.to_dict() if isinstance(self.scorer, QualityFilter) else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], scorer: Scorer | None = None) -> MemorySettings:
        """Settings from :meth:`to_dict`; ``scorer`` stands in for a custom function."""
        config = {"db_path": data["db_path"]} if data.get("db_path") else {}
        if scorer is None and data.get("filter") is not None:
            scorer = QualityFilter.from_dict(data["filter"])
        return cls(data.get("provider", "sqlite"), config, data.get("quality_threshold"), data.get("max_memories"),
                   recall_limit=data.get("recall_limit", 5), scorer=scorer)

    def fingerprint(self) -> str:
        """A digest of the settings and the scorer's name: two agents that differ only in
        memory settings are two definitions (two sets of actors)."""
        fn = self.scorer
        name = "" if isinstance(fn, QualityFilter) else f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}"
        doc = json.dumps([self.to_dict(), name], sort_keys=True, default=str)
        return hashlib.sha256(doc.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(provider={self.provider!r}, db_path={self.db_path!r}, "
                f"quality_threshold={self.quality_threshold!r}, max_memories={self.max_memories!r})")


def memory_scope(user_id: str | None, session_id: str | None) -> str:
    """Whose memories: the user's, else the session's."""
    if user_id is not None:
        return f"user:{user_id}"
    if session_id is not None:
        return f"session:{session_id}"
    raise MemoryConfigError("memories belong to a user or a session: give user_id= or session_id=")


def default_db_path(store_url: str) -> str:
    """The runtime's own SQLite file, where memories live unless ``config['db_path']`` says."""
    if isinstance(store_url, str) and store_url.lower().startswith("sqlite://"):
        return os.path.abspath(store_url[len("sqlite://"):])
    scheme = store_url.partition(":")[0] if isinstance(store_url, str) else store_url
    raise MemoryConfigError(
        f"long-term memory lives in the runtime's SQLite database by default, and this runtime's store is "
        f"{scheme!r}; give the memory a file of its own: Agent(memory=Memory(config={{'db_path': "
        "'/path/to/memories.db'}}))")


def turn_memory(settings: MemorySettings | None, persist: bool | None, store_url: str, user_id: str | None,
                session_id: str) -> dict[str, Any] | None:
    """What a turn carries when memory is on, else None.

    Memory is on when ``persist`` (a session's ``persist_memory``) says so, or, when it is
    None, when the agent has ``settings``. The result is plain data: the settings (the
    agent's, or the defaults) from :meth:`MemorySettings.to_dict`, the database path
    resolved against the runtime's store, the scope and the session id.
    """
    if not (persist if persist is not None else settings is not None):
        return None
    settings = settings if settings is not None else MemorySettings()
    spec = settings.to_dict()
    spec["db_path"] = settings.db_path or default_db_path(store_url)
    spec["scope"] = memory_scope(user_id, session_id)
    spec["session_id"] = session_id
    return spec
