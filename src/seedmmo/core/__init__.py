"""The pure core: no I/O, no asyncio, no wall clock of its own, no unseeded randomness. Driven
like a sans-I/O protocol: commands in, effects out (:class:`~seedmmo.core.multiverse.
Multiverse`). Import from the modules; nothing is re-exported here."""

__all__: list[str] = []
