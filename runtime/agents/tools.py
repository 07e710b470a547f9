"""Plain Python callables as model tools: their JSON schema and their execution."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from typing import Any

from repertory.errors import AgentError
from repertory.logs import get_logger

__all__ = ["RESTORABLE", "Tool", "as_tool", "is_restorable", "tool"]

log = get_logger("repertory.tools")
RESTORABLE = "__repertory_tool__"  # the attribute :func:`tool` sets


def tool(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a module-level function as a tool that a stored session may restore by import path.

    A session stores its agent's tools by import path; a handle that continues the session
    without ``agent=`` imports only functions marked with this decorator, so that what a
    store or a session file names can never pick other code to run. Returns ``fn`` itself.
    """
    try:
        setattr(fn, RESTORABLE, True)
    except (AttributeError, TypeError):
        raise AgentError(f"@tool marks Python functions; {fn!r} takes no attributes. Wrap it in a "
                         "function defined in your module") from None
    return fn


def is_restorable(fn: Any) -> bool:
    """True if ``fn`` was marked with :func:`tool`."""
    return getattr(fn, RESTORABLE, False) is True


class Tool:
    """A callable with the OpenAI function schema derived from its signature and docstring."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, description: str | None = None) -> None:
        if not callable(fn):
            raise AgentError(f"tool {fn!r} is not callable; pass functions or Tool objects")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "tool")
        doc = inspect.getdoc(fn) or ""
        self.description = description or (doc.split("\n\n")[0].strip() or self.name)
        self._is_async = inspect.iscoroutinefunction(fn)
        self.parameters = _parameters_schema(fn, self.name)

    @property
    def schema(self) -> dict[str, Any]:
        """The tool as litellm/OpenAI expect it in ``tools=``."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    async def call(self, arguments: str | dict) -> str:
        """Run the tool; any error comes back as text for the model, never raised."""
        try:
            args = json.loads(arguments or "{}") if isinstance(arguments, str) else dict(arguments)
            if self._is_async:
                result = await self.fn(**args)
            else:
                result = await asyncio.to_thread(self.fn, **args)
        except Exception as exc:  # the model sees the failure and can recover; the operator sees the log
            log.warning("tool_failed", tool=self.name, error=f"{type(exc).__name__}: {exc}", exc_info=True)
            return f"error: {type(exc).__name__}: {exc}"
        if isinstance(result, str):
            return result
        try:
            return json.dumps(result, default=str)
        except (TypeError, ValueError):
            return str(result)


def _parameters_schema(fn: Callable[..., Any], name: str) -> dict[str, Any]:
    from pydantic import ConfigDict, create_model

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise AgentError(f"tool {name!r} has no inspectable signature: {exc}") from exc
    fields: dict[str, Any] = {}
    for pname, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = p.annotation if p.annotation is not inspect.Parameter.empty else Any
        fields[pname] = (ann, ... if p.default is inspect.Parameter.empty else p.default)
    try:
        model = create_model(f"{name}_args", __config__=ConfigDict(arbitrary_types_allowed=True), **fields)
        schema = model.model_json_schema()
    except Exception as exc:
        raise AgentError(f"tool {name!r}: cannot derive a JSON schema from its signature: {exc}") from exc
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


def as_tool(obj: Callable[..., Any] | Tool) -> Tool:
    """``obj`` as a :class:`Tool`."""
    return obj if isinstance(obj, Tool) else Tool(obj)
