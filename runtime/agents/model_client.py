"""Model clients: how an agent reaches a model.

:class:`LiteLLMClient` is the real one: every call goes through ``litellm.acompletion`` with
timeouts and retries, streaming included. litellm is imported on first use (it takes seconds
to import), with the local cost map so that it never reaches the network at import.

:class:`NullModelClient` is a benchmark instrument, not a model: it returns a fixed reply at
once, so that benchmarks can measure the runtime without the model client's own CPU.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from repertory.agents.demo_model import DEMO_MODEL, demo_answer
from repertory.errors import ModelError
from repertory.logs import get_logger

__all__ = ["NULL_MODEL", "LiteLLMClient", "ModelClient", "ModelReply", "NullModelClient", "client_for"]

log = get_logger("repertory.agents.model_client")

NULL_MODEL = "repertory/null"
_OPENAI_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")


@dataclass(slots=True)
class ModelReply:
    """One model response: the assistant message (OpenAI shape), its token usage and its cost
    in USD from litellm's cost table (None where litellm knows no price for the model)."""

    message: dict[str, Any]
    usage: dict[str, int] = field(default_factory=dict)
    cost: float | None = None


class ModelClient(Protocol):
    """Completes a prompt; ``stream`` yields text deltas and then one final :class:`ModelReply`."""

    async def complete(self, model: str, messages: list[dict], *, tools: list[dict] | None = None,
                       **options: Any) -> ModelReply: ...

    def stream(self, model: str, messages: list[dict], *, tools: list[dict] | None = None,
               **options: Any) -> AsyncIterator[str | ModelReply]: ...


def to_openai(messages: list[dict]) -> list[dict]:
    """Strip repertory's bookkeeping (timestamps, usage, agent) from stored messages. New
    dicts, tool calls copied too: a client may change what it is given, and the messages are
    shared by a session's turns (agents.prompt_cache)."""
    out: list[dict] = []
    append, deepcopy = out.append, copy.deepcopy
    for m in messages:  # a plain loop: 1.6× faster than the comprehensions (runs on every message)
        d = {}
        for k in _OPENAI_KEYS:
            v = m.get(k)
            if v is not None:
                d[k] = v if v.__class__ is str else deepcopy(v)
        append(d)
    return out


# -- litellm ----------------------------------------------------------------------------
_litellm_lock = threading.Lock()
_litellm = None


def load_litellm():
    """Import and configure litellm once per process; registers the demo model."""
    global _litellm
    if _litellm is not None:
        return _litellm
    with _litellm_lock:
        if _litellm is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            os.environ.setdefault("LITELLM_LOG", "ERROR")
            # litellm copies the whole prompt after every call to shorten base64 images in its
            # logging payload (walking a long history costs more than the demo model's answer);
            # 0 skips that copy. Set it yourself to keep the truncation for a logging callback.
            os.environ.setdefault("MAX_BASE64_LENGTH_FOR_LOGGING", "0")
            import litellm

            from repertory.agents.demo_provider import register_demo_provider

            litellm.suppress_debug_info = True
            litellm.telemetry = False
            register_demo_provider(litellm)
            _litellm = litellm
    return _litellm


_preload_started = False


def preload_litellm(model: str) -> None:
    """Start importing litellm on a daemon thread, once per process, unless ``model`` does not
    need it: the import takes seconds, and the first turn should not pay it on the loop."""
    global _preload_started
    if model == NULL_MODEL or _preload_started or _litellm is not None:
        return
    _preload_started = True
    threading.Thread(target=load_litellm, name="repertory-litellm-import", daemon=True).start()


