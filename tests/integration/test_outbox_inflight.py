"""The outbox with several windows in flight (``Outbox(windows=n)``, the daemon's
``WINDOWS_IN_FLIGHT``): the next window is claimed while the one before it awaits its
acknowledgements, and nothing in flight is claimed (or sent) twice.

Real SQLite store, SimClock, and for MQTT the real broker (``mqtt_broker``: the local
Mosquitto at 127.0.0.1:1883 when it answers); no sleeps: a window is held in flight by a
gate the test opens.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import aiomqtt
import pytest

from alerts import outbox as outbox_mod
from alerts.alertlog import AlertLogChannel
from alerts.channels.base import Thread
from alerts.channels.mqtt import MqttChannel
from alerts.outbox import Outbox
from monitor.clock import SimClock
from monitor.store import Store
from rules.records import Alert
from tests.integration.test_channels import _mqtt_channel, _mqtt_client, topic_prefix
from tests.integration.test_outbox import alerts, drain_until_idle
from tests.integration.test_outbox_batch import BatchChannel, stored
from tests.unit.test_oncall import SH

__all__ = ["topic_prefix"]  # the fixture, imported for these tests


class Gated:
    """A batching channel in front of another: records each window it is handed and
    keeps the first in flight (handed on, its result held back) until ``release``."""

    def __init__(self, inner: MqttChannel | AlertLogChannel | BatchChannel) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()

    async def send(self, alert: Alert, thread: Thread | None = None) -> None:
        raise AssertionError("a batching channel is handed batches")

    async def send_batch(self, items: Sequence[tuple[Alert, Thread | None]]
                         ) -> list[str | Exception | None]:
        self.calls.append([a.id for a, _t in items])
        # Handed on at once (so it goes out in turn), its acknowledgement held back.
        going: asyncio.Future[list[str | Exception | None]] = asyncio.ensure_future(
            self.inner.send_batch(list(items)))  # type: ignore[arg-type]
        if len(self.calls) == 1:
            await self.release.wait()
        return await going


async def until(cond: Callable[[], bool]) -> None:
    """Let the loop run until ``cond`` holds (the broker's PUBACKs need real time)."""
    async with asyncio.timeout(10):
        while True:
            if cond():
                return
            await asyncio.sleep(0.001)


async def received(sub: aiomqtt.Client, n: int) -> list[tuple[str, str]]:
    """The next ``n`` messages as (topic, alert id)."""
    got: list[tuple[str, str]] = []
    async with asyncio.timeout(10):
        async for msg in sub.messages:
            got.append((str(msg.topic), json.loads(msg.payload)["id"]))  # type: ignore[arg-type]
            if len(got) == n:
                break
    return got


async def test_a_window_in_flight_is_not_claimed_again_and_the_next_goes_out_meanwhile(
        tmp_path: Path, mqtt_broker: tuple[str, int], mqtt_protocol: str,
        topic_prefix: str) -> None:
    store = Store(tmp_path / "s.db")
    clock = SimClock(1000.0)
    first = alerts(40, incident="inc-9", prefix="x")
    later = alerts(30, incident="inc-9", prefix="y", t=100)
    async with _mqtt_client(mqtt_broker, mqtt_protocol) as sub, \
            _mqtt_channel(mqtt_broker, mqtt_protocol, topic_prefix) as mqtt:
        await sub.subscribe(f"{topic_prefix}/+/mention.new", qos=1)
        channel = Gated(mqtt)
        outbox = Outbox(store, {"mqtt": channel}, clock, windows=3)
        stored(store, first, ["mqtt"])
        draining = asyncio.create_task(outbox.drain("mqtt"))
        await until(lambda: len(channel.calls) == 1)
        # Window 1 is in flight (pending in the store until recorded): new alerts come
        # in and are claimed as a window of their own, without window 1's pages.
        stored(store, later, ["mqtt"])
        outbox.notify()
        await until(lambda: len(channel.calls) == 2)
        assert channel.calls == [[a.id for a in first], [a.id for a in later]]
        assert not draining.done()
        got = await received(sub, 70)  # both windows are on the broker, in order
        channel.release.set()
        assert await draining == 70
    assert [aid for _topic, aid in got] == [a.id for a in first + later]  # each once
    assert store.delivery_counts() == {("mqtt", "delivered"): 70}
    assert await outbox.drain("mqtt") == 0 and len(channel.calls) == 2  # nothing again
    # Thread updates run on across the windows, though window 1 was not yet recorded
    # when window 2 was claimed.
    assert outbox.threads.get("mqtt", "inc-9").update == 70


async def test_the_alert_log_writes_windows_in_flight_in_order_each_line_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "BATCH_MAX", 10)  # 35 pages: four windows
    store = Store(tmp_path / "s.db")
    log = AlertLogChannel(tmp_path / "alerts.jsonl", SH)
    channel = Gated(log)
    outbox = Outbox(store, {"log": channel}, SimClock(0.0), windows=3)
    batch = alerts(35)
    stored(store, batch, ["log"])
    draining = asyncio.create_task(outbox.drain("log"))
    await until(lambda: len(channel.calls) == 3)  # no room for a fourth meanwhile
    assert [len(c) for c in channel.calls] == [10, 10, 10]
    assert len({aid for call in channel.calls for aid in call}) == 30  # none twice
    channel.release.set()
    assert await draining == 35
    log.close()
    lines = (tmp_path / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == [a.id for a in batch]
    assert sum(len(c) for c in channel.calls) == 35  # handed over once each


async def test_a_failure_in_flight_stops_new_claims_and_is_retried_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "BATCH_MAX", 10)
    store = Store(tmp_path / "s.db")
    batch = alerts(50)
    inner = BatchChannel(fail={batch[2].id})
    channel = Gated(inner)
    clock = SimClock(0.0)
    outbox = Outbox(store, {"batch": channel}, clock, seed=1, windows=3)
    stored(store, batch, ["batch"])
    draining = asyncio.create_task(outbox.drain("batch"))
    await until(lambda: len(channel.calls) == 3)
    channel.release.set()
    # Window 1 failed one page: the channel rests; windows 2 and 3 are recorded, none
    # after them is claimed until the retry.
    assert await draining == 29
    assert outbox.failing() == {"batch"} and len(channel.calls) == 3
    await drain_until_idle(outbox, clock, "batch")
    assert sorted(inner.sent) == sorted(a.id for a in batch)  # each exactly once
    assert store.delivery_counts() == {("batch", "delivered"): 50}


