"""The live daemon: sources -> pipeline -> outbox -> channels, under one TaskGroup.

Start: open the store, rebuild the engine from stored events (re-arming every pending
deadline), send what was never sent. Run: each source's batches are stored and
processed in one transaction; a timer fires deadlines as the clock reaches them; one
outbox worker per channel delivers. Stop (SIGTERM/SIGINT or the ``stop`` event): stop
the sources, stop the timer, flush the outbox within a deadline, close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

import structlog

from alerts.alertlog import AlertLogChannel
from alerts.console import ConsoleChannel
from alerts.outbox import Outbox, Sender
from monitor.app import build_pipeline, open_store
from monitor.clock import Clock, ScaledClock, WallClock
from monitor.config import Config, FeedSourceConfig
from monitor.pipeline import Pipeline
from monitor.sources.base import Batch, Source
from monitor.sources.feed import FeedSource
from monitor.store import Store

log = structlog.get_logger(__name__)

FLUSH_TIMEOUT = 10.0
CLOCK_META = "clock"


class Daemon:
    """Owns the store, the pipeline and the outbox; is the sink every source feeds."""

    def __init__(self, config: Config, store: Store, pipeline: Pipeline, clock: Clock,
                 channels: Sequence[Sender], delivery_clock: Clock | None = None) -> None:
        self.config = config
        self.store = store
        self.pipeline = pipeline
        self.clock = clock
        self.outbox = Outbox(store, {c.name: c for c in channels}, delivery_clock or WallClock())
        self._rearm = asyncio.Event()
        self.batches = 0

    async def ingest(self, batch: Batch) -> None:
        """Store and process one batch; the cursor advances in the same transaction."""
        now = self.clock.now()
        before = self.pipeline.engine.next_due()
        with self.store.transaction():
            for event in batch.events:
                self.pipeline.handle(event, now)
            if batch.cursor is not None:
                self.store.set_cursor(batch.source, batch.cursor)
            self.store.set_meta(CLOCK_META, repr(now))
        self.batches += 1
        if self.pipeline.engine.next_due() is not None and \
                self.pipeline.engine.next_due() <= now:  # type: ignore[operator]
            self.fire_due()  # deadlines a late batch left behind
        self.outbox.notify()
        after = self.pipeline.engine.next_due()
        if after is not None and (before is None or after < before):
            self._rearm.set()

    def fire_due(self) -> int:
        """Fire every deadline due by now; returns how many alerts that raised."""
        now = self.clock.now()
        with self.store.transaction():
            alerts = self.pipeline.tick(now)
            self.store.set_meta(CLOCK_META, repr(now))
        if alerts:
            self.outbox.notify()
        return len(alerts)

    async def timer(self) -> None:
        """Wake at each deadline (or sooner, when a new earlier one is set) and fire it."""
        while True:
            self._rearm.clear()
            due = self.pipeline.engine.next_due()
            if due is None:
                await self._rearm.wait()
                continue
            sleeper = asyncio.ensure_future(self.clock.sleep_until(due))
            rearm = asyncio.ensure_future(self._rearm.wait())
            try:
                await asyncio.wait({sleeper, rearm}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                rearm.cancel()
            if self.clock.now() >= due:
                self.fire_due()

    async def run(self, sources: Sequence[Source], stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down in order within a bounded time."""
        with self.store.transaction():
            unsent = self.pipeline.rebuild()
        anchor = getattr(self.clock, "anchor", None)
        if callable(anchor):
            anchor()  # a demo clock starts now, not when the (slow) start-up began
        self.fire_due()
        if unsent:
            log.info("sending alerts left unsent before the restart", count=len(unsent))
        async with asyncio.TaskGroup() as tg:
            source_tasks = [tg.create_task(s.run(self), name=f"source:{s.name}")
                            for s in sources]
            timer = tg.create_task(self.timer(), name="timer")
            workers = [tg.create_task(self.outbox.run(name), name=f"outbox:{name}")
                       for name in self.outbox.channels]
            self.outbox.notify()
            await stop.wait()
            log.info("stopping: no more input")
            for task in source_tasks:
                task.cancel()
            timer.cancel()
            for task in workers:
                task.cancel()
        await self.outbox.flush(FLUSH_TIMEOUT)


def make_clock(config: Config, store: Store, feeds: Sequence[FeedSource]) -> Clock:
    """Wall time, unless a recorded feed drives the demo: then scaled feed time."""
    if not feeds:
        return WallClock()
    saved = store.get_meta(CLOCK_META)
    starts = [f.next_time for f in feeds if f.next_time is not None]
    if saved is not None:
        start = float(saved)
    elif starts:
        start = min(starts)
    else:
        start = max((f.events[-1].created_at for f in feeds if f.events), default=0.0)
    speed = next(s.speed for s in config.sources if isinstance(s, FeedSourceConfig))
    return ScaledClock(start, speed)


def build_channels(config: Config) -> list[Sender]:
    channels: list[Sender] = [AlertLogChannel(config.resolve(config.alerts.log), config.tz)]
    if config.alerts.terminal:
        channels.append(ConsoleChannel(sys.stdout, config.tz))
    return channels


async def run_daemon(config: Config, stop: asyncio.Event | None = None) -> int:
    """``crisismon run``. Returns the exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    store = open_store(config)
    channels = build_channels(config)
    try:
        feeds: list[FeedSource] = []
        for i, sc in enumerate(config.sources):
            if isinstance(sc, FeedSourceConfig):
                name = sc.name or f"feed{i}:{sc.path}"
                path = config.resolve(sc.path)
                if not path.is_file():
                    log.error("feed file not found", source=name, path=str(path))
                    return 2
                feeds.append(FeedSource(path, WallClock(), store.get_cursor(name), name))
        clock = make_clock(config, store, feeds)
        for f in feeds:
            f.clock = clock
        pipeline = build_pipeline(config, store, [c.name for c in channels])
        daemon = Daemon(config, store, pipeline, clock, channels)
        log.info("crisismon started", brands=[b.name for b in config.brands],
                 sources=[f.name for f in feeds], store=store.path)
        await daemon.run(feeds, stop)
        log.info("crisismon stopped cleanly")
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        store.close()
        for c in channels:
            close = getattr(c, "close", None)
            if callable(close):
                close()
