"""The Session handle users hold, split by concept: chat and history, branches, user data."""
