"""MQTT input: posts published to topics (one JSON object or an array per message).

Delivery is at least once, end to end, across daemon restarts:

- MQTT 5 with a persistent session (``clean_start`` off, a session expiry), a stable
  client id and QoS 1 subscriptions: the broker queues what is published while the
  daemon is down and delivers it when it returns;
- messages are acknowledged (PUBACK) only after their batch is stored, so a crash
  between receiving and storing makes the broker send them again; the store's dedupe
  by post id drops what was already stored;
- ``share_group`` subscribes as ``$share/<group>/<topic>`` so several instances split
  one feed, each message going to one of them.

Messages waiting in the client's queue are taken together into one batch (one store
transaction), which is what makes thousands of posts a second possible. Connection
loss reconnects with jittered exponential backoff; failing and recovering are logged
once each.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from monitor.clock import Clock
from monitor.config import MqttSourceConfig
from monitor.mqttread import (
    ack_all,
    coalesce_writes,
    hold_reads,
    lean_publish,
    read_all_packets,
    release_reads,
)
from monitor.retry import FailureLog, backoff
from monitor.sources.base import Batch, Sink
from monitor.sources.edge import Edge
from monitor.sources.recorder import Recorder
from rules.records import Event

log = structlog.get_logger(__name__)

BATCH_MAX = 1000
"""Messages per batch at most."""
WINDOW_BATCHES = 4
"""The broker's in-flight window for us (Receive Maximum), in batches. A batch is
acknowledged only once stored, so with a window of one batch the broker sent nothing
while a batch was being handled: stop and wait, the next batch arriving only after the
PUBACKs, and a firehose backed up in the broker whenever a batch took a little longer.
With room for more, the next batches are already in the client's queue when one is
done. Nothing is acknowledged earlier: a crash still makes the broker send them again."""
BACKOFF_BASE = 1.0
LINGER = 0.03
"""Seconds a batch waits for more messages: ~nothing next to a 3-minute reply SLA, or
to the second a mention may take to be paged. Much of a batch's cost is paid once per
batch whatever its size (scoring its texts together: ~37 us a post in batches of 25,
~24 us in batches of 250; the commit; the outbox's claim of the pages it raised), and
at 5,000 posts/s 5 ms made batches of a few dozen posts."""


def subscription(topic: str, share_group: str) -> str:
    """The filter to subscribe: ``$share/<group>/<topic>`` when the feed is shared."""
    return f"$share/{share_group}/{topic}" if share_group else topic


class MqttSource:
    """Subscribes to the configured topics and feeds their posts to the sink."""

    def __init__(self, name: str, config: MqttSourceConfig, clock: Clock, *,
                 password: str = "", recorder: Recorder | None = None,
                 batch_max: int = BATCH_MAX, rng: random.Random | None = None) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.password = password
        self.recorder = recorder
        self.batch_max = batch_max
        self.rng = rng or random.Random()
        self.edge = Edge(name, config.max_payload)
        self.subscribed = asyncio.Event()
        """Set while connected and subscribed (tests wait for it before publishing)."""
        self.health = FailureLog(log, "source failing", "source recovered", source=name)
        self.messages = 0
        self._queue: asyncio.Queue[aiomqtt.Message] | None = None

    @property
    def waiting(self) -> int:
        """Messages received from the broker, not yet taken into a batch."""
        return 0 if self._queue is None else self._queue.qsize()

    @property
    def failures(self) -> int:
        """Failed connection attempts in a row (0 while connected)."""
        return self.health.failures

    @property
    def failures_total(self) -> int:
        """Failed connection attempts since start (``crisismon_source_failures_total``)."""
        return self.health.total

    async def run(self, sink: Sink) -> None:
        """Receive until cancelled, reconnecting after any connection loss."""
        log.info("mqtt source started", source=self.name, host=self.config.host,
                 port=self.config.port, topics=list(self.config.topics),
                 share_group=self.config.share_group or None)
        while True:
            try:
                await self._session(sink)
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                failures = self.health.failed(exc)
                delay = backoff(failures, base=BACKOFF_BASE,
                                cap=float(self.config.backoff_max), rand=self.rng.random)
                await self.clock.sleep_until(self.clock.now() + delay)
            finally:
                self.subscribed.clear()

    def _client(self) -> aiomqtt.Client:
        cfg = self.config
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(cfg.session_expiry)
        props.ReceiveMaximum = min(self.batch_max * WINDOW_BATCHES, 65535)
        client = aiomqtt.Client(
            cfg.host, cfg.port, identifier=cfg.client_id,
            username=cfg.username or None, password=self.password or None,
            protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props,
            timeout=10.0)
        # PUBACK only once stored (see the module docstring). Set before connecting: the
        # broker sends queued messages right after CONNACK.
        client._client.manual_ack_set(True)
        read_all_packets(client)  # else one message per event-loop turn (monitor.mqttread)
        lean_publish(client)  # and none of paho's per-message objects
        coalesce_writes(client)  # a batch's PUBACKs in one send, not one each
        return client

    async def _session(self, sink: Sink) -> None:
        client = self._client()
        async with client:
            for topic in self.config.topics:
                await client.subscribe(subscription(topic, self.config.share_group), qos=1)
            self.health.succeeded()
            self.subscribed.set()
            messages = client.messages
            queue: asyncio.Queue[aiomqtt.Message] = client._queue
            self._queue = queue
            async for first in messages:
                batch = await self._gather(client, first, queue)
                await self._handle(sink, batch)
                # Stored: acknowledged, the batch's PUBACKs in one packet (``ack_all``).
                ack_all(client, [m.mid for m in batch if m.qos == 1])
                for message in batch:
                    if message.qos == 2:
                        client._client.ack(message.mid, message.qos)
                # Nothing above waits when the client's queue is full (a firehose): the
                # next batch would follow at once, and the outbox (the pages this batch
                # raised), the timer and the socket reads would wait until the queue ran
                # dry. One turn of the loop between batches, as the feed source does.
                await asyncio.sleep(0)

    async def _gather(self, client: aiomqtt.Client, first: aiomqtt.Message,
                      queue: asyncio.Queue[aiomqtt.Message]) -> list[aiomqtt.Message]:
        """``first`` and whatever follows within ``LINGER`` on ``client``'s ``queue``: one
        store transaction for all.

        Without the short wait a message arriving just after another would be stored
        in a transaction of its own.
        """
        batch = [first]
        while len(batch) < self.batch_max and not queue.empty():
            batch.append(queue.get_nowait())
        if len(batch) < self.batch_max:
            # Asleep while they come in, then all taken at once: awaiting ``queue.get()``
            # for each made every message a wake-up of its own (a future, a loop turn, a
            # socket read of one packet), so the daemon spent more CPU a post when it had
            # time to spare (~140 us at load 4) than when it was behind (~110 at load 9).
            # And the socket held meanwhile (``hold_reads``): read once, after the sleep.
            held = hold_reads(client)
            try:
                await asyncio.sleep(LINGER)
            finally:
                if held:
                    release_reads(client)
            while len(batch) < self.batch_max and not queue.empty():
                batch.append(queue.get_nowait())
        return batch

    async def _handle(self, sink: Sink, batch: list[aiomqtt.Message]) -> None:
        payloads = [(_payload_bytes(message.payload), message.topic.value)
                    for message in batch]
        self.messages += len(batch)
        if self.recorder is None:  # the batch at once (``Edge.decode_many``)
            got = self.edge.decode_many(payloads)
            await sink.ingest(Batch(self.name, got.events, None, got.rejected))
            return
        events: list[Event] = []
        raws: list[dict[str, Any]] = []
        rejected = 0
        for data, where in payloads:
            one = self.edge.decode(data, where)
            events.extend(one.events)
            raws.extend(one.raw)
            rejected += one.rejected
        self.recorder.write(raws)
        await sink.ingest(Batch(self.name, events, None, rejected))


def _payload_bytes(payload: object) -> bytes:
    """A message's payload as bytes (aiomqtt's type allows str, numbers and None)."""
    if type(payload) is bytes:
        return payload
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode() if payload is not None else b""
