"""The simulated clock's timers: they fire in time order as the clock is advanced, each
at its own moment, and a driver can tell when every task waiting on it is idle."""

from __future__ import annotations

import asyncio

import pytest

from monitor.clock import SimClock, wait


async def test_timers_fire_in_time_order_each_at_its_own_moment() -> None:
    clock = SimClock(100.0, autojump=False)
    seen: list[tuple[str, float]] = []

    async def sleeper(name: str, t: float) -> None:
        await clock.sleep_until(t)
        seen.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper(n, t)) for n, t in
             (("c", 130.0), ("a", 110.0), ("b", 120.0), ("late", 500.0))]
    await clock.settle(4)
    assert seen == [] and clock.next_timer() == 110.0
    await clock.run_until(200.0, parked=1)  # afterwards only "late" still waits
    assert seen == [("a", 110.0), ("b", 120.0), ("c", 130.0)]
    assert clock.now() == 200.0 and clock.next_timer() == 500.0
    tasks[-1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert clock.next_timer() is None  # a cancelled sleeper leaves no timer behind


async def test_wait_returns_on_the_event_or_at_the_deadline() -> None:
    clock = SimClock(0.0, autojump=False)
    event = asyncio.Event()
    woke: list[float] = []

    async def waiter(until: float | None) -> None:
        await wait(clock, event, until)
        woke.append(clock.now())

    t1 = asyncio.create_task(waiter(60.0))
    t2 = asyncio.create_task(waiter(None))
    await clock.settle(2)
    await clock.run_until(59.0, parked=2)
    assert woke == []
    await clock.run_until(61.0, parked=1)
    assert woke == [60.0]  # the deadline, not the later moment the clock moved to
    event.set()
    await asyncio.gather(t1, t2)
    assert woke == [60.0, 61.0]


async def test_autojump_clock_moves_to_a_lone_sleepers_moment() -> None:
    clock = SimClock(0.0)
    await clock.sleep_until(42.0)
    assert clock.now() == 42.0
    await clock.sleep_until(10.0)  # the past: at once, time never goes back
    assert clock.now() == 42.0


async def test_settle_names_a_task_that_never_parks() -> None:
    clock = SimClock(0.0, autojump=False)

    async def busy() -> None:
        while True:  # noqa: ASYNC110 - a task that never waits on the clock
            await asyncio.sleep(0)

    task = asyncio.create_task(busy())
    with pytest.raises(RuntimeError, match="0 of 1 tasks parked"):
        await clock.settle(1, max_turns=50)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
