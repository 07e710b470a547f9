"""A LangGraph graph whose checkpoints live in repertory's store.

The graph drafts an answer with the offline demo model, then stops at an interrupt for a human
to approve it. A second saver, opened afresh on the same store (as another process would after
a restart), resumes the thread where it stopped.

    python examples/interop_langgraph.py                               # $REPERTORY_HOME/state.db
    python examples/interop_langgraph.py redis://127.0.0.1:6379/0      # or a Redis store, ttl 1 h
"""

import operator
import sys
import uuid
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from repertory.interop import demo_litellm
from repertory.interop.langgraph import RepertorySaver

litellm = demo_litellm()  # litellm, offline, answering the demo model "repertory/demo"


class State(TypedDict):
    messages: Annotated[list[dict], operator.add]
    approved: bool


def draft(state: State) -> dict:
    reply = litellm.completion(model="repertory/demo", messages=state["messages"])
    return {"messages": [{"role": "assistant", "content": reply.choices[0].message.content}]}


def review(state: State) -> dict:
    return {"approved": interrupt({"draft": state["messages"][-1]["content"], "question": "approve?"})}


builder = StateGraph(State)
builder.add_node("draft", draft)
builder.add_node("review", review)
builder.add_edge(START, "draft")
builder.add_edge("draft", "review")
builder.add_edge("review", END)

store = sys.argv[1] if len(sys.argv) > 1 else None  # None: the runtime's store
ttl = 3600 if store and store.startswith("redis") else None
config = {"configurable": {"thread_id": f"review-{uuid.uuid4().hex[:8]}"}}

with RepertorySaver(store, ttl=ttl) as saver:
    graph = builder.compile(checkpointer=saver)
    result = graph.invoke({"messages": [{"role": "user", "content": "My name is Alice"}]}, config)
    print("stopped for:", result["__interrupt__"][0].value["question"])

with RepertorySaver(store, ttl=ttl) as saver:  # a fresh saver: everything comes from the store
    graph = builder.compile(checkpointer=saver)
    assert graph.get_state(config).next == ("review",)
    result = graph.invoke(Command(resume=True), config)
    print("approved:", result["approved"], "| draft:", result["messages"][-1]["content"])
    assert result["approved"] is True and "Alice" in result["messages"][-1]["content"]
    history = list(saver.list(config))
    print("checkpoints in the thread:", len(history))
    saver.delete_thread(config["configurable"]["thread_id"])
