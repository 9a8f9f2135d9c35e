"""The one place crisismon reads the time.

Everything else is handed ``now``. Three clocks share one interface:

- ``WallClock``: the live daemon.
- ``ScaledClock``: the live daemon demoing a recorded feed, with simulated time
  running ``speed`` times faster than the wall, starting at the feed's first post.
- ``SimClock``: replay and tests. Time moves only when told to, so a day of
  deadlines runs in milliseconds and gives the same output every time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """What the daemon needs of time: read it, and wait until a moment."""

    def now(self) -> float:
        """Seconds since the epoch on this clock."""
        ...

    async def sleep_until(self, t: float) -> None:
        """Return once ``now() >= t`` (at once if that is already so)."""
        ...


class WallClock:
    """Real time."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, t: float) -> None:
        delay = t - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


class ScaledClock:
    """Simulated time that runs ``speed`` times faster than the wall, from ``start``.

    Uses the monotonic clock underneath so a wall-clock jump (NTP) cannot move it.
    """

    def __init__(self, start: float, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start = start
        self.speed = speed
        self._m0 = time.monotonic()
        self._anchored = False

    def now(self) -> float:
        return self.start + (time.monotonic() - self._m0) * self.speed

    def anchor(self) -> None:
        """Start running from here: simulated time stood still during a slow start-up."""
        self.start = self.now() if self._anchored else self.start
        self._m0 = time.monotonic()
        self._anchored = True

    async def sleep_until(self, t: float) -> None:
        delay = (t - self.now()) / self.speed
        if delay > 0:
            await asyncio.sleep(delay)


class SimClock:
    """A clock that moves only when advanced. Never goes backwards."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance_to(self, t: float) -> None:
        """Move to ``t``; earlier times are ignored so time stays monotonic."""
        if t > self._now:
            self._now = t

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        self._now += max(0.0, seconds)

    async def sleep_until(self, t: float) -> None:
        # Simulated waiting is instant: jump to the moment and let others run.
        self.advance_to(t)
        await asyncio.sleep(0)
