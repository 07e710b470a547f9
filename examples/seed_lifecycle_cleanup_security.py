"""Seed page: "Session Lifecycle Management", "Session Cleanup", "Security Considerations",
"User Preference Management" and "Conversation Branching"."""
import hashlib
import hmac
import os
from datetime import datetime, timedelta

from repertory import Session


class ManagedSession(Session):
    def __enter__(self):
        # Load existing state if available
        try:
            self.load(f"sessions/{self.session_id}.pkl")
        except FileNotFoundError:
            pass
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        # Always save state on exit
        self.save(f"sessions/{self.session_id}.pkl")


# Usage
with ManagedSession(session_id="user_789") as session:
    response = session.chat("Process this request")
# State automatically saved on exit
assert len(Session(session_id="user_789").get_history()) == 2
with ManagedSession(session_id="user_789") as session:
    session.chat("And this one")
assert len(Session.load("sessions/user_789.pkl").get_history()) == 4


def cleanup_old_sessions(session_dir="sessions", days_to_keep=30):
    cutoff_date = datetime.now() - timedelta(days=days_to_keep)
    for filename in os.listdir(session_dir):
        filepath = os.path.join(session_dir, filename)
        # Check file age
        file_modified = datetime.fromtimestamp(os.path.getmtime(filepath))
        if file_modified < cutoff_date:
            os.remove(filepath)
            print(f"Removed old session: {filename}")


cleanup_old_sessions()
assert os.path.exists("sessions/user_789.pkl")


class SecureSession(Session):
    def __init__(self, *args, secret_key=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.secret_key = secret_key or os.urandom(32)

    def generate_session_token(self):
        # Generate secure session token
        message = f"{self.session_id}:{datetime.now().isoformat()}"
        signature = hmac.new(
            self.secret_key,
            message.encode(),
            hashlib.sha256
        ).hexdigest()
        return f"{message}:{signature}"

    def verify_session_token(self, token):
        try:
            message, signature = token.rsplit(":", 1)
            expected_signature = hmac.new(
                self.secret_key,
                message.encode(),
                hashlib.sha256
            ).hexdigest()
            return hmac.compare_digest(signature, expected_signature)
        except:
            return False


secure = SecureSession()
token = secure.generate_session_token()
assert secure.verify_session_token(token) and not secure.verify_session_token(token + "0")

session = Session()
session.update_preference("language", "en-GB")
session.update_preference("timezone", "Europe/London")
session.update_preference("output_format", "detailed")
assert session.get_preferences()["timezone"] == "Europe/London"

# Save current state
branch_point = session.create_checkpoint()
# Explore one path
response1 = session.chat("What if we use approach A?")
# Return to branch point
session.restore_checkpoint(branch_point)
# Explore alternative path
response2 = session.chat("What if we use approach B?")
assert [m["content"] for m in session.get_history() if m["role"] == "user"] == ["What if we use approach B?"]
