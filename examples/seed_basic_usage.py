"""Seed page: "Creating a Session" and "Persisting Session State"."""
from repertory import Agent, Session
import uuid
# Create a unique session ID
session_id = str(uuid.uuid4())
# Create an agent
agent = Agent(
name="Assistant",
instructions="You are a helpful assistant with memory"
)
# Create a session
session = Session(session_id=session_id, agent=agent)
# Interact with the session
response1 = session.chat("My name is Alice")
response2 = session.chat("What's my name?") # Will remember "Alice"
assert "Alice" in response2, response2

# Save session state
session.save("sessions/alice_session.pkl")
# Later, restore the session
restored_session = Session.load("sessions/alice_session.pkl")
# Continue conversation with context
response = restored_session.chat("What did we discuss earlier?")
assert "Alice" in response, response
