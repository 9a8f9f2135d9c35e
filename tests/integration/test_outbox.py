"""The outbox against a real loopback webhook receiver and a real SQLite store.

A receiver that fails for a while then recovers gets every alert exactly once per
idempotency key; pending alerts survive a restart; a dead channel never holds up the
others; repeats, quiet hours, rate-limit summaries and incident grouping end to end.
Time logic runs on a SimClock handed to the outbox: no sleeps.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alerts.channels.webhook import WebhookChannel
from alerts.noise import PagingConfig, QuietHoursConfig, RateLimitConfig, Stages
from alerts.outbox import Outbox
from alerts.record import Alert, AlertType
from monitor.clock import SimClock, WallClock
from monitor.secrets import Secret
from monitor.store import Store
from tests.fakes.providers import WEBHOOK_SECRET, Fault, Providers, running_providers
from tests.fixtures.broker import free_port
from tests.unit.test_oncall import SH, at


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    async with running_providers() as p:
        yield p


def hook(url: str, name: str = "hook") -> WebhookChannel:
    return WebhookChannel(name, Secret(url), secret=Secret(WEBHOOK_SECRET), timeout=2.0, tz=SH)


def alerts(n: int, level: int = 0, severity: str = "P3", incident: str | None = None,
           t: float = 0.0, prefix: str = "") -> list[Alert]:
    return [Alert(id=f"a-{prefix}{i:04x}", type=AlertType.MENTION_NEW, at=t + i, brand="快书包",
                  level=level, severity=severity, title=f"第{i}条", text="x",
                  post_id=str(i), incident_id=incident) for i in range(n)]


def keys(p: Providers) -> list[str]:
    return [r.headers["Idempotency-Key"] for r in p.webhook.received]


async def drain_until_idle(outbox: Outbox, clock: SimClock, name: str, rounds: int = 30) -> None:
    """Drain, jump the clock to the next retry, repeat: what the worker loop does, instantly."""
    for _ in range(rounds):
        await outbox.drain(name)
        nxt = outbox.next_try(name)
        if nxt is None:
            return
        clock.advance_to(nxt)


async def test_failing_then_recovering_receiver_gets_each_alert_exactly_once(
        tmp_path: Path, providers: Providers) -> None:
    store = Store(tmp_path / "s.db")
    batch = alerts(20)
    store.add_alerts(batch, ["hook"])
    providers.webhook.fail_next(Fault(status=503, body="busy"), times=4)
    providers.webhook.fail_next(Fault(status=429, headers={"Retry-After": "7"}))
    clock = SimClock(1000.0)
    outbox = Outbox(store, {"hook": hook(providers.webhook_url)}, clock, seed=1)
    await outbox.drain("hook")
    assert keys(providers) == []  # the first alert failed; order is kept, the rest waits
    await drain_until_idle(outbox, clock, "hook")
    assert keys(providers) == [a.id for a in batch]  # in order, each once
    assert Counter(keys(providers)).most_common(1)[0][1] == 1
    assert providers.webhook.attempts == 25
    assert store.delivery_counts() == {("hook", "delivered"): 20}
    audit = outbox.audit.entries(100, batch[0].id)
    assert [e.outcome for e in audit] == ["retrying"] * 5 + ["delivered"]
    assert "Retry-After" not in (audit[4].detail or "") and clock.now() > 1000.0
    await outbox.channels["hook"].aclose()  # type: ignore[attr-defined]
    store.close()


async def test_a_restart_sends_what_was_left_unsent(tmp_path: Path, providers: Providers) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    batch = alerts(5)
    store.add_alerts(batch, ["hook"])
    providers.webhook.fail_next(Fault(status=500), times=1)
    clock = SimClock(0.0)
    first = Outbox(store, {"hook": hook(providers.webhook_url)}, clock, seed=1)
    await first.drain("hook")
    await first.channels["hook"].aclose()  # type: ignore[attr-defined]
    store.close()  # "crash": nothing was delivered

    store = Store(path)
    clock.advance(3600)
    second = Outbox(store, {"hook": hook(providers.webhook_url)}, clock, seed=1)
    await second.drain("hook")
    assert keys(providers) == [a.id for a in batch]
    assert store.delivery_counts() == {("hook", "delivered"): 5}
    await second.channels["hook"].aclose()  # type: ignore[attr-defined]
    store.close()


async def test_a_dead_channel_does_not_block_the_others(tmp_path: Path,
                                                         providers: Providers) -> None:
    store = Store(tmp_path / "s.db")
    dead = hook(f"http://127.0.0.1:{free_port()}/nobody", "dead")
    outbox = Outbox(store, {"hook": hook(providers.webhook_url), "dead": dead}, WallClock())
    workers = [asyncio.create_task(outbox.run(n), name=f"outbox:{n}") for n in ("hook", "dead")]
    try:
        for i in range(3):  # alerts arriving over time, each batch woken like the daemon does
            store.add_alerts(alerts(10, prefix=f"{i}"), ["hook", "dead"])
            outbox.notify()
            await asyncio.sleep(0.05)
        async with asyncio.timeout(5):
            while len(providers.webhook.received) < 30:  # noqa: ASYNC110 - the fake's list
                await asyncio.sleep(0.02)
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    counts = store.delivery_counts()
    assert counts[("hook", "delivered")] == 30
    assert counts[("dead", "pending")] == 30 and outbox.failures["dead"] >= 1
    await outbox.channels["hook"].aclose()  # type: ignore[attr-defined]
    await dead.aclose()
    store.close()


async def test_unacknowledged_pages_repeat_until_acked(tmp_path: Path,
                                                       providers: Providers) -> None:
    store = Store(tmp_path / "s.db")
    page = alerts(1, level=1, severity="P2")[0]
    store.add_alerts([page], ["log", "hook"])
    acked: set[str] = set()
    clock = SimClock(0.0)

    class Log:
        name = "log"

        async def send(self, alert: Alert) -> None:
            pass

    outbox = Outbox(store, {"hook": hook(providers.webhook_url), "log": Log()}, clock,
                    repeat_every=600.0, repeat_max=5, settled=lambda a: a.id in acked)
    await outbox.drain("hook")
    await outbox.drain("log")
    assert outbox.fire_repeats(599.0) == 0
    clock.advance_to(600.0)
    assert outbox.fire_repeats(600.0) == 1  # the hook only: the log records, it does not page
    await outbox.drain("hook")
    await outbox.drain("log")
    clock.advance_to(1200.0)
    outbox.fire_repeats(1200.0)
    acked.add(page.id)  # acked while repeat 2 waits: it is cancelled, not sent
    await outbox.drain("hook")
    clock.advance_to(1800.0)
    assert outbox.fire_repeats(1800.0) == 0 and store.next_repeat() is None
    assert keys(providers) == [page.id, f"{page.id}-r1"]
    body = providers.webhook.received[1].body
    assert body["id"] == f"{page.id}-r1" and body["title"].startswith("（第1次提醒）")
    outcomes = [(e.alert_id, e.outcome) for e in outbox.audit.entries(50, page.id)
                if e.channel == "hook"]
    assert outcomes == [(page.id, "delivered"), (f"{page.id}-r1", "repeat"),
                        (f"{page.id}-r1", "delivered"), (f"{page.id}-r2", "repeat"),
                        (f"{page.id}-r2", "cancelled")]
    await outbox.channels["hook"].aclose()  # type: ignore[attr-defined]
    store.close()


async def test_quiet_hours_defer_rate_limit_summarises_incident_updates_group(
        tmp_path: Path, providers: Providers) -> None:
    store = Store(tmp_path / "s.db")
    cfg = PagingConfig(quiet_hours=QuietHoursConfig(start="22:00", end="08:00"),
                       rate_limits=(RateLimitConfig(channel="hook", max=3, per=60.0),),
                       group_wait=300.0)
    night = at("2026-05-20T23:00:00")
    clock = SimClock(night)
    outbox = Outbox(store, {"hook": hook(providers.webhook_url)}, clock,
                    stages=Stages.from_config(cfg, SH))
    mild = alerts(2, severity="P4", prefix="q")
    urgent = alerts(6, severity="P2", prefix="u")
    updates = alerts(4, severity="P3", incident="inc-7", prefix="g")
    store.add_alerts(mild + urgent, ["hook"])
    await outbox.drain("hook")
    # Night: the P4s wait; the P2s page, 3 of them, the other 3 are held for a summary.
    assert keys(providers) == [a.id for a in urgent[:3]]
    clock.advance(60)
    await outbox.drain("hook")
    assert len(providers.webhook.received) == 4
    summary = providers.webhook.received[3].body
    assert "3" in summary["title"] and all(a.id in summary["text"] for a in urgent[3:])
    clock.advance_to(at("2026-05-21T08:00:00"))
    store.add_alerts(updates, ["hook"])
    await outbox.drain("hook")
    assert keys(providers)[4:] == [a.id for a in mild]  # morning: the night's P4s go out
    clock.advance(300)
    await outbox.drain("hook")
    grouped = providers.webhook.received[-1].body
    assert grouped["incident_id"] == "inc-7" and "4 条新提及" in grouped["title"]
    assert len(providers.webhook.received) == 7
    counts = store.delivery_counts()
    assert counts[("hook", "summarised")] == 7 and counts[("hook", "delivered")] == 5
    await outbox.channels["hook"].aclose()  # type: ignore[attr-defined]
    store.close()
