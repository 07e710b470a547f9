"""Chaos runs: seeded faults under load, and a checker that judges every session against the acknowledgement log."""
