"""Seed page: "Session Context Building"."""
from datetime import datetime

from repertory import Session


class ContextualSession(Session):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.context_window = 10 # Keep last 10 interactions
        self.user_profile = {}
        self.session_metadata = {
            "created_at": datetime.now(),
            "interactions": 0
        }

    def build_context(self):
        # Build context from recent history
        recent_history = self.get_history()[-self.context_window:]
        context = {
            "user_profile": self.user_profile,
            "recent_topics": self.extract_topics(recent_history),
            "session_duration": (datetime.now() - self.session_metadata["created_at"]).seconds,
            "interaction_count": self.session_metadata["interactions"]
        }
        return context

    def chat(self, message):
        # Update metadata
        self.session_metadata["interactions"] += 1
        # Add context to agent
        context = self.build_context()
        self.agent.context = context
        return super().chat(message)

    def update_profile(self, key, value):
        self.user_profile[key] = value


s = ContextualSession()
s.update_profile("name", "Carol")
s.chat("I am planning a trip to Lisbon")
reply = s.chat("What is my name?")
assert "Carol" in reply, reply  # the context reached the prompt
