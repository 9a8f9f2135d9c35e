"""crisismon runtime: CLI, config, clock, records, store, sources and the daemon."""

__version__ = "0.1.0"
