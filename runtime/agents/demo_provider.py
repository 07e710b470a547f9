"""Registers the demo model with litellm as the custom provider ``repertory``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from repertory.agents.demo_model import DEMO_CONTEXT_WORDS, DEMO_MODEL, demo_answer

__all__ = ["register_demo_provider"]


def _chunks(text: str) -> list[str]:
    # Word-sized deltas, spaces kept, so that the concatenation is the exact reply.
    parts, cur = [], ""
    for ch in text:
        cur += ch
        if ch == " ":
            parts.append(cur)
            cur = ""
    if cur:
        parts.append(cur)
    return parts


def register_demo_provider(litellm: Any) -> None:
    """Add ``repertory/demo`` to ``litellm.custom_provider_map`` (idempotent)."""
    from litellm import CustomLLM
    from litellm.types.utils import GenericStreamingChunk

    if any(item.get("provider") == "repertory" for item in litellm.custom_provider_map):
        return

    class DemoProvider(CustomLLM):
        """Deterministic demo model; see :mod:`repertory.agents.demo_model`."""

        def _fill(self, messages: list, model_response: Any) -> Any:
            ans = demo_answer(messages)
            model_response.choices[0].message.content = ans.text
            model_response.choices[0].finish_reason = "stop"
            model_response.model = DEMO_MODEL
            model_response.created = int(time.time())
            model_response.usage = litellm.Usage(
                prompt_tokens=ans.prompt_tokens, completion_tokens=ans.completion_tokens,
                total_tokens=ans.prompt_tokens + ans.completion_tokens,
            )
            return model_response

        def completion(self, model, messages, api_base, custom_prompt_dict, model_response, *a, **kw):
            return self._fill(messages, model_response)

        async def acompletion(self, model, messages, api_base, custom_prompt_dict, model_response, *a, **kw):
            return self._fill(messages, model_response)

        def _stream(self, messages: list) -> list[GenericStreamingChunk]:
            ans = demo_answer(messages)
            parts = _chunks(ans.text)
            out = []
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                out.append(GenericStreamingChunk(
                    text=part, is_finished=last, finish_reason="stop" if last else "",
                    index=0, tool_use=None,
                    usage={"prompt_tokens": ans.prompt_tokens, "completion_tokens": ans.completion_tokens,
                           "total_tokens": ans.prompt_tokens + ans.completion_tokens} if last else None,
                ))
            return out

        def streaming(self, model, messages, *a, **kw) -> Iterator[GenericStreamingChunk]:
            yield from self._stream(messages)

        async def astreaming(self, model, messages, *a, **kw) -> AsyncIterator[GenericStreamingChunk]:
            for chunk in self._stream(messages):
                yield chunk

    litellm.custom_provider_map = [*litellm.custom_provider_map,
                                   {"provider": "repertory", "custom_handler": DemoProvider()}]
    # Cost and context information so litellm's cost tracking has nothing to look up.
    litellm.register_model({DEMO_MODEL: {
        "max_tokens": 8192, "max_input_tokens": DEMO_CONTEXT_WORDS, "max_output_tokens": 8192,
        "input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
        "litellm_provider": "repertory", "mode": "chat",
    }})
