"""Store URLs as they may be shown: without their secrets.

Every store error, store log line and ``open_store`` error shows URLs through
:func:`redact_url`; so should any caller that logs a store URL (the runtime's start-up line).
"""

from __future__ import annotations

__all__ = ["redact_url", "url_secrets"]

MASK = "***"

# Query arguments that carry credentials (redis-py reads ``password`` from the query string).
_SECRET_ARGS = frozenset({"password", "passwd", "pass", "pwd", "secret", "token", "auth", "api_key", "apikey"})

# Local stores hold no credentials, and their paths may contain '@' (``/home/me@work/...``).
_LOCAL_SCHEMES = frozenset({"sqlite", "file", "memory"})


def _split(url: str) -> tuple[str, str | None, str, str] | None:
    """(``scheme://``, the user part or None, the rest up to the query, ``?query#fragment``);
    None for a local store URL or no URL at all.

    By hand rather than with urlsplit, which raises on (or cuts a password at an unencoded '/'
    in) exactly the malformed URLs whose errors would otherwise quote them.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() in _LOCAL_SCHEMES:
        return None
    end = len(rest)
    for stop in "?#":
        i = rest.find(stop)
        if i != -1:
            end = min(end, i)
    at = rest.rfind("@", 0, end)
    if at == -1:
        return f"{scheme}://", None, rest[:end], rest[end:]
    return f"{scheme}://", rest[:at], rest[at + 1:end], rest[end:]


def redact_url(url: str) -> str:
    """``url`` with its password (and any ``password=``-like query argument) replaced by ``***``.

    A user part without a colon is masked whole: some clients read ``redis://secret@host`` as a
    password. Local store URLs (``sqlite://``, ``memory://``) are returned as they are.
    """
    parts = _split(url)
    if parts is None:
        return url
    head, userinfo, tail, query = parts
    if userinfo is not None:
        user, colon, _ = userinfo.partition(":")
        if colon:
            tail = f"{user}:{MASK}@{tail}"
        elif userinfo:
            tail = f"{MASK}@{tail}"
        else:
            tail = f"@{tail}"
    if query.startswith("?"):
        body, hash_, fragment = query[1:].partition("#")
        args = []
        for arg in body.split("&"):
            name, eq, _ = arg.partition("=")
            args.append(f"{name}={MASK}" if eq and name.lower() in _SECRET_ARGS else arg)
        query = "?" + "&".join(args) + hash_ + fragment
    return head + tail + query


def url_secrets(url: str) -> list[str]:
    """The secrets :func:`redact_url` hides, raw and as written, to scrub them from any text
    that did not come from the URL itself (a driver's error message)."""
    from urllib.parse import unquote

    parts = _split(url)
    if parts is None:
        return []
    _, userinfo, _, query = parts
    found: list[str] = []
    if userinfo:
        user, colon, password = userinfo.partition(":")
        found.append(password if colon else user)
    for arg in query.lstrip("?").partition("#")[0].split("&"):
        name, eq, value = arg.partition("=")
        if eq and name.lower() in _SECRET_ARGS:
            found.append(value)
    return sorted({s for v in found if v for s in (v, unquote(v))}, key=len, reverse=True)