async def test_windows_in_flight_when_a_drain_is_cancelled_are_recorded_by_the_next(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    inner = BatchChannel()
    channel = Gated(inner)
    outbox = Outbox(store, {"batch": channel}, SimClock(0.0), windows=3)
    stored(store, alerts(5, prefix="x"), ["batch"])
    draining = asyncio.create_task(outbox.drain("batch"))
    await until(lambda: len(channel.calls) == 1)
    stored(store, alerts(4, prefix="y", t=10), ["batch"])
    outbox.notify()
    await until(lambda: len(inner.sent) == 9)  # both sent; window 1's answer held back
    draining.cancel()  # a shutdown: the workers are cancelled, then the outbox flushed
    with pytest.raises(asyncio.CancelledError):
        await draining
    assert store.delivery_counts() == {("batch", "pending"): 9}  # nothing recorded yet
    flushing = asyncio.create_task(outbox.drain("batch"))
    await until(lambda: len(channel.calls) == 2)  # (nothing handed over meanwhile)
    channel.release.set()
    assert await flushing == 9  # both windows recorded as they came back ...
    assert len(channel.calls) == 2 and len(inner.sent) == 9  # ... and none sent again
    assert store.delivery_counts() == {("batch", "delivered"): 9}


def test_the_store_passes_over_deliveries_in_flight_but_not_one_due_below_them(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    batch = alerts(6)
    stored(store, batch, ["log"])
    due = store.pending_deliveries("log", 1e9, limit=10)
    # In flight: all but batch[1] (say, a retry due again while later windows fly).
    flying = {(p.alert.id, p.rep) for p in due if p.alert.id != batch[1].id}
    upto = max(p.seq for p in due)
    got = store.pending_deliveries("log", 1e9, limit=10, skip=flying, skip_upto=upto)
    assert [p.alert for p in got] == [batch[1]] and got[0].seq == due[1].seq
    stored(store, alerts(3, prefix="n", t=50), ["log"])  # and what came after them
    got = store.pending_deliveries("log", 1e9, limit=2, skip=flying, skip_upto=upto)
    assert [p.alert.id for p in got] == [batch[1].id, "a-n0000"]


def test_on_postgres_a_due_delivery_below_those_in_flight_is_its_own_alert(
        schema: str) -> None:
    """Two instances on one PostgreSQL schema number their alerts each from the newest
    stored when they opened, so their seqs collide: a delivery read without its alert
    (below the highest seq in flight) must be filled in by the alert's id, not its seq."""
    from monitor.store.postgres import PgStore
    from tests.fixtures.pg import DSN

    first, second = PgStore(DSN, schema), PgStore(DSN, schema)
    try:
        stored(first, alerts(3, prefix="p"), ["log"])
        stored(second, alerts(3, prefix="q"), ["log"])  # the same seqs, 1..3
        due = first.pending_deliveries("log", 1e9, limit=10)
        assert len(due) == 6 and len({p.seq for p in due}) == 3
        flying = {(p.alert.id, p.rep) for p in due if p.alert.id.startswith("a-p")}
        got = first.pending_deliveries("log", 1e9, limit=10, skip=flying,
                                       skip_upto=max(p.seq for p in due))
        assert sorted(p.alert.id for p in got) == ["a-q0000", "a-q0001", "a-q0002"]
        assert all(p.alert == a for p, a in zip(sorted(got, key=lambda p: p.alert.id),
                                               alerts(3, prefix="q"), strict=True))
    finally:
        first.close()
        second.close()
