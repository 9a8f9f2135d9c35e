"""Noticing that the daemon's clock jumped (an NTP step, a resume from suspend).

The daemon's timer reads the clock at least every :data:`CHECK_EVERY` real seconds. Between
two readings the clock should have moved by as much as the monotonic clock did (times the
clock's ``speed`` for a demo's ``ScaledClock``); a difference beyond :data:`THRESHOLD` is a
jump. A jump forward makes deadlines that fell inside the skipped time due at once: the
timer fires them, each once and in time order (the engine's heap), and this module says
so in the log and in ``/metrics``. A jump backwards only delays what is pending.

A ``SimClock`` moves only when told (replay, tests): there is nothing to detect.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from monitor.clock import Clock, SimClock

CHECK_EVERY = 5.0
"""Real seconds the timer waits at most before re-reading the clock."""
THRESHOLD = 10.0
"""Seconds of disagreement with the monotonic clock that count as a jump."""


class ClockWatch:
    """Compares the daemon's clock with the monotonic clock between two readings."""

    def __init__(self, clock: Clock, threshold: float = THRESHOLD,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.threshold = threshold
        self.monotonic = monotonic
        self.enabled = not isinstance(clock, SimClock)
        self.speed = float(getattr(clock, "speed", 1.0))
        self._last = (clock.now(), monotonic())

    def check(self) -> float:
        """The jump since the last call, in clock seconds (signed); 0.0 when none."""
        now, mono = self.clock.now(), self.monotonic()
        last_now, last_mono = self._last
        self._last = (now, mono)
        if not self.enabled:
            return 0.0
        drift = (now - last_now) - (mono - last_mono) * self.speed
        return drift if abs(drift) >= self.threshold else 0.0
