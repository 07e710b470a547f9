"""The runtime handle: ``repertory.init()`` / ``repertory.shutdown()``."""

from __future__ import annotations

import threading
from typing import Any

from repertory.config import Settings
from repertory.errors import InvalidInput, RuntimeNotReady
from repertory.logs import configure_logging, get_logger
from repertory.runtimes.base import Runtime
from repertory.stores.urls import redact_url

__all__ = ["get_runtime", "init", "is_initialized", "shutdown"]

log = get_logger("repertory")
_lock = threading.RLock()
_runtime: Runtime | None = None


def init(
    address: str | None = None,
    store: str | None = None,
    namespace: str = "repertory",
    *,
    runtime: str = "ray",
    detached: bool = False,
    **settings: Any,
) -> Runtime:
    """Start (or join) the runtime and return its handle.

    With no arguments: a local Ray instance and the SQLite store at
    ``$REPERTORY_HOME/state.db`` (default ``./.repertory/state.db``). ``address="auto"`` or
    ``"ray://host:10001"`` joins an existing Ray cluster. ``runtime="local"`` runs hosts and
    agents in this process without Ray. Other keywords are :class:`~repertory.config.Settings`
    fields (``num_hosts``, ``max_resident``, ``idle_timeout``, ``max_message_bytes``,
    ``encryption_key`` (encryption at rest; default ``$REPERTORY_ENCRYPTION_KEY``),
    ``encryption_required``, ...).
    Calling it again while a runtime runs raises :class:`InvalidInput`.
    """
    global _runtime
    configure_logging()
    with _lock:
        if _runtime is not None:
            raise InvalidInput("repertory is already initialised; call repertory.shutdown() first")
        try:
            s = Settings(store=store or "", namespace=namespace, **settings)
        except TypeError as exc:
            raise InvalidInput(f"unknown setting: {exc}") from exc
        if runtime == "local":
            from repertory.runtimes.local import LocalRuntime

            rt: Runtime = LocalRuntime(s)
        elif runtime == "ray":
            from repertory.runtimes.ray import RayRuntime

            rt = RayRuntime(s, address, detached=detached)
        else:
            raise InvalidInput(f"runtime must be 'ray' or 'local', not {runtime!r}")
        _runtime = rt
        log.info("runtime_started", runtime=runtime, store=redact_url(s.store), namespace=namespace)
        return rt


def is_initialized() -> bool:
    """True while a runtime is running in this process."""
    return _runtime is not None


def get_runtime() -> Runtime:
    """The running runtime, starting the embedded default once if there is none."""
    if _runtime is None:
        with _lock:
            if _runtime is None:
                init()
    rt = _runtime
    if rt is None:
        raise RuntimeNotReady("repertory was shut down while starting; call repertory.init() again")
    return rt


def shutdown() -> None:
    """Stop the runtime; every acknowledged turn is already in the store."""
    global _runtime
    with _lock:
        rt, _runtime = _runtime, None
    if rt is not None:
        rt.shutdown()
