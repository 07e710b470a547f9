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
from repertory.memory.embeddings import DEFAULT_LOCAL_MODEL, check_embedding_model, default_embedding_model
from repertory.memory.quality import MemoryItem, QualityFilter, Scorer

__all__ = ["PROVIDERS", "MemorySettings", "default_db_path", "memory_scope", "turn_memory"]

PROVIDERS = ("sqlite", "chromadb", "mem0")
_KEYS = {"sqlite": {"db_path", "embedding_model"}, "chromadb": {"db_path", "embedding_model", "embedding_options"},
         "mem0": {"db_path", "embedding_model", "mem0"}}
_PACKAGES = {"chromadb": ("chromadb", "pip install 'repertory[chroma]'"), "mem0": ("mem0", "pip install 'repertory[mem0]'")}
_SECRET_WORDS = ("key", "token", "secret", "password", "credential")


def _check_provider(provider: Any, config: Mapping[str, Any]) -> None:
    if provider in _KEYS:
        unknown = sorted(set(config) - _KEYS[provider])
        if unknown:
            reads = ("'db_path' (the SQLite file; default: the runtime's own database) and accepts "
                     "'embedding_model' unused (sqlite recalls by keywords, FTS5/BM25)") if provider == "sqlite" else (
                     "'db_path' (a folder), 'embedding_model' and " + (
                         "'embedding_options' (litellm options such as api_base)" if provider == "chromadb"
                         else "'mem0' (a mem0 config dict merged over repertory's defaults)"))
            raise MemoryConfigError(f"unknown memory config key(s) {unknown} for provider {provider!r}; it reads {reads}")
        if provider in _PACKAGES and importlib.util.find_spec(_PACKAGES[provider][0]) is None:
            raise MemoryConfigError(f"the {provider!r} memory provider needs its package: {_PACKAGES[provider][1]}")
        return
    raise MemoryConfigError(f"unknown memory provider {provider!r}; choose one of {list(PROVIDERS)} "
                            "('sqlite' works offline and is the default)")


def _secret_keys(value: Any, where: str) -> list[str]:
    if isinstance(value, Mapping):
        found = []
        for k, v in value.items():
            if isinstance(k, str) and any(w in k.lower() for w in _SECRET_WORDS):
                found.append(f"{where}[{k!r}]")
            found += _secret_keys(v, f"{where}[{k!r}]")
        return found
    return []


def _check_embedding(provider: str, config: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The embedding model and its options (chromadb, mem0); sqlite ignores them."""
    if provider == "sqlite":
        return None, {}
    name = config.get("embedding_model")
    if name is None:
        name = default_embedding_model()
        if name is None:
            raise MemoryConfigError(
                f"Memory(provider={provider!r}) needs an embedding model, and chromadb's default embedder downloads "
                f"one at run time, which fails offline. Either install the offline model ({DEFAULT_LOCAL_MODEL!r}: "
                "pip install torch==2.13.0, then pip install 'repertory[local-embeddings]'), or give "
                "config['embedding_model'] a litellm embedding model such as 'text-embedding-3-small'")
    options = config.get("embedding_options") or {}
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise MemoryConfigError(f"config['embedding_options'] must be a dict of litellm options, got {options!r}")
    secrets = _secret_keys(options, "config['embedding_options']") + _secret_keys(config.get("mem0"), "config['mem0']")
    if secrets:
        raise MemoryConfigError(f"{', '.join(secrets)} must not hold a key (memory settings travel with the agent "
                                "and its definition); litellm and mem0 read keys from the environment, e.g. "
                                "OPENAI_API_KEY")
    mem0 = config.get("mem0")
    if provider == "mem0":
        if mem0 is not None and (not isinstance(mem0, Mapping) or not all(isinstance(k, str) for k in mem0)):
            raise MemoryConfigError(f"config['mem0'] must be a mem0 config dict, got {mem0!r}")
        if not str(name).startswith("local/") and not (mem0 or {}).get("embedder"):
            raise MemoryConfigError("the mem0 provider embeds with a local model ('local/...'); for another "
                                    "embedder give mem0's own config in config['mem0']['embedder']")
    return check_embedding_model(name), dict(options)


def _check_db_path(value: Any, provider: str = "sqlite") -> str:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise MemoryConfigError(f"config['db_path'] must be a {'folder' if provider == 'chromadb' else 'file'} "
                                f"path, got {value!r}")
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(value))))
    if provider != "sqlite":
        if path.exists() and not path.is_dir():
            raise MemoryConfigError(f"config['db_path'] {str(path)!r} is a file; chromadb keeps its memories in a "
                                    f"folder: give a folder path, e.g. {str(path.parent / 'chroma')!r}")
    elif path.is_dir():
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
        self.db_path: str | None = _check_db_path(config["db_path"], provider) if "db_path" in config else None
        self.embedding_model, self.embedding_options = _check_embedding(provider, config)
        self.mem0: dict[str, Any] | None = dict(config["mem0"]) if config.get("mem0") else None
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
        data = {"provider": self.provider, "db_path": self.db_path, "quality_threshold": self.quality_threshold,
                "max_memories": self.max_memories, "recall_limit": self.recall_limit,
                "filter": self.scorer.to_dict() if isinstance(self.scorer, QualityFilter) else None}
        if self.embedding_model is not None:  # absent for sqlite: its agents keep the keys they had
            data["embedding_model"] = self.embedding_model
            data["embedding_options"] = self.embedding_options
        if self.mem0 is not None:
            data["mem0"] = self.mem0
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], scorer: Scorer | None = None) -> MemorySettings:
        """Settings from :meth:`to_dict`; ``scorer`` stands in for a custom function."""
        config = {"db_path": data["db_path"]} if data.get("db_path") else {}
        if data.get("embedding_model"):
            config["embedding_model"] = data["embedding_model"]
            if data.get("embedding_options"):
                config["embedding_options"] = data["embedding_options"]
        if data.get("mem0"):
            config["mem0"] = data["mem0"]
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


def default_db_path(store_url: str, provider: str = "sqlite") -> str:
    """Where memories live unless ``config['db_path']`` says: the runtime's own SQLite file
    (sqlite), or the folder ``chroma`` beside it (chromadb)."""
    if isinstance(store_url, str) and store_url.lower().startswith("sqlite://"):
        path = os.path.abspath(store_url[len("sqlite://"):])
        return path if provider == "sqlite" else os.path.join(os.path.dirname(path),
                                                               "chroma" if provider == "chromadb" else "mem0")
    scheme = store_url.partition(":")[0] if isinstance(store_url, str) else store_url
    raise MemoryConfigError(
        f"long-term memory lives in the runtime's SQLite database by default, and this runtime's store is "
        f"{scheme!r}; give the memory a {'file' if provider == 'sqlite' else 'folder'} of its own: "
        f"Agent(memory=Memory(provider={provider!r}, config={{'db_path': "
        f"'{'/path/to/memories.db' if provider == 'sqlite' else '/path/to/' + provider}'}}))")


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
    spec["db_path"] = settings.db_path or default_db_path(store_url, settings.provider)
    spec["scope"] = memory_scope(user_id, session_id)
    spec["session_id"] = session_id
    return spec
