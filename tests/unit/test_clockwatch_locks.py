"""The two small fault helpers: clock-jump detection and waiting out a locked store."""

from __future__ import annotations

import sqlite3

import pytest

from monitor.clock import SimClock
from monitor.clockwatch import ClockWatch
from monitor.locks import StoreLocks, is_locked


class FakeMono:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class WallLike:
    """Wall time = monotonic * speed + offset; ``offset`` is what NTP steps."""

    def __init__(self, mono: FakeMono, speed: float = 1.0) -> None:
        self.mono, self.speed, self.offset = mono, speed, 1_779_242_400.0

    def now(self) -> float:
        return self.mono() * self.speed + self.offset

    async def sleep_until(self, t: float) -> None:  # pragma: no cover - not used here
        raise NotImplementedError


@pytest.mark.parametrize(("speed", "elapsed", "step", "jump"), [
    (1.0, 5.0, 0.0, 0.0),          # time passing normally is no jump
    (1.0, 5.0, 9.0, 0.0),          # small NTP corrections are under the threshold
    (1.0, 5.0, 7200.0, 7200.0),    # +2 h
    (1.0, 0.0, -3600.0, -3600.0),  # back an hour
    (60.0, 5.0, 0.0, 0.0),         # a demo's ScaledClock runs 60x: still no jump
    (60.0, 5.0, 600.0, 600.0),
])
def test_clock_watch_measures_jumps_against_the_monotonic_clock(
        speed: float, elapsed: float, step: float, jump: float) -> None:
    mono = FakeMono()
    clock = WallLike(mono, speed)
    watch = ClockWatch(clock, monotonic=mono)  # type: ignore[arg-type]
    mono.t += elapsed
    clock.offset += step
    assert watch.check() == pytest.approx(jump)
    mono.t += 5.0
    assert watch.check() == 0.0  # measured from the last reading: reported once


def test_a_sim_clock_moves_when_told_so_nothing_is_a_jump() -> None:
    clock = SimClock(0.0)
    watch = ClockWatch(clock)
    clock.advance(86_400)
    assert watch.check() == 0.0


async def test_locked_writes_are_retried_other_errors_are_not() -> None:
    locks = StoreLocks()
    tries = []

    def write() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert await locks.retry("ingest", write) == "done"
    assert len(tries) == 3 and locks.retries["ingest"] == 2 and not locks.waiting
    assert locks.episodes == 1

    def broken() -> None:
        raise sqlite3.OperationalError("no such table: events")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await locks.retry("ingest", broken)
    assert not is_locked(sqlite3.IntegrityError("locked"))
