"""Runtimes: where hosts and agents live (in this process, or on Ray), behind the typed host boundary."""
