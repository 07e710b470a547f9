"""A tool for examples/batch/agents.yaml, imported by path: ``example_tools:word_count``."""


def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())
