"""WAL checkpoints off the event loop, for the live daemon's SQLite store.

SQLite checkpoints its write-ahead log itself, inside the ``COMMIT`` of whichever
transaction takes the log past 1,000 pages: copying those pages into the database file
and syncing it then happens on the event loop, in the middle of an ingest batch. At
5,000 posts/s that was about half the time spent in ``COMMIT`` (and a snapshot's blob was
copied twice). :class:`Checkpointer` turns the automatic checkpoint off on the store's
connection and runs ``PRAGMA wal_checkpoint(PASSIVE)`` every ``every`` seconds from a
connection of its own in a worker thread (sqlite releases the GIL while it copies), so
the copy runs on another core while the loop goes on.

Durability is unchanged: a commit is in the log either way (``synchronous=NORMAL``: kill
-9 loses nothing committed), and a passive checkpoint never takes the write lock, so
ingest never waits for it. Should the thread fall behind, the log only grows until the
next pass (at most ``every`` seconds of writes); closing the store checkpoints the rest.

A bulk writer (the retention) calls :meth:`Checkpointer.make_room` between its
transactions. Its deletes write the log faster than a pass copies it (~150 MB/s of 4 KB
pages: every index page a chunk touches), which cost the loop twice, 300-460 ms at worst
in a 300k-post pass: the frames written during a pass were left to the pass finished on
the loop (``Store.finish_checkpoint``), and the log, hundreds of MB long by then, was
cut back to ``WAL_KEEP_BYTES`` inside the next commit (an ``ftruncate`` of ~100 MB: ~100
ms). So the bulk writer waits while a pass runs, and once the log is past
``WAL_KEEP_BYTES`` it has a pass run at once and waits for it: the finish then copies only
what the other writers wrote meanwhile, and the cut is of a chunk's worth at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import structlog

from monitor.retry import FailureLog
from monitor.store import Store
from monitor.store.sqlite import WAL_KEEP_BYTES

log = structlog.get_logger(__name__)

EVERY = 1.0
"""Seconds between checkpoints: ~1,000 pages of log at 5,000 posts/s, as SQLite's own."""
RESET_ABOVE = 32 * 1024 * 1024
"""Log size above which a pass is finished on the writer's connection so the log starts
again (``Store.finish_checkpoint``): passes from another connection alone let it grow."""


class Checkpointer:
    """Checkpoints ``store``'s WAL from a thread (see the module docstring)."""

    def __init__(self, store: Store, every: float = EVERY) -> None:
        self.store = store
        self.every = every
        self.passes = 0
        self.resets = 0
        """Passes finished on the writer's connection (the log started again after each)."""
        self.health = FailureLog(log, "wal checkpoint failed", "wal checkpoint recovered")
        self._quiet = asyncio.Event()
        """Set while no pass runs (``make_room``)."""
        self._quiet.set()
        self._wanted = asyncio.Event()
        """A pass is wanted now, not at the next ``every`` (``make_room``)."""
        self._running = False

    @property
    def failures(self) -> int:
        """Passes that failed since start."""
        return self.health.total

    @staticmethod
    def applies(store: object) -> bool:
        """Only a file-backed SQLite store in WAL mode has a log to checkpoint."""
        return isinstance(store, Store) and store.in_wal_mode()

    async def make_room(self) -> None:
        """For a bulk writer, between two of its transactions: return once no pass is
        running; if the log has grown past ``WAL_KEEP_BYTES``, after a pass run now
        (see the module docstring)."""
        if not self._running:  # (stopped, or not started: no pass would come)
            return
        if self._quiet.is_set() and self.store.wal_bytes() > WAL_KEEP_BYTES:
            self._quiet.clear()  # (``run`` starts the pass at its next step)
            self._wanted.set()
        await self._quiet.wait()

    def _checkpoint(self) -> None:
        # A connection per pass, opened and closed in the thread: a pass still running
        # when the daemon stops shares nothing with it.
        self.store.checkpoint()
        self.passes += 1

    async def run(self) -> None:
        """Until cancelled; the store's own automatic checkpoint is off meanwhile."""
        self.store.auto_checkpoint(0)
        self._running = True
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wanted.wait(), self.every)
                self._wanted.clear()
                self._quiet.clear()  # bulk writers wait (``make_room``) until it is over
                try:
                    await self._pass()
                finally:
                    self._quiet.set()
        finally:
            self._running = False
            self._quiet.set()  # (no bulk writer waits for a pass that will not come)
            with contextlib.suppress(sqlite3.Error):
                self.store.auto_checkpoint(1000)  # SQLite's default

    async def _pass(self) -> None:
        try:
            await asyncio.to_thread(self._checkpoint)
        except sqlite3.Error as exc:  # busy or failing: the next pass goes on
            self.health.failed(f"{type(exc).__name__}: {exc}")
            return
        self.health.succeeded()
        # The log's length at the pass, not the file's size: the file stays at up to
        # WAL_KEEP_BYTES (64 MB) after the log starts again, so that finished a pass on
        # the loop every second, each holding it 42 ms (p50; max 317 ms, load 8) while it
        # copied the last second's frames and synced both files.
        if self.store.wal_log_bytes() > RESET_ABOVE:
            # The last frames on the writer's own connection, between two transactions
            # (little is left after the pass): the log starts again.
            with contextlib.suppress(sqlite3.Error):
                self.resets += self.store.finish_checkpoint()
