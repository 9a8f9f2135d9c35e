"""A recorded feed played into the live daemon as it unfolds on the daemon's clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import IO

import structlog

from monitor.clock import Clock
from monitor.feed import BadLine, FeedStats, parse_line, read_feeds
from monitor.sources.base import Batch, Sink
from rules.records import Event

log = structlog.get_logger(__name__)

MAX_BATCH = 1000
"""Lines per batch (one transaction): a feed played faster than the daemon ingests it
(demo speeds, benchmarks) never makes one huge transaction that stalls the loop."""
STREAM_ABOVE = 64 * 1024 * 1024
"""Bytes: a larger plain feed is read as it plays (in file order), not held in memory; a
month of posts would otherwise cost its size several times over in RAM."""


class FeedSource:
    """Submits each line of a feed once the clock reaches its ``created_at``.

    The cursor is the index of the next line (in time order), stored with each batch,
    so a restarted daemon continues where it stopped and replays nothing twice. A large
    plain (not gzip) feed is streamed instead: played in file order (recordings are
    written in arrival order), and its cursor also says where in the file to resume
    (``index@byte@line``), so a restart does not read what was played.
    """

    def __init__(self, path: Path, clock: Clock, cursor: str | None = None,
                 name: str = "") -> None:
        self.path = path
        self.clock = clock
        self.name = name or f"feed:{path.name}"
        self.stats = FeedStats()
        self._stream: _Stream | None = None
        self._events: list[Event] | None = None
        parts = (cursor or "").split("@")
        self.position = int(parts[0]) if parts[0].isdigit() else 0
        if path.suffix != ".gz" and path.stat().st_size > STREAM_ABOVE:
            offset, line = (int(parts[1]), int(parts[2])) if len(parts) == 3 else (0, 0)
            self._stream = _Stream(path, offset, line, self.stats)
            if len(parts) != 3:  # a cursor from before streaming: skip what was played
                for _ in range(self.position):
                    if self._stream.peek() is None:
                        break
                    self._stream.take()
            self._events = []

    @property
    def events(self) -> list[Event]:
        """Every event of the feed in time order (read on first use: a restart need not
        wait for it, ``run`` reads it off the loop; empty for a streamed feed)."""
        if self._events is None:
            self._events = self._read()
        return self._events

    def _read(self) -> list[Event]:
        events = read_feeds([self.path], self.stats)
        for bad in self.stats.bad:
            log.warning("feed line skipped", source=self.name, where=f"{bad.file}:{bad.line}",
                        reason=bad.reason)
        return events

    @property
    def next_time(self) -> float | None:
        """``created_at`` of the next line to submit, None when the feed is done."""
        if self._stream is not None:
            event = self._stream.peek()
            return None if event is None else event.created_at
        if self.position < len(self.events):
            return self.events[self.position].created_at
        return None

    async def run(self, sink: Sink) -> None:
        if self._stream is not None:
            await self._run_stream(sink, self._stream)
            return
        if self._events is None:
            self._events = await asyncio.to_thread(self._read)
        events = self._events
        log.info("feed source started", source=self.name, lines=len(events),
                 resume_at=self.position)
        while self.position < len(events):
            await self.clock.sleep_until(events[self.position].created_at)
            now = self.clock.now()
            end = self.position
            while end < len(events) and events[end].created_at <= now \
                    and end - self.position < MAX_BATCH:
                end += 1
            await sink.ingest(Batch(self.name, events[self.position:end], str(end)))
            self.position = end
            await asyncio.sleep(0)  # played faster than ingested: the loop's others run too
        log.info("feed source finished", source=self.name, lines=len(events))

    async def _run_stream(self, sink: Sink, stream: _Stream) -> None:
        log.info("feed source started", source=self.name, streamed=True,
                 resume_at=self.position)
        while (event := stream.peek()) is not None:
            await self.clock.sleep_until(event.created_at)
            now = self.clock.now()
            batch: list[Event] = []
            while (event := stream.peek()) is not None and event.created_at <= now \
                    and len(batch) < MAX_BATCH:
                batch.append(stream.take())
            self.position += len(batch)
            await sink.ingest(Batch(self.name, batch,
                                    f"{self.position}@{stream.offset}@{stream.line}"))
            await asyncio.sleep(0)
        log.info("feed source finished", source=self.name, lines=self.position)


class _Stream:
    """The events of a feed file read one line ahead, with where the next one starts."""

    def __init__(self, path: Path, offset: int, line: int, stats: FeedStats) -> None:
        self.path = path
        self.fh: IO[bytes] = path.open("rb")
        self.fh.seek(offset)
        self.offset = offset
        """Byte offset of the line after the events taken."""
        self.line = line
        self.stats = stats
        self._next: Event | None = None
        self._next_end = (offset, line)

    def peek(self) -> Event | None:
        if self._next is None:
            self._read()
        return self._next

    def take(self) -> Event:
        event = self.peek()
        assert event is not None
        self._next = None
        self.offset, self.line = self._next_end
        return event

    def _read(self) -> None:
        offset, line = self.offset, self.line  # where the file stands: read in order
        name = str(self.path)
        while raw := self.fh.readline():
            offset += len(raw)
            line += 1
            if not raw.strip():
                continue
            self.stats.lines += 1
            parsed = parse_line(raw, name, line, f"{self.path.name}:{line}")
            if isinstance(parsed, BadLine):
                self.stats.bad.append(parsed)
                log.warning("feed line skipped", where=f"{parsed.file}:{parsed.line}",
                            reason=parsed.reason)
                continue
            self.stats.events += 1
            self._next, self._next_end = parsed, (offset, line)
            return
        self._next_end = (offset, line)
        self.offset, self.line = offset, line
