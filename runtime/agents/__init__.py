"""Agents: definitions, the core that runs a turn, tools, model clients, the demo model."""
