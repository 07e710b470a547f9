"""Long-term memory: ``settings`` (what a Memory is configured with), ``quality`` (scoring),
``extract`` (facts from a turn), ``sqlite`` (the provider), ``recall`` (an agent's side of a
turn) and ``memory`` (the public :class:`~repertory.Memory`). The public names are exported
by ``repertory`` itself; this package imports nothing, so the agent core can use its lower
modules without loading the runtime."""
