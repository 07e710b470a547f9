"""An agent definition as plain data: what a session stores so that it continues with its agent.

A definition holds an agent's name, instructions, model, model options and tools::

    {"name": "Keeper", "instructions": "...", "model": "openai/gpt-4o-mini",
     "options": {"temperature": 0.2, "api_base": "http://..."},
     "tools": [{"name": "weather", "path": "myapp.tools:weather", "description": "..."}],
     "withheld": ["api_key"], "max_tool_rounds": 8, "history_window": None}

plus ``"context": {"tokens": 4000, "policy": "summarize"}`` for an agent given
``max_context_tokens`` or ``context_policy`` (absent otherwise, so that other definitions and
their keys stay what they were).

Secrets are never stored: an option whose name reads as a secret (a word of it is ``key``,
``token``, ``secret``, ``password``, ``credential(s)``, ``auth``, ``authorization``,
``cookie``, ...; nested dicts such as ``extra_headers`` are filtered the same way), a URL
carrying a password, and an option that is not plain data are left out and their names listed
under ``withheld``. A restored agent takes its key from the environment (``OPENAI_API_KEY``
and the like), as litellm does, or its handle is given ``agent=``.

A tool is stored by import path (``module:qualname``) when its function is reachable under
that name at module level; a lambda, a closure or a method is stored by name only (path
``None``). Deployment choices (``replicas``) and ``memory`` are not part of a definition.
Restoring (``repertory.agents.spec.agent_from_definition``) imports only functions marked
with :func:`repertory.tool`.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from repertory.stores.values import Violation, check_plain

if TYPE_CHECKING:
    from repertory.agents.agent import Agent

__all__ = ["DEFINITION_FIELDS", "OPTIONAL_FIELDS", "SECRET_WORDS", "TOOL_FIELDS", "definition_key", "definition_of",
           "is_secret_name", "stored_options", "tool_path"]

DEFINITION_FIELDS = ("name", "instructions", "model", "options", "tools", "withheld", "max_tool_rounds",
                     "history_window")
OPTIONAL_FIELDS = ("context",)  # present only when set
TOOL_FIELDS = ("name", "path", "description")
# Words (split on "_", "-", "." and case changes) that make an option name a secret.
SECRET_WORDS = frozenset({
    "key", "apikey", "token", "secret", "secrets", "password", "passwd", "pwd", "passphrase",
    "credential", "credentials", "auth", "authorization", "cookie", "cookies", "bearer", "signature",
    "private", "jwt",
})
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret_name(name: str) -> bool:
    """True if an option (or header) called ``name`` would hold a secret (see module docstring)."""
    return any(w.lower() in SECRET_WORDS for w in _WORD.findall(str(name)))


def _has_password(value: Any) -> bool:
    if not isinstance(value, str) or "://" not in value:
        return False
    try:
        return urlsplit(value).password is not None
    except ValueError:
        return False


def _filter(options: dict[str, Any], prefix: str, withheld: list[str]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, value in options.items():
        where = f"{prefix}{name}"
        if not isinstance(name, str) or is_secret_name(name) or _has_password(value):
            withheld.append(str(where))
            continue
        if isinstance(value, dict):
            value = _filter(value, where + ".", withheld)
        else:
            try:
                check_plain(value, where)
            except Violation:  # a class, a model object: nothing a store can hold
                withheld.append(where)
                continue
        kept[name] = value
    return kept


def stored_options(options: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``options`` without secrets and values that are not plain data; and the names left out."""
    withheld: list[str] = []
    kept = _filter(options, "", withheld)
    return kept, withheld


def tool_path(fn: Callable[..., Any]) -> str | None:
    """``"module:qualname"`` if ``fn`` is found under that name at module level, else None."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        return None  # <lambda>, <locals>: nothing to import
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return f"{module}:{qualname}" if obj is fn else None


def definition_of(agent: Agent) -> dict[str, Any]:
    """``agent`` as a stored definition (see the module docstring)."""
    options, withheld = stored_options(agent.llm_options)
    d = {
        "name": agent.name,
        "instructions": agent.instructions,
        "model": agent.model,
        "options": options,
        "tools": [{"name": t.name, "path": tool_path(t.fn), "description": t.description} for t in agent.tools],
        "withheld": withheld,
        "max_tool_rounds": agent.max_tool_rounds,
        # 0 and None both mean the whole history (the host cuts only when it is set).
        "history_window": agent.history_window or None,
    }
    if agent.max_context_tokens is not None or agent.context_policy is not None:
        d["context"] = {"tokens": agent.max_context_tokens, "policy": agent.context_policy}
    return d


def definition_key(definition: dict[str, Any]) -> str:
    """A short stable name for a definition (``<name slug>-<digest>``), as change records use."""
    text = json.dumps(definition, sort_keys=True, default=lambda b: b.hex(), ensure_ascii=True)
    slug = "".join(c if c.isalnum() else "-" for c in str(definition.get("name", "")).lower())[:32]
    return f"{slug}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"

