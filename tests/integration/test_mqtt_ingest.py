"""MQTT input against a real broker (``mqtt_broker``): delivery, restarts, sharing, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from monitor.clock import SimClock
from monitor.config import MqttSourceConfig
from monitor.sources.base import Batch
from monitor.sources.edge import Rejection
from monitor.sources.mqtt import MqttSource
from monitor.store import Store
from tests.fixtures.live import until

TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def _needs_mqtt5(mqtt_protocol: str) -> None:
    if mqtt_protocol != "5":
        pytest.fail("these tests need an MQTT 5 broker (mosquitto); amqtt speaks 3.1.1")


def post(n: int, text: str = "快书包送货太慢了") -> dict[str, Any]:
    return {"id": 6_000_000_000_000_000 + n, "created_at": "2026-05-20T10:00:00+08:00",
            "text": text, "user": {"id": 42, "screen_name": "u42"}}


class StoreSink:
    """Stores batches like ``Daemon.ingest``; counts every id handed over."""

    def __init__(self, store: Store, fail_first: bool = False,
                 changed: asyncio.Event | None = None) -> None:
        self.store = store
        self.received: Counter[str] = Counter()
        self.fail_first = fail_first
        self._changed = changed or asyncio.Event()

    async def ingest(self, batch: Batch) -> None:
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("crash before storing")
        with self.store.transaction():
            for event in batch.events:
                self.store.add_event(event, 0.0)
        self.received.update(e.id for e in batch.events)
        self._changed.set()

    async def wait_for(self, n: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while sum(self.received.values()) < n:
                self._changed.clear()
                await self._changed.wait()


class CountingClock(SimClock):
    """A SimClock that tells when someone has slept (a backoff wait)."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.slept = asyncio.Event()

    async def sleep_until(self, t: float) -> None:
        await super().sleep_until(t)
        self.slept.set()


def config(broker: tuple[str, int], topic: str, client_id: str, **kw: Any) -> MqttSourceConfig:
    return MqttSourceConfig(type="mqtt", topics=(topic,), host=broker[0], port=broker[1],
                            client_id=client_id, max_payload=4096, **kw)


