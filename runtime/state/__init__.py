"""The declared shapes of stored state (pure checks, no I/O)."""
