"""What every source hands the daemon: a batch of events and the cursor that got them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rules.records import Event


@dataclass(frozen=True, slots=True)
class Batch:
    """Events from one fetch. ``cursor`` is stored in the same transaction as the events,
    so a source resumes exactly after the last batch that was stored."""

    source: str
    events: Sequence[Event]
    cursor: str | None = None
    rejected: int = 0
    """Items the source could not parse (already logged with their place)."""


class Sink(Protocol):
    """Where sources put their batches; returns once the batch is durably stored."""

    async def ingest(self, batch: Batch) -> None: ...


class Source(Protocol):
    """A named, long-running producer of batches."""

    name: str

    async def run(self, sink: Sink) -> None:
        """Produce batches until cancelled (or the source is exhausted)."""
        ...
