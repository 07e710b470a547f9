"""An OpenAI Agents SDK agent whose conversation lives in repertory's store.

The agent runs on the offline demo model (through the SDK's LitellmModel); its session is a
RepertorySession, so a second run, from a fresh session object (as another process would
after a restart), still sees the first exchange.

    python examples/interop_openai_agents.py                              # $REPERTORY_HOME/state.db
    python examples/interop_openai_agents.py redis://127.0.0.1:6379/0     # or a Redis store, ttl 1 h
"""

import asyncio
import sys
import uuid

from repertory.interop import demo_litellm

demo_litellm()  # before the SDK imports litellm: offline, answering "repertory/demo"

from agents import Agent, Runner, set_tracing_disabled  # noqa: E402
from agents.extensions.models.litellm_model import LitellmModel  # noqa: E402

from repertory.interop.openai_agents import RepertorySession  # noqa: E402

set_tracing_disabled(True)  # the SDK would send traces to OpenAI
agent = Agent(name="Assistant", instructions="You are a helpful assistant with memory",
              model=LitellmModel(model="repertory/demo", api_key="offline"))
store = sys.argv[1] if len(sys.argv) > 1 else None  # None: the runtime's store
ttl = 3600 if store and store.startswith("redis") else None
session_id = f"user-{uuid.uuid4().hex[:8]}"


async def main() -> None:
    session = RepertorySession(session_id, store, ttl=ttl)
    first = await Runner.run(agent, "My name is Alice", session=session)
    print("first:", first.final_output)
    await session.aclose()

    session = RepertorySession(session_id, store, ttl=ttl)  # a fresh object: items come from the store
    second = await Runner.run(agent, "What's my name?", session=session)
    print("second:", second.final_output)
    assert "Alice" in second.final_output, second.final_output
    items = await session.get_items()
    print("items in the session:", len(items), "| revision:", await session.revision())
    await session.clear_session()
    await session.aclose()


asyncio.run(main())
