"""Repertory's stores under other agent frameworks.

``repertory.interop.langgraph.RepertorySaver`` is a LangGraph checkpointer and
``repertory.interop.openai_agents.RepertorySession`` an OpenAI Agents SDK session, both on
repertory's SQLite and Redis stores. Each needs its framework installed
(``pip install 'repertory[langgraph]'`` or ``'repertory[openai-agents]'``), so neither is
imported here.
"""

__all__: list[str] = []
