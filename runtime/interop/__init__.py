"""Repertory's stores under other agent frameworks.

``repertory.interop.langgraph.RepertorySaver`` is a LangGraph checkpointer and
``repertory.interop.openai_agents.RepertorySession`` an OpenAI Agents SDK session, both on
repertory's SQLite and Redis stores. Each needs its framework installed
(``pip install 'repertory[langgraph]'`` or ``'repertory[openai-agents]'``), so neither is
imported here.
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["demo_litellm"]


def demo_litellm() -> ModuleType:
    """litellm, set up as repertory uses it: offline (local cost map, no telemetry) and answering
    ``repertory/demo``, the demo model. For graphs and agents that call litellm themselves
    (LangGraph nodes, the Agents SDK's ``LitellmModel``): call it before they import litellm."""
    from repertory.agents.model_client import load_litellm

    return load_litellm()
