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

from alerts.channels.slack import SlackChannel
from alerts.channels.webhook import WebhookChannel
from alerts.noise import PagingConfig, QuietHoursConfig, RateLimitConfig, Stages
from alerts.outbox import Outbox
from monitor.clock import SimClock, WallClock
from monitor.metrics import Metrics
from monitor.secrets import Secret
from monitor.store import Store
from rules.records import Alert, AlertType
from tests.fakes.providers import (
    SLACK_BOT_TOKEN,
    SLACK_CHANNEL,
    WEBHOOK_SECRET,
    Fault,
    Providers,
    running_providers,
)
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


def slack_bot(p: Providers) -> SlackChannel:
    return SlackChannel("slack", token=Secret(SLACK_BOT_TOKEN), channel=SLACK_CHANNEL,
                        api_url=p.slack_api_url, tz=SH)


async def test_an_incident_is_one_slack_message_with_its_updates_threaded_across_a_restart(
        tmp_path: Path, providers: Providers) -> None:
    """The crisis page opens the thread; after a restart, the grouped new mentions and a
    repeat of the crisis page are replies under it (the ts survives in the store)."""
    path = tmp_path / "s.db"
    t0 = at("2026-05-20T10:00:00")
    clock = SimClock(t0)
    opened = Alert(id="a-c0", type=AlertType.CRISIS_OPENED, at=t0, brand="快书包", level=2,
                   severity="P1", title="危机", text="x", incident_id="inc-1")

    bots: list[SlackChannel] = []

    def outbox(store: Store) -> Outbox:  # as the daemon builds it (metered); nobody acks
        bots.append(slack_bot(providers))
        (metered,) = Metrics().metered(bots[-1:])
        return Outbox(store, {"slack": metered}, clock,
                      stages=Stages.from_config(PagingConfig(group_wait=300.0), SH),
                      repeat_every=600.0, repeat_max=3, settled=lambda _a: False)

    store = Store(path)
    store.add_alerts([opened], ["slack"])
    first = outbox(store)
    await first.drain("slack")
    await bots[0].aclose()
    store.close()
    (root,) = providers.slack_bot.received

    store = Store(path)
    second = outbox(store)
    store.add_alerts(alerts(3, severity="P3", incident="inc-1", t=t0 + 60, prefix="m"),
                     ["slack"])
    clock.advance(60)
    await second.drain("slack")
    assert len(providers.slack_bot.received) == 1  # held for the incident's update
    clock.advance(300)
    await second.drain("slack")
    clock.advance_to(t0 + 600)
    assert second.fire_repeats(clock.now()) == 1
    await second.drain("slack")
    _, update, repeat = providers.slack_bot.received
    assert "thread_ts" not in root.body
    assert update.body["thread_ts"] == repeat.body["thread_ts"] == root.ts
    assert update.body["reply_broadcast"] is False  # P3 stays in the thread
    assert repeat.body["reply_broadcast"] is True  # a reminder of a P1 is seen by all
    assert "3 条新提及" in update.body["text"] and "第1条更新" in update.body["text"]
    assert repeat.body["text"].startswith(
        "【事件 inc-1 · 第2条更新】[P1] 快书包 危机事件开启：（第1次提醒）危机")
    thread = second.threads.get("slack", "inc-1")
    assert (thread.update, thread.ref, thread.root and thread.root.id) == (3, root.ts, "a-c0")
    await bots[1].aclose()
    store.close()


async def test_a_restart_keeps_the_rate_limit_window_and_the_summary_owed(
        tmp_path: Path, providers: Providers) -> None:
    path = tmp_path / "s.db"
    cfg = PagingConfig(rate_limits=(RateLimitConfig(channel="hook", max=2, per=60.0),))
    clock = SimClock(1000.0)
    store = Store(path)
    store.add_alerts(alerts(3, severity="P2", prefix="x"), ["hook"])
    first = Outbox(store, {"hook": hook(providers.webhook_url)}, clock,
                   stages=Stages.from_config(cfg, SH))
    await first.drain("hook")
    assert len(providers.webhook.received) == 2  # the third is held for a summary
    await first.channels["hook"].aclose()  # type: ignore[attr-defined]
    store.close()

    clock.advance_to(1030.0)  # restarted within the window
    store = Store(path)
    second = Outbox(store, {"hook": hook(providers.webhook_url)}, clock,
                    stages=Stages.from_config(cfg, SH))
    late = alerts(1, severity="P2", prefix="y")
    store.add_alerts(late, ["hook"])
    await second.drain("hook")
    assert len(providers.webhook.received) == 2  # the window is remembered: no third send
    assert second.next_try("hook") == 1060.0  # when the first two leave the window
    clock.advance_to(1060.0)
    await second.drain("hook")
    assert len(providers.webhook.received) == 3
    summary = providers.webhook.received[2].body
    assert "另有 2 条告警" in summary["title"] and "a-x0002" in summary["text"]
    assert late[0].id in summary["text"]
    assert store.delivery_counts() == {("hook", "delivered"): 2, ("hook", "summarised"): 2}
    await second.channels["hook"].aclose()  # type: ignore[attr-defined]
    store.close()


async def test_a_repeat_held_by_the_rate_limit_is_cancelled_by_an_ack(
        tmp_path: Path, providers: Providers) -> None:
    store = Store(tmp_path / "s.db")
    cfg = PagingConfig(rate_limits=(RateLimitConfig(channel="hook", max=1, per=600.0),))
    acked: set[str] = set()
    clock = SimClock(0.0)
    outbox = Outbox(store, {"hook": hook(providers.webhook_url)}, clock,
                    stages=Stages.from_config(cfg, SH), repeat_every=600.0, repeat_max=3,
                    settled=lambda a: a.id in acked)
    page, other = alerts(2, level=1, severity="P2", prefix="k")
    store.add_alerts([page], ["hook"])
    await outbox.drain("hook")
    clock.advance_to(300.0)
    store.add_alerts([other], ["hook"])
    await outbox.drain("hook")  # held: one message per 10 minutes
    clock.advance_to(600.0)
    outbox.fire_repeats(600.0)
    await outbox.drain("hook")  # `other` goes out; the repeat is held behind it
    acked.add(page.id)
    clock.advance_to(1200.0)
    await outbox.drain("hook")
    assert keys(providers) == [page.id, other.id]
    outcomes = [e.outcome for e in outbox.audit.entries(50, page.id) if e.alert_id != page.id]
    assert outcomes == ["repeat", "held", "cancelled"]
    await outbox.channels["hook"].aclose()  # type: ignore[attr-defined]
    store.close()
