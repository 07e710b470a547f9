"""Seed page: "Memory Integration" (short-term and long-term memory)."""
from repertory import Agent, Session, Memory

# Configure memory
memory = Memory(
    provider="sqlite", # or "chromadb", "mem0"
    config={
        "db_path": "memories.db",
        "embedding_model": "text-embedding-ada-002"
    }
)

# Create agent with memory
agent = Agent(
    name="MemoryAgent",
    instructions="Remember user preferences and past conversations",
    memory=memory
)

# Session with persistent memory
session = Session(
    session_id="user_123",
    agent=agent,
    persist_memory=True
)

# Memory is automatically saved and retrieved
session.chat("I prefer Python over JavaScript")
session.chat("My favourite colour is blue")

# Later sessions will remember
new_session = Session(session_id="user_123", agent=agent)
response = new_session.chat("What's my favourite programming language?")
# Response: "Based on our previous conversation, your favourite programming language is Python"
