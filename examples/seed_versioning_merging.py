"""Seed page: "State Versioning" and "State Merging" (recipes), then the built-ins."""
from datetime import datetime

from repertory import Session


class VersionedSession(Session):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.state_versions = []
        self.current_version = 0

    def save_version(self, description=""):
        version = {
            "version": self.current_version,
            "timestamp": datetime.now(),
            "description": description,
            "state": self.get_state()
        }
        self.state_versions.append(version)
        self.current_version += 1
        return self.current_version - 1

    def restore_version(self, version_number):
        for version in self.state_versions:
            if version["version"] == version_number:
                self.set_state(version["state"])
                return True
        return False

    def list_versions(self):
        return [
            {
                "version": v["version"],
                "timestamp": v["timestamp"],
                "description": v["description"]
            }
            for v in self.state_versions
        ]


class MergableSession(Session):
    def merge_sessions(self, other_session):
        # Merge conversation histories
        merged_history = self.get_history() + other_session.get_history()
        merged_history.sort(key=lambda x: x.get("timestamp", 0))
        # Merge user data
        merged_user_data = {**self.user_data, **other_session.user_data}
        # Create new session with merged state
        merged_session = Session(
            session_id=f"{self.session_id}_merged",
            agent=self.agent
        )
        merged_session.set_history(merged_history)
        merged_session.user_data = merged_user_data
        return merged_session


v = VersionedSession()
v.chat("first")
n = v.save_version("after first")
v.chat("second")
assert v.restore_version(n) and len(v.get_history()) == 2
assert v.list_versions()[0]["description"] == "after first"

a, b = MergableSession(), MergableSession()
a.user_data = {"x": 1}
b.user_data = {"y": 2}
a.chat("from a")
b.chat("from b")
m = a.merge_sessions(b)
assert len(m.get_history()) == 4 and m.user_data == {"x": 1, "y": 2}

# Built in: versions, and a merge that reports conflicts.
s = Session()
s.chat("hello")
assert s.save_version("greeting") == 0
s.chat("more")
assert s.restore_version(0) and len(s.get_history()) == 2
assert s.restore_version(42) is False
a.user_data["x"] = 1
b.user_data["x"] = 99
merged = Session.merge(a, b, session_id="merged-a-b")
assert [c["key"] for c in merged.merge_conflicts] == ["x"]
