"""Tools that stored agent definitions name by import path (``definition_tools:weather``)."""

import repertory


@repertory.tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def unmarked(city: str) -> str:
    """A tool a stored definition may name but never restore: it is not marked @repertory.tool."""
    return f"unmarked {city}"
