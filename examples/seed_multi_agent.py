"""Seed page: "Multi-Agent Sessions"."""
from repertory import Agent, Session, SharedState

# Shared state for agents
shared_state = SharedState()
# Create specialised agents
research_agent = Agent(
name="Researcher",
instructions="Research topics thoroughly"
)
writer_agent = Agent(
name="Writer",
instructions="Write based on research"
)
# Create session with multiple agents
session = Session(
session_id="project_x",
agents={
"research": research_agent,
"writer": writer_agent
},
shared_state=shared_state
)
# Agents share state
session.run_agent("research", "Research quantum computing")
session.run_agent("writer", "Write an article based on the research")
assert [m["agent"] for m in session.get_history()] == ["research"] * 2 + ["writer"] * 2
