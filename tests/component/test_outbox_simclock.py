"""The outbox's own worker loops (``Outbox.run``, ``run_repeats``) driven by a simulated
clock: retries after backoff, quiet-hour deferrals and repeats wait on the clock they are
computed with, so moving the clock is all it takes. Real SQLite, no sleeps."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alerts.noise import PagingConfig, QuietHoursConfig, Stages
from alerts.outbox import Outbox
from monitor.clock import SimClock
from monitor.store import Store
from rules.records import Alert, AlertType
from tests.unit.test_oncall import SH, at


class Flaky:
    """A channel that refuses its first ``fail`` sends (retryable), then records."""

    def __init__(self, name: str, clock: SimClock, fail: int = 0) -> None:
        self.name = name
        self.clock = clock
        self.fail = fail
        self.sent: list[tuple[str, float]] = []

    async def send(self, alert: Alert) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("receiver down")
        self.sent.append((alert.id, self.clock.now()))


def page(i: int, t: float, level: int = 0, severity: str = "P3") -> Alert:
    return Alert(id=f"a-{i}", type=AlertType.REPLY_BREACH, at=t, brand="快书包", level=level,
                 severity=severity, title=f"第{i}条", text="x", post_id=str(i))


async def run_workers(outbox: Outbox) -> list[asyncio.Task[None]]:
    tasks = [asyncio.create_task(outbox.run(n)) for n in outbox.channels]
    tasks.append(asyncio.create_task(outbox.run_repeats()))
    return tasks


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_retries_wait_on_the_simulated_clock(tmp_path: Path) -> None:
    t0 = at("2026-05-20T10:00:00")
    clock = SimClock(t0, autojump=False)
    store = Store(tmp_path / "s.db")
    hook = Flaky("hook", clock, fail=3)
    outbox = Outbox(store, {"hook": hook}, clock, seed=7)
    tasks = await run_workers(outbox)
    try:
        await clock.settle(2)
        store.add_alerts([page(1, t0)], ["hook"])
        outbox.notify()
        await clock.settle(2)
        assert hook.sent == [] and outbox.failures["hook"] == 1
        retry = outbox.next_try("hook")
        assert retry is not None and retry > t0
        await clock.run_until(retry - 0.001, parked=2)  # just before: still waiting
        assert hook.sent == []
        await clock.run_until(t0 + 600, parked=2)  # the backoff walked, instantly
        assert [aid for aid, _ in hook.sent] == ["a-1"] and outbox.failures["hook"] == 3
        assert t0 < hook.sent[0][1] < t0 + 60  # three jittered backoffs of 2..8 s
        assert clock.now() == t0 + 600
    finally:
        await stop(tasks)
        store.close()


async def test_quiet_hours_and_repeats_fire_when_the_clock_reaches_them(tmp_path: Path) -> None:
    night = at("2026-05-20T23:00:00")
    clock = SimClock(night, autojump=False)
    store = Store(tmp_path / "s.db")
    hook = Flaky("hook", clock)
    stages = Stages.from_config(PagingConfig(
        quiet_hours=QuietHoursConfig(start="22:00", end="08:00")), SH)
    outbox = Outbox(store, {"hook": hook}, clock, stages=stages, repeat_every=600.0,
                    repeat_max=2, settled=lambda _a: False)
    tasks = await run_workers(outbox)
    try:
        await clock.settle(2)
        store.add_alerts([page(1, night, severity="P4"), page(2, night, level=1,
                                                               severity="P2")], ["hook"])
        outbox.notify()
        await clock.settle(2)
        assert hook.sent == [("a-2", night)]  # the P2 pages now; the P4 waits for 08:00
        await clock.run_until(at("2026-05-21T09:00:00"), parked=2)
        assert hook.sent == [("a-2", night), ("a-2-r1", night + 600),
                             ("a-2-r2", night + 1200), ("a-1", at("2026-05-21T08:00:00"))]
        assert store.next_repeat() is None  # repeat_max reached
    finally:
        await stop(tasks)
        store.close()
