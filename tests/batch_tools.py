"""Tools imported by path in the batch tests (``batch_tools:weather``)."""

NOT_CALLABLE = 42


def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"