@contextlib.asynccontextmanager
async def running(source: MqttSource, sink: StoreSink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(source.run(sink))
    try:
        async with asyncio.timeout(TIMEOUT):
            await source.subscribed.wait()
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            await task


async def publish(broker: tuple[str, int], topic: str, payloads: list[bytes]) -> None:
    async with aiomqtt.Client(broker[0], broker[1], identifier=f"pub-{uuid.uuid4().hex}",
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        for payload in payloads:
            await client.publish(topic, payload, qos=1)


@pytest.fixture
def topic() -> str:
    return f"crisismon-test/{uuid.uuid4().hex}/posts"


async def test_posts_arrive_and_bad_input_is_counted(
        mqtt_broker: tuple[str, int], topic: str, tmp_path: Path) -> None:
    sink = StoreSink(Store(tmp_path / "s.db"))
    source = MqttSource("mqtt:test", config(mqtt_broker, topic, uuid.uuid4().hex), SimClock())
    async with running(source, sink):
        await publish(mqtt_broker, topic, [
            json.dumps(post(1)).encode(),
            json.dumps([post(2), post(3), {**post(4), "user": "nobody"}]).encode(),
            b'{"id": 5, "text": "cut',
            b'{"id": 6, "text": "\xff"}',
            json.dumps({**post(7), "text": "x" * 5000}).encode(),
            json.dumps(post(1)).encode(),  # the same post again: stored once
            json.dumps(post(8, "快書包&amp;ＡＢＣ")).encode(),
        ])
        await sink.wait_for(5)
    assert sorted(sink.received) == [str(6_000_000_000_000_000 + n) for n in (1, 2, 3, 8)]
    assert sink.store.count_events() == 4
    assert source.edge.stats.rejected == {Rejection.NOT_A_POST: 1, Rejection.NOT_JSON: 1,
                                          Rejection.NOT_UTF8: 1, Rejection.TOO_LARGE: 1}
    texts = {e.id: e.text for _, e in sink.store.events()}  # type: ignore[union-attr]
    assert texts[str(6_000_000_000_000_008)] == "快书包&ABC"


async def test_posts_sent_while_the_daemon_was_stopped_arrive_after_it_starts(
        mqtt_broker: tuple[str, int], topic: str, tmp_path: Path) -> None:
    client_id = f"crisismon-{uuid.uuid4().hex}"
    store = Store(tmp_path / "s.db")
    sink = StoreSink(store)
    async with running(MqttSource("mqtt:test", config(mqtt_broker, topic, client_id),
                                  SimClock()), sink):
        await publish(mqtt_broker, topic, [json.dumps(post(1)).encode()])
        await sink.wait_for(1)
    # Stopped. Posts published now wait in the broker's session for us.
    await publish(mqtt_broker, topic, [json.dumps(post(n)).encode() for n in range(2, 52)])
    sink2 = StoreSink(store)
    async with running(MqttSource("mqtt:test", config(mqtt_broker, topic, client_id),
                                  SimClock()), sink2):
        await sink2.wait_for(50)
    assert len(sink2.received) == 50 and max(sink2.received.values()) == 1
    assert store.count_events() == 51


async def test_a_crash_before_storing_gets_the_message_again(
        mqtt_broker: tuple[str, int], topic: str, tmp_path: Path) -> None:
    client_id = f"crisismon-{uuid.uuid4().hex}"
    store = Store(tmp_path / "s.db")
    crashing = StoreSink(store, fail_first=True)
    source = MqttSource("mqtt:test", config(mqtt_broker, topic, client_id), SimClock())
    task = asyncio.create_task(source.run(crashing))
    async with asyncio.timeout(TIMEOUT):
        await source.subscribed.wait()
    await publish(mqtt_broker, topic, [json.dumps(post(1)).encode()])
    with pytest.raises(RuntimeError):  # the sink blew up: the source task ends, no PUBACK
        async with asyncio.timeout(TIMEOUT):
            await task
    sink = StoreSink(store)
    async with running(MqttSource("mqtt:test", config(mqtt_broker, topic, client_id),
                                  SimClock()), sink):
        await sink.wait_for(1)
    assert sink.received == Counter({str(6_000_000_000_000_001): 1})


class HeldSink(StoreSink):
    """Holds its first batch until ``release`` is set (a slow store transaction)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def ingest(self, batch: Batch) -> None:
        if not self.holding.is_set():
            self.holding.set()
            await self.release.wait()
        await super().ingest(batch)


async def test_the_broker_sends_the_next_batches_while_one_is_being_stored(
        mqtt_broker: tuple[str, int], topic: str, tmp_path: Path) -> None:
    # A batch is acknowledged only once stored. With an in-flight window of one batch the
    # broker sent nothing while a batch was handled (stop and wait): at 5,000 posts/s the
    # posts backed up in the broker. The window is several batches.
    sink = HeldSink(Store(tmp_path / "s.db"))
    source = MqttSource("mqtt:test", config(mqtt_broker, topic, uuid.uuid4().hex),
                        SimClock(), batch_max=10)
    async with running(source, sink):
        await publish(mqtt_broker, topic, [json.dumps(post(1)).encode()])
        async with asyncio.timeout(TIMEOUT):
            await sink.holding.wait()  # the first batch is in the sink, not yet stored
        await publish(mqtt_broker, topic, [json.dumps(post(n)).encode() for n in range(2, 32)])
        # All of them here, none acknowledged yet (polled: the broker tells no event).
        await until(lambda: source.waiting >= 30, TIMEOUT, "the broker sends past one batch")
        assert sink.store.count_events() == 0
        sink.release.set()
        await sink.wait_for(31)
    assert sink.store.count_events() == 31 and max(sink.received.values()) == 1


async def test_a_shared_subscription_splits_the_feed(
        mqtt_broker: tuple[str, int], topic: str, tmp_path: Path) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    store = Store(tmp_path / "s.db")
    changed = asyncio.Event()
    a, b = StoreSink(store, changed=changed), StoreSink(store, changed=changed)
    source_a = MqttSource("mqtt:a", config(mqtt_broker, topic, uuid.uuid4().hex,
                                           share_group=group), SimClock())
    source_b = MqttSource("mqtt:b", config(mqtt_broker, topic, uuid.uuid4().hex,
                                           share_group=group), SimClock())
    async with running(source_a, a), running(source_b, b):
        await publish(mqtt_broker, topic, [json.dumps(post(n)).encode() for n in range(40)])
        async with asyncio.timeout(TIMEOUT):
            while sum(a.received.values()) + sum(b.received.values()) < 40:
                changed.clear()
                await changed.wait()
    assert not set(a.received) & set(b.received)
    assert len(a.received) + len(b.received) == 40
    assert a.received and b.received


async def test_the_source_reconnects_after_the_broker_goes_away(tmp_path: Path) -> None:
    from tests.fixtures.broker import free_port, start_broker

    port = free_port()
    topic = f"t/{uuid.uuid4().hex}"
    sink = StoreSink(Store(tmp_path / "s.db"))
    clock = CountingClock()
    source = MqttSource("mqtt:test", config(("127.0.0.1", port), topic, uuid.uuid4().hex),
                        clock)
    task = asyncio.create_task(source.run(sink))
    try:
        # No broker yet: the source keeps trying (simulated backoff waits are instant).
        async with asyncio.timeout(TIMEOUT):
            while source.failures < 3:
                clock.slept.clear()
                await clock.slept.wait()
        with start_broker(port, kind="mosquitto"):
            async with asyncio.timeout(TIMEOUT):
                await source.subscribed.wait()
            assert source.failures == 0
            await publish(("127.0.0.1", port), topic, [json.dumps(post(1)).encode()])
            await sink.wait_for(1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
