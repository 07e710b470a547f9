"""Shared state: the SharedState handle and the SharedStateCore it reaches."""
