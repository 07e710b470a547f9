"""structlog set-up: console lines in a terminal, JSON lines elsewhere."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from contextvars import ContextVar

import structlog

__all__ = ["bound_request_id", "configure_logging", "get_logger", "request_id"]

_configured = False


def configure_logging(level: str | None = None, *, force: bool = False) -> None:
    """Configure structlog once (unless the application already did, or ``force``)."""
    global _configured
    if _configured and not force:
        return
    if structlog.is_configured() and not force:
        _configured = True
        return
    name = (level or os.environ.get("REPERTORY_LOG_LEVEL", "WARNING")).upper()
    renderer = (
        structlog.dev.ConsoleRenderer(colors=False)
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(name)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = True


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger bound to ``name``."""
    return structlog.get_logger(name)


# Kept beside structlog's binding, not read back from it: every turn a handle sends reads it
# (Session._request), and structlog.contextvars.get_contextvars() costs ~2 µs a call.
_request_id: ContextVar[str | None] = ContextVar("repertory_request_id", default=None)


@contextlib.contextmanager
def bound_request_id(value: str) -> Iterator[None]:
    """Within the block, log lines carry ``request_id``, and so do the turns sent from it: the
    hosts bind it to their log lines of those turns (``TurnRequest.request_id``)."""
    token = _request_id.set(value)
    try:
        with structlog.contextvars.bound_contextvars(request_id=value):
            yield
    finally:
        _request_id.reset(token)


def request_id() -> str | None:
    """The request id bound by :func:`bound_request_id` around this call, if any."""
    return _request_id.get()