class LiteLLMClient:
    """Calls any litellm model string (``openai/gpt-4o-mini``, ``ollama/llama3``, ``repertory/demo``)."""

    def __init__(self, *, timeout: float = 120.0, num_retries: int = 2) -> None:
        self.timeout = timeout
        self.num_retries = num_retries

    def _kwargs(self, model: str, messages: list[dict], tools: list[dict] | None, options: dict) -> dict:
        kw: dict[str, Any] = {"model": model, "messages": to_openai(messages),
                              "timeout": self.timeout, "num_retries": self.num_retries}
        if tools:
            kw["tools"] = tools
        # litellm writes into some options it is given (metadata gets "hidden_params"): give it
        # copies, so that the agent's definition (and its key) stays what the user wrote.
        kw.update({k: copy.deepcopy(v) if isinstance(v, (dict, list)) else v for k, v in options.items()})
        return kw

    async def complete(self, model: str, messages: list[dict], *, tools: list[dict] | None = None,
                       **options: Any) -> ModelReply:
        litellm = load_litellm()
        try:
            resp = await litellm.acompletion(**self._kwargs(model, messages, tools, options))
        except Exception as exc:
            raise ModelError(f"model {model!r} failed: {type(exc).__name__}: {exc}") from exc
        return _reply_from(resp, litellm, model)

    async def stream(self, model: str, messages: list[dict], *, tools: list[dict] | None = None,
                     **options: Any) -> AsyncIterator[str | ModelReply]:
        litellm = load_litellm()
        kw = self._kwargs(model, messages, tools, options)
        kw["stream"] = True
        kw["stream_options"] = {"include_usage": True}
        chunks = []
        try:
            resp = await litellm.acompletion(**kw)
            try:
                async for chunk in resp:
                    chunks.append(chunk)
                    delta = chunk.choices[0].delta.content if chunk.choices else None
                    if delta:
                        yield delta
            except BaseException:
                # A cancelled call (a busy policy, a reader gone) hangs up on the provider now,
                # not when the garbage collector finds the connection.
                await _aclose(resp)
                raise
            full = litellm.stream_chunk_builder(chunks, messages=kw["messages"])
        except Exception as exc:
            raise ModelError(f"model {model!r} failed while streaming: {type(exc).__name__}: {exc}") from exc
        yield _reply_from(full, litellm, model)


async def _aclose(resp: Any) -> None:
    close = getattr(resp, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception as exc:  # closing on the way out: the original error matters
            log.debug("stream_close_failed", error=str(exc))


def _cost(resp: Any, litellm: Any, model: str, usage: dict[str, int]) -> float | None:
    # litellm prices a completion as it returns it; a streamed reply is priced from its usage.
    cost = (getattr(resp, "_hidden_params", None) or {}).get("response_cost")
    if cost is None and usage:
        try:
            prompt, completion = litellm.cost_per_token(model=model, prompt_tokens=usage["prompt_tokens"],
                                                        completion_tokens=usage["completion_tokens"])
            cost = prompt + completion
        except Exception:  # a model without a price: no cost recorded
            return None
    return float(cost) if cost is not None else None


def _reply_from(resp: Any, litellm: Any = None, model: str = "") -> ModelReply:
    msg = resp.choices[0].message
    out: dict[str, Any] = {"role": "assistant", "content": msg.content or ""}
    if getattr(msg, "tool_calls", None):
        out["tool_calls"] = [
            {"id": tc.id, "type": "function",
             "function": {"name": tc.function.name, "arguments": tc.function.arguments or "{}"}}
            for tc in msg.tool_calls
        ]
    usage = getattr(resp, "usage", None)
    u = {}
    if usage is not None:
        u = {"prompt_tokens": int(usage.prompt_tokens or 0), "completion_tokens": int(usage.completion_tokens or 0),
             "total_tokens": int(usage.total_tokens or 0)}
    return ModelReply(out, u, _cost(resp, litellm, model, u) if litellm is not None else None)


class NullModelClient:
    """Benchmark instrument: answers ``[null model] ok`` at once, without litellm."""

    async def complete(self, model: str, messages: list[dict], *, tools: list[dict] | None = None,
                       **options: Any) -> ModelReply:
        return ModelReply({"role": "assistant", "content": "[null model] ok"},
                          {"prompt_tokens": 0, "completion_tokens": 3, "total_tokens": 3})

    async def stream(self, model: str, messages: list[dict], *, tools: list[dict] | None = None,
                     **options: Any) -> AsyncIterator[str | ModelReply]:
        reply = await self.complete(model, messages)
        yield reply.message["content"]
        yield reply


def client_for(model: str) -> ModelClient:
    """The client for a model string: the null instrument for ``repertory/null``, else litellm."""
    return NullModelClient() if model == NULL_MODEL else LiteLLMClient()


__all__ += ["DEMO_MODEL", "demo_answer", "load_litellm", "preload_litellm", "to_openai"]
