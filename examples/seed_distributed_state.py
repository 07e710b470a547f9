"""Seed page: "Distributed Session State" (the recipe, against the local Redis)."""
import json

import redis

from repertory import Session


class DistributedSession(Session):
    def __init__(self, *args, redis_host="localhost", redis_port=6379, **kwargs):
        super().__init__(*args, **kwargs)
        self.redis_client = redis.Redis(host=redis_host, port=redis_port)
        self.state_key = f"session:{self.session_id}"

    def save_state(self):
        # Save state to Redis
        state = {
            "history": self.get_history(),
            "user_data": getattr(self, "user_data", {}),
            "metadata": getattr(self, "metadata", {})
        }
        self.redis_client.set(
            self.state_key,
            json.dumps(state),
            ex=3600 # Expire after 1 hour
        )

    def load_state(self):
        # Load state from Redis
        state_data = self.redis_client.get(self.state_key)
        if state_data:
            state = json.loads(state_data)
            self.set_history(state["history"])
            self.user_data = state["user_data"]
            self.metadata = state["metadata"]
            return True
        return False

    def chat(self, message):
        # Load latest state
        self.load_state()
        # Process message
        response = super().chat(message)
        # Save updated state
        self.save_state()
        return response


s = DistributedSession(redis_host="127.0.0.1")
s.user_data["plan"] = "pro"
s.chat("My name is Dana")
assert "Dana" in s.chat("What's my name?")
assert s.user_data == {"plan": "pro"}
s.redis_client.delete(s.state_key)
