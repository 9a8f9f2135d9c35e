"""Waiting out a SQLite store that another process has locked.

SQLite lets one writer in at a time. When another process holds the write lock (an
operator's ``sqlite3`` shell inside ``BEGIN EXCLUSIVE``, a backup tool), our write gets
``database is locked`` once ``busy_timeout`` has passed. That must neither crash the
daemon nor lose anything, so every write the daemon makes on its own (a batch, a due
deadline, a delivery's outcome) goes through :meth:`StoreLocks.retry`: try, and while the
store is locked wait (with backoff) and try again.

Why ``busy_timeout`` is short (:data:`BUSY_TIMEOUT_MS`) in the daemon: SQLite waits for it
inside the call, which blocks the event loop, so with the library default of seconds every
source, channel and the HTTP server would freeze with it. A short one rides over another
writer's ordinary transaction; a longer lock is waited out here, asynchronously. Only the
first try of a write takes the lock (``BEGIN IMMEDIATE``), so a retry never repeats half
a transaction, and a source's cursor or MQTT acknowledgement only moves once its batch
is committed.

The waits are real seconds, not the injected clock's: the lock is held in real time by
another process. The episode is logged once when it starts and once when it ends, and
counted for ``/metrics``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

import structlog

from monitor.retry import backoff

log = structlog.get_logger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 100
"""SQLite's own wait for the lock, in the daemon (it blocks the event loop meanwhile)."""
RETRY_FIRST = 0.05
RETRY_MAX = 2.0


def is_locked(exc: BaseException) -> bool:
    """True for SQLite's ``database is locked`` / ``busy`` (another writer holds the lock)."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc)
    return "locked" in text or "busy" in text


def retry_delay(attempt: int) -> float:
    """Seconds before try ``attempt + 1`` of a locked write: doubling, capped."""
    # No jitter: the wait is for another process's lock, not shared with other clients.
    return backoff(attempt + 1, base=RETRY_FIRST, cap=RETRY_MAX, rand=None)


class StoreLocks:
    """Retries writes while the store is locked; remembers it for logs and metrics."""

    def __init__(self) -> None:
        self.retries: Counter[str] = Counter()
        """Locked tries, by operation (``ingest``, ``deadlines``, ``outbox``...)."""
        self.waiting: set[str] = set()
        """Operations waiting for the lock right now (the ``/metrics`` gauge)."""
        self.episodes = 0
        self._since = 0.0

    async def retry(self, op: str, write: Callable[[], T]) -> T:
        """``write()``, tried again while it fails with ``database is locked``.

        ``write`` must change nothing when it fails that way: a lone statement, or a
        function whose first statement is ``BEGIN IMMEDIATE`` (``Store.begin``).
        """
        attempt = 0
        while True:
            try:
                result = write()
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise
                self.locked(op, exc)
                await asyncio.sleep(retry_delay(attempt))
                attempt += 1
                continue
            self.unlocked(op)
            return result

    def locked(self, op: str, exc: BaseException) -> None:
        """``op`` found the store locked (and will try again)."""
        self.retries[op] += 1
        if not self.waiting:
            self.episodes += 1
            self._since = time.monotonic()
            log.warning("store locked by another process; waiting to write", op=op,
                        error=str(exc))
        self.waiting.add(op)

    def unlocked(self, op: str) -> None:
        """``op`` got its write through."""
        if op not in self.waiting:
            return
        self.waiting.discard(op)
        if not self.waiting:
            log.info("store writable again", op=op,
                     waited_s=round(time.monotonic() - self._since, 2),
                     locked_tries=sum(self.retries.values()))
