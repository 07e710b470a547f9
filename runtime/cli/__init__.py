"""The ``repertory`` command line."""

from __future__ import annotations

from repertory.cli.app import app

__all__ = ["app"]
