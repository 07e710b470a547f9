"""Seed page: "User Preference Management"."""
from repertory import Session

session = Session()

session.update_preference("language", "en-GB")
session.update_preference("timezone", "Europe/London")
session.update_preference("output_format", "detailed")

assert session.get_preferences() == {"language": "en-GB", "timezone": "Europe/London", "output_format": "detailed"}
# Stored with the session: a new handle (another process, after a restart) reads them back.
assert Session(session.session_id).user_profile["preferences"]["timezone"] == "Europe/London"
