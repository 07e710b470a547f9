"""structlog set-up: console lines in a terminal, JSON lines elsewhere."""

from __future__ import annotations

import logging
import os
import sys

import structlog

__all__ = ["configure_logging", "get_logger"]

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
