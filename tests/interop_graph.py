"""A LangGraph graph with an interrupt, run in its own process by test_interop_langgraph.py:

    python tests/interop_graph.py STORE_URL THREAD start    # runs until the interrupt, exits
    python tests/interop_graph.py STORE_URL THREAD resume   # resumes with "yes", prints the state

Prints one JSON line with the state (and the interrupt's payload when stopped).
"""

from __future__ import annotations

import json
import operator
import os
import sys
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from repertory.interop.langgraph import RepertorySaver


class State(TypedDict):
    steps: Annotated[list[str], operator.add]
    answer: str


def plan(state: State) -> dict:
    return {"steps": [f"plan by pid {os.getpid()}"]}


def approve(state: State) -> dict:
    return {"answer": interrupt({"question": "go ahead?", "steps": state["steps"]})}


def act(state: State) -> dict:
    return {"steps": [f"act ({state['answer']}) by pid {os.getpid()}"]}


def graph(saver: RepertorySaver):
    b = StateGraph(State)
    b.add_node("plan", plan)
    b.add_node("approve", approve)
    b.add_node("act", act)
    b.add_edge(START, "plan")
    b.add_edge("plan", "approve")
    b.add_edge("approve", "act")
    b.add_edge("act", END)
    return b.compile(checkpointer=saver)


def main() -> None:
    url, thread, mode = sys.argv[1:4]
    config = {"configurable": {"thread_id": thread}}
    with RepertorySaver(url) as saver:
        g = graph(saver)
        if mode == "start":
            out = g.invoke({"steps": ["input"]}, config)
            print(json.dumps({"interrupt": out["__interrupt__"][0].value, "next": list(g.get_state(config).next)}))
        else:
            out = g.invoke(Command(resume="yes"), config)
            print(json.dumps({"state": out, "next": list(g.get_state(config).next)}))


if __name__ == "__main__":
    main()
