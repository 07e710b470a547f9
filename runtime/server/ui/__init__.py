"""The session inspector's page: framework-free HTML, JS and CSS shipped inside the package.

Nothing is built at install time and nothing comes from a CDN: :func:`asset` serves the
files in ``static/`` (read with :mod:`importlib.resources`, so an installed wheel has them).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
__all__ = ["ASSETS", "asset", "page_html"]

ASSETS = {"app.js": "text/javascript", "style.css": "text/css", "plot.js": "text/javascript"}


@cache
def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def page_html() -> str:
    """The page at ``/ui``."""
    return _read("index.html").decode("utf-8")


def asset(name: str) -> tuple[bytes, str]:
    """A packaged file of the page and its media type; only the files in :data:`ASSETS`."""
    media_type = ASSETS[name]  # KeyError for anything else: never a path from the request
    return _read(name), media_type
