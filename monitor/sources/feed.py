"""A recorded feed played into the live daemon as it unfolds on the daemon's clock."""

from __future__ import annotations

from pathlib import Path

import structlog

from monitor.clock import Clock
from monitor.feed import FeedStats, read_feeds
from monitor.model import Event
from monitor.sources.base import Batch, Sink

log = structlog.get_logger(__name__)


class FeedSource:
    """Submits each line of a feed once the clock reaches its ``created_at``.

    The cursor is the index of the next line (in time order), stored with each batch,
    so a restarted daemon continues where it stopped and replays nothing twice.
    """

    def __init__(self, path: Path, clock: Clock, cursor: str | None = None,
                 name: str = "") -> None:
        self.path = path
        self.clock = clock
        self.name = name or f"feed:{path.name}"
        self.stats = FeedStats()
        self.events: list[Event] = read_feeds([path], self.stats)
        self.position = int(cursor) if cursor and cursor.isdigit() else 0
        for bad in self.stats.bad:
            log.warning("feed line skipped", source=self.name, where=f"{bad.file}:{bad.line}",
                        reason=bad.reason)

    @property
    def next_time(self) -> float | None:
        """``created_at`` of the next line to submit, None when the feed is done."""
        if self.position < len(self.events):
            return self.events[self.position].created_at
        return None

    async def run(self, sink: Sink) -> None:
        events = self.events
        log.info("feed source started", source=self.name, lines=len(events),
                 resume_at=self.position)
        while self.position < len(events):
            await self.clock.sleep_until(events[self.position].created_at)
            now = self.clock.now()
            end = self.position
            while end < len(events) and events[end].created_at <= now:
                end += 1
            await sink.ingest(Batch(self.name, events[self.position:end], str(end)))
            self.position = end
        log.info("feed source finished", source=self.name, lines=len(events))
