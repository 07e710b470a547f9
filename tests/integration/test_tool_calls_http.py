"""A tool-calling turn through litellm against a local OpenAI-compatible server."""

import pytest

from openai_server import OpenAIServer
from repertory import Agent, ModelError, Session

pytestmark = pytest.mark.ray


@pytest.fixture
def server():
    with OpenAIServer() as srv:
        yield srv


def _agent(server, **kw):
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"sunny in {city}"

    return Agent(name="Weather", instructions="Use tools.", model="openai/test-model", tools=[get_weather],
                 api_base=server.base_url, api_key="test-key", **kw)


def test_tool_call_recorded_in_history(runtime, server):
    s = Session(session_id="weather", agent=_agent(server))
    reply = s.chat("What's the weather in Paris?")
    assert reply == "The tool said: sunny in Paris"
    hist = s.get_history()
    assert [m["role"] for m in hist] == ["user", "assistant", "tool", "assistant"]
    call = hist[1]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and "Paris" in call["function"]["arguments"]
    assert hist[2]["tool_call_id"] == call["id"] and hist[2]["content"] == "sunny in Paris"
    # the tool schema reached the server
    assert server.requests[0]["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assert hist[-1]["usage"]["total_tokens"] == 15


def test_streamed_tool_call(runtime, server):
    s = Session(session_id="weather-stream", agent=_agent(server))
    chunks = list(s.stream("Weather in Paris?"))
    hist = s.get_history()
    assert "".join(chunks) == hist[-1]["content"] == "The tool said: sunny in Paris"
    assert [m["role"] for m in hist] == ["user", "assistant", "tool", "assistant"]


def test_retries_then_model_error(runtime, server):
    s = Session(session_id="flaky", agent=Agent(name="Echo", model="openai/test-model",
                                                 api_base=server.base_url, api_key="k", num_retries=2))
    server.fail_next = 1
    assert s.chat("hello") == "echo: hello"  # one failure absorbed by a retry
    server.fail_next = 10
    with pytest.raises(ModelError):
        s.chat("this fails")
    assert [m["content"] for m in s.get_history()] == ["hello", "echo: hello"]
