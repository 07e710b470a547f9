"""A session's state: SessionState, the operations on it, its schema, merge and files."""
