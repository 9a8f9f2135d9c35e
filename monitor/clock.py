"""The one place crisismon reads the time.

Everything else is handed ``now``. Three clocks share one interface:

- ``WallClock``: the live daemon.
- ``ScaledClock``: the live daemon demoing a recorded feed, with simulated time
  running ``speed`` times faster than the wall, starting at the feed's first post.
- ``SimClock``: replay and tests. Time moves only when told to, so a day of
  deadlines runs in milliseconds and gives the same output every time; its timers fire
  in time order as it is advanced, the way a backtest clock's do.

Waiting goes through the clock too (``sleep_until``, ``wait``): the daemon's timer and
the outbox's retries, deferrals and repeats wait on the clock they compute with, so a
simulated clock drives them exactly as the wall clock drives the live daemon.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from typing import Any, Protocol


class Clock(Protocol):
    """What the daemon needs of time: read it, and wait until a moment."""

    def now(self) -> float:
        """Seconds since the epoch on this clock."""
        ...

    async def sleep_until(self, t: float) -> None:
        """Return once ``now() >= t`` (at once if that is already so)."""
        ...


async def wait(clock: Clock, event: asyncio.Event, until: float | None) -> None:
    """Until ``event`` is set or ``clock`` reaches ``until`` (None: no time limit).

    The clock's own ``wait`` if it has one (every clock here does); else ``event`` raced
    against ``clock.sleep_until`` (a test's clock that offers only that)."""
    own = getattr(clock, "wait", None)
    if callable(own):
        await own(event, until)
        return
    if event.is_set():
        return
    waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(event.wait())}
    if until is not None:
        waits.add(asyncio.ensure_future(clock.sleep_until(until)))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _wait_real(event: asyncio.Event, seconds: float | None) -> None:
    """Until ``event`` is set or ``seconds`` of real time have passed."""
    if event.is_set():
        return
    try:
        async with asyncio.timeout(None if seconds is None else max(0.0, seconds)):
            await event.wait()
    except TimeoutError:
        pass


class WallClock:
    """Real time."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, t: float) -> None:
        delay = t - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def wait(self, event: asyncio.Event, until: float | None) -> None:
        """Until ``event`` is set or ``until`` (None: no time limit)."""
        await _wait_real(event, None if until is None else until - time.time())


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

    async def wait(self, event: asyncio.Event, until: float | None) -> None:
        """Until ``event`` is set or the simulated ``until`` (None: no time limit)."""
        await _wait_real(event, None if until is None else (until - self.now()) / self.speed)


class SimClock:
    """Simulated time with a timer wheel, the way a backtest clock works.

    Time moves only when told to (``advance_to``, ``run_until``), so a day of deadlines
    runs in milliseconds and gives the same output every time. ``sleep_until`` and
    ``wait`` park the caller on a timer; timers fire in time order as the clock passes
    them, each with ``now()`` at its own moment (``run_until``).

    ``autojump`` (the default): a sleeper that nobody else drives jumps the clock to its
    moment at once, so a lone retry loop or a backoff on a SimClock needs no driver. A
    driver that advances the clock itself (replay, a test of the daemon's timers) makes
    one with ``autojump=False``: then a sleeper waits until the clock is advanced past
    its moment.
    """

    def __init__(self, start: float = 0.0, *, autojump: bool = True) -> None:
        self._now = start
        self.autojump = autojump
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._keys = itertools.count()
        self._parked: dict[int, tuple[asyncio.Event | None, float]] = {}
        """Who waits on this clock: id -> (the event it also waits for, until when)."""

    def now(self) -> float:
        return self._now

    def advance_to(self, t: float) -> None:
        """Move to ``t`` (earlier times are ignored: time stays monotonic) and wake every
        timer due by then. Woken callers run once the event loop gets to them, and see
        ``now() == t``; ``run_until`` lets each run at its own moment instead."""
        if t > self._now:
            self._now = t
        self._fire(self._now)

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        self.advance_to(self._now + max(0.0, seconds))

    def next_timer(self) -> float | None:
        """When the earliest pending timer fires (None: none pending)."""
        timers = self._timers
        while timers and timers[0][2].done():  # cancelled sleepers leave their entry
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    def _fire(self, upto: float) -> int:
        timers = self._timers
        fired = 0
        while timers and timers[0][0] <= upto:
            fut = heapq.heappop(timers)[2]
            if not fut.done():
                fut.set_result(None)
                fired += 1
        return fired

    async def sleep_until(self, t: float) -> None:
        if t <= self._now or self.autojump:
            self.advance_to(t)
            await asyncio.sleep(0)  # let others run, as any wait would
            return
        fut = self._timer(t)
        key = next(self._keys)
        self._parked[key] = (None, t)
        try:
            await fut
        finally:
            del self._parked[key]
            fut.cancel()

    async def wait(self, event: asyncio.Event, until: float | None) -> None:
        """Until ``event`` is set or the clock reaches ``until`` (None: no time limit)."""
        if event.is_set():
            return
        if until is not None and (until <= self._now or self.autojump):
            self.advance_to(until)
            await asyncio.sleep(0)
            return
        fut = None if until is None else self._timer(until)
        key = next(self._keys)
        self._parked[key] = (event, math.inf if until is None else until)
        waiter: asyncio.Future[Any] = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait([waiter] if fut is None else [waiter, fut],
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            del self._parked[key]
            waiter.cancel()
            if fut is not None:
                fut.cancel()

    def _timer(self, t: float) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._timers, (t, self._seq, fut))
        return fut

    def idle(self, parked: int) -> bool:
        """Whether ``parked`` callers wait on this clock and none of them can run yet."""
        if len(self._parked) < parked:
            return False
        now = self._now
        return not any((ev is not None and ev.is_set()) or t <= now
                       for ev, t in self._parked.values())

    async def settle(self, parked: int, max_turns: int = 10_000) -> None:
        """Let the event loop run until ``parked`` callers wait on this clock, none of them
        runnable: what a burst-mode driver waits for before it moves time on."""
        for _ in range(max_turns):
            await asyncio.sleep(0)
            if self.idle(parked):
                return
        raise RuntimeError(f"simulated clock: {len(self._parked)} of {parked} tasks parked "
                           f"after {max_turns} turns of the event loop")

    async def run_until(self, t: float, parked: int) -> None:
        """Move to ``t``, firing each timer due by then at its own moment, in time order,
        and letting the ``parked`` tasks run after each until they wait again."""
        while (nxt := self.next_timer()) is not None and nxt <= t:
            self._now = max(self._now, nxt)
            self._fire(self._now)
            await self.settle(parked)
        if t > self._now:
            self._now = t
