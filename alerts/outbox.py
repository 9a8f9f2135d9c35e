"""The durable outbox: every alert is in the store before any channel tries to send it.

One worker per channel takes that channel's pending deliveries, oldest first, and
sends each at least once. A failure that can be retried waits with jittered
exponential backoff (or the channel's Retry-After); a dead channel delays only its
own queue. After a restart, whatever was pending is sent.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Protocol

import structlog

from alerts.record import Alert
from monitor.clock import Clock
from monitor.store import Store

log = structlog.get_logger(__name__)

BACKOFF_BASE = 2.0
BACKOFF_MAX = 300.0


class Sender(Protocol):
    """What the outbox needs of a channel."""

    name: str

    async def send(self, alert: Alert) -> None: ...


class DeliveryFailed(Exception):
    """A send failed. ``retryable`` False means retrying cannot help (a 4xx, bad config)."""

    def __init__(self, message: str, retryable: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def backoff(attempts: int, rng: random.Random) -> float:
    """Seconds before try ``attempts + 1``: exponential, capped, with full jitter."""
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * (2 ** min(attempts, 16)))
    return ceiling / 2 + rng.random() * ceiling / 2


class Outbox:
    """Delivers stored alerts to channels until each is delivered (or finally refused)."""

    def __init__(self, store: Store, channels: Mapping[str, Sender], clock: Clock,
                 seed: int | None = None) -> None:
        self.store = store
        self.channels = dict(channels)
        self.clock = clock
        self._wake = {name: asyncio.Event() for name in self.channels}
        self._rng = random.Random(seed)
        self.failures: dict[str, int] = {name: 0 for name in self.channels}
        self._down: set[str] = set()

    def notify(self) -> None:
        """New alerts are in the store: wake every worker."""
        for event in self._wake.values():
            event.set()

    async def run(self, name: str) -> None:
        """Worker loop for one channel; runs until cancelled."""
        wake = self._wake[name]
        while True:
            wake.clear()
            await self.drain(name)
            retry = self.store.next_retry(name)
            timeout = None if retry is None else max(0.0, retry - self.clock.now())
            try:
                async with asyncio.timeout(timeout):
                    await wake.wait()
            except TimeoutError:
                pass

    async def drain(self, name: str) -> int:
        """Try every delivery of ``name`` that is due now; return how many got through."""
        channel = self.channels[name]
        sent = 0
        while True:
            batch = self.store.pending_deliveries(name, self.clock.now())
            if not batch:
                return sent
            for item in batch:
                if not await self._try(channel, item.alert, item.attempts):
                    return sent  # keep order: the rest waits for this one's retry
                sent += 1

    async def _try(self, channel: Sender, alert: Alert, attempts: int) -> bool:
        name = channel.name
        try:
            await channel.send(alert)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a channel must never take the daemon down
            retryable = getattr(exc, "retryable", True)
            retry_after = getattr(exc, "retry_after", None)
            delay = retry_after if retry_after is not None else backoff(attempts, self._rng)
            next_try = self.clock.now() + delay if retryable else None
            self.store.mark_failed(alert.id, name, f"{type(exc).__name__}: {exc}", next_try)
            self.failures[name] += 1
            if name not in self._down:  # log once when it starts failing, once when back
                self._down.add(name)
                log.warning("channel failing", channel=name, alert_id=alert.id,
                            error=str(exc)[:200], retry_in=round(delay, 1) if retryable else None)
            return not retryable  # a final refusal doesn't block the queue
        self.store.mark_delivered(alert.id, name, self.clock.now())
        if name in self._down:
            self._down.discard(name)
            log.info("channel recovered", channel=name)
        return True

    async def flush(self, timeout: float) -> None:
        """On shutdown: one more pass over every channel, bounded in time."""
        try:
            async with asyncio.timeout(timeout):
                for name in self.channels:
                    await self.drain(name)
        except TimeoutError:
            log.warning("outbox flush timed out; pending alerts go out after restart")
