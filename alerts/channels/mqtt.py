"""MQTT (aiomqtt, MQTT 5 by default): each alert published at QoS 1, plus a retained
incident-state topic, so a wall display or a home-grown bot sees current crises at once.

Topics, with ``prefix`` defaulting to ``crisismon/alerts``:

- ``{prefix}/{brand}/{type}``: every alert, payload the contract record (JSON, UTF-8),
  QoS 1, not retained;
- ``{prefix}/{brand}/incident/{incident_id}``: for ``crisis.*`` alerts, *retained*, payload
  ``{"incident_id", "brand", "state", "alert_id", "at", "level", "severity", "title"}`` with
  ``state`` one of ``opened``, ``checkpoint``, ``escalated``; ``crisis.closed`` publishes an
  empty retained payload, which the broker takes as "delete", so only open incidents remain;
- ``{prefix}/{brand}/incident/{incident_id}/updates``: every message about the incident
  (its crisis alerts, the grouped updates of new mentions, reply pages of its mentions,
  repeats), QoS 1, not retained, payload the contract record; with MQTT 5 the user
  properties ``incident-id`` and ``update`` (0 for the incident's first message on this
  channel, then 1, 2, ...) say where it stands. Subscribe to
  ``{prefix}/{brand}/incident/{incident_id}/#`` to follow one incident: its retained
  state and then its updates.

The connection is kept by one supervisor task that reconnects with jittered exponential
backoff; :meth:`MqttChannel.send` waits for it (up to ``timeout``) and otherwise fails
retryably, leaving the retry to the outbox.

Publishing goes to paho directly, not through aiomqtt's ``publish``: per publish that cost
a task, a timeout and an ``asyncio.Event``, and a scan of every pending call (so a batch
of n cost n squared), and paho's own in-flight window scanned its whole queue on every
PUBACK. Here a batch keeps up to ``INFLIGHT`` publishes in flight itself (paho's window is
off) and each PUBACK is matched to its alert by message id: 64 µs of CPU an alert where
the aiomqtt path took 261 µs (bench/outbox.py, 50,000 alerts to a local mosquitto).
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import ssl
import struct
from collections.abc import Callable, Sequence
from datetime import tzinfo
from types import TracebackType
from typing import Literal, Self

import aiomqtt
import structlog
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from paho.mqtt.reasoncodes import ReasonCode

from alerts.channels.base import DeliveryError, Thread, is_repeat
from alerts.channels.options import DEFAULT_PREFIX, MqttChannelConfig
from monitor.mqttread import coalesce_writes, lean_puback, read_all_packets
from monitor.retry import FailureLog, backoff
from monitor.secrets import Secret, load_secret
from rules.records import DEFAULT_TZ, Alert, AlertType

log = structlog.get_logger(__name__)

INFLIGHT = 1000
"""QoS 1 publishes of one batch awaiting their PUBACK at once; the next ones are sent as
PUBACKs come in."""

INCIDENT_STATES: dict[AlertType, str] = {
    AlertType.CRISIS_OPENED: "opened",
    AlertType.CRISIS_CHECKPOINT: "checkpoint",
    AlertType.CRISIS_ESCALATED: "escalated",
    AlertType.CRISIS_CLOSED: "closed",
}


@functools.lru_cache(maxsize=4096)
def topic_segment(text: str) -> str:
    """``text`` safe as one topic level: no ``/`` (level separator) or wildcards.
    (Cached: a brand's name is made safe once, not char by char for every alert.)"""
    return "".join("_" if c in "/+#\0" else c for c in text) or "_"


def alert_topic(prefix: str, alert: Alert) -> str:
    """``{prefix}/{brand}/{type}``."""
    return f"{prefix}/{topic_segment(alert.brand)}/{alert.type}"


def incident_topic(prefix: str, brand: str, incident_id: str) -> str:
    """``{prefix}/{brand}/incident/{incident_id}`` (retained state)."""
    return f"{prefix}/{topic_segment(brand)}/incident/{topic_segment(incident_id)}"


def updates_topic(prefix: str, brand: str, incident_id: str) -> str:
    """``{prefix}/{brand}/incident/{incident_id}/updates`` (every message about it)."""
    return incident_topic(prefix, brand, incident_id) + "/updates"


class MqttChannel:
    """Publishes alerts over one supervised MQTT connection.

    Use as ``async with MqttChannel(...) as ch:``, or call :meth:`start` (or run
    :meth:`run` in your TaskGroup) and :meth:`aclose` at the end. :meth:`send` starts
    the connection on first use when nobody did.
    """

    def __init__(self, name: str, *, host: str = "127.0.0.1", port: int = 1883,
                 prefix: str = DEFAULT_PREFIX, username: str = "",
                 password: Secret | None = None, client_id: str = "", tls: bool = False,
                 protocol: Literal["5", "3.1.1"] = "5", keepalive: float = 60.0,
                 timeout: float = 10.0, reconnect_min: float = 1.0, reconnect_max: float = 15.0,
                 tz: tzinfo = DEFAULT_TZ, rnd: Callable[[], float] = random.random) -> None:
        self.name = name
        self.prefix = prefix
        self._host = host
        self._port = port
        self._username = username
        self._password = password or Secret("")
        self._client_id = client_id
        self._tls = tls
        self._v5 = protocol == "5"
        self._keepalive = keepalive
        self._timeout = timeout
        self._reconnect = (reconnect_min, reconnect_max)
        self._tz = tz
        self._rnd = rnd
        self._client: aiomqtt.Client | None = None
        self._acks: dict[int, tuple[_Window, int]] = {}
        """Message id -> (the batch waiting for its PUBACK, which alert), this connection."""
        self._windows: set[_Window] = set()
        """Batches in flight: woken when the connection is lost."""
        self._issuing = asyncio.Lock()
        """Held by the batch publishing: the next one waits its turn (order on the wire)."""
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, cfg: MqttChannelConfig, tz: tzinfo = DEFAULT_TZ) -> MqttChannel:
        """Build from settings, resolving the password ref now (fail at start-up)."""
        return cls(cfg.name, host=cfg.host, port=cfg.port, prefix=cfg.prefix,
                   username=cfg.username, password=load_secret(cfg.password),
                   client_id=cfg.client_id, tls=cfg.tls, protocol=cfg.protocol,
                   keepalive=cfg.keepalive, timeout=cfg.timeout,
                   reconnect_min=cfg.reconnect_min, reconnect_max=cfg.reconnect_max, tz=tz)

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        return self._connected.is_set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the supervisor task (named ``mqtt:<channel>``); returns at once."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"mqtt:{self.name}")

    async def wait_connected(self) -> None:
        """Until the broker connection is up (wrap in ``asyncio.timeout``)."""
        await self._connected.wait()

    def _make_client(self) -> aiomqtt.Client:
        client = aiomqtt.Client(
            self._host, self._port,
            username=self._username or None,
            password=self._password.reveal() if self._username else None,
            identifier=self._client_id or None,
            protocol=aiomqtt.ProtocolVersion.V5 if self._v5 else aiomqtt.ProtocolVersion.V311,
            tls_context=ssl.create_default_context() if self._tls else None,
            keepalive=max(1, int(self._keepalive)),
            timeout=self._timeout,
            # No window in paho: with one, every PUBACK made it scan its whole queue for
            # the next message to send. ``send_batch`` keeps its own (``INFLIGHT``).
            max_inflight_messages=0,
        )
        read_all_packets(client)  # every PUBACK the socket holds in one loop turn
        lean_puback(client)  # and none of paho's objects per PUBACK
        coalesce_writes(client)  # the publishes of a pass in few sends, not one each
        self._acks = _hook_acks(client)
        return client

    async def run(self) -> None:
        """Keep a connection up until cancelled: connect, wait for loss, back off, repeat.

        A lost connection is logged once when it starts and once when it recovers, not
        on every failed attempt.
        """
        health = FailureLog(log, "mqtt.connection_lost", "mqtt.reconnected", channel=self.name,
                            host=self._host, port=self._port)
        while True:
            client = self._make_client()
            try:
                async with client:
                    if not health.succeeded():
                        log.info("mqtt.connected", channel=self.name, host=self._host,
                                 port=self._port)
                    self._client = client
                    self._connected.set()
                    # We subscribe to nothing; the iterator only ends by raising when the
                    # connection drops, which is the signal we wait for.
                    async for _ in client.messages:
                        pass
            except aiomqtt.MqttError as exc:
                health.failed(exc)
            except Exception as exc:
                # Anything else (a TLS setup error, a bug) must not kill the supervisor
                # silently: sends would then time out forever with no hint why.
                health.failed(exc, exc_info=True)
            finally:
                self._client = None
                self._connected.clear()
                for window in self._windows:  # their PUBACKs will never come
                    window.wake.set()
            low, high = self._reconnect
            await asyncio.sleep(backoff(max(health.failures, 1), base=low, cap=high,
                                        rand=self._rnd))

    def _properties(self, alert: Alert, thread: Thread | None = None) -> Properties | None:
        if not self._v5:
            return None
        user = [("alert-id", alert.id)]
        if thread is not None:
            user += [("incident-id", thread.incident_id), ("update", str(thread.update))]
        return PackedProperties("application/json", user)  # type: ignore[return-value]

    def incident_payload(self, alert: Alert) -> bytes:
        """The retained state for a ``crisis.*`` alert; empty (clear) for ``crisis.closed``."""
        if alert.type is AlertType.CRISIS_CLOSED:
            return b""
        rec = alert.to_record(self._tz)
        state = {"incident_id": alert.incident_id, "brand": alert.brand,
                 "state": INCIDENT_STATES[alert.type], "alert_id": alert.id,
                 "at": rec["at"], "level": alert.level, "severity": alert.severity,
                 "title": alert.title}
        return json.dumps(state, ensure_ascii=False, separators=(",", ":")).encode()

    def _publishes(self, alert: Alert, thread: Thread | None
                   ) -> list[tuple[str, bytes, bool, Properties | None]]:
        """(topic, payload, retain, properties) of every publish one alert makes."""
        record = alert.to_json_bytes(self._tz)  # (cached on the alert: encoded once)
        publishes = [(alert_topic(self.prefix, alert), record, False, self._properties(alert))]
        if alert.incident_id:
            publishes.append((updates_topic(self.prefix, alert.brand, alert.incident_id),
                              record, False, self._properties(alert, thread)))
        # A repeat restates an old step: it must not roll the state back (a checkpoint's
        # reminder after the escalation).
        if alert.type in INCIDENT_STATES and alert.incident_id and not is_repeat(alert):
            publishes.append((incident_topic(self.prefix, alert.brand, alert.incident_id),
                              self.incident_payload(alert), True, self._properties(alert)))
        return publishes

    async def send(self, alert: Alert, thread: Thread | None = None) -> None:
        """Publish at QoS 1 (returns after the broker's PUBACK), and for an incident's
        message its update on the incident's topic and, for crisis alerts, its state."""
        result = (await self.send_batch([(alert, thread)]))[0]
        if isinstance(result, Exception):
            raise result

    async def send_batch(self, items: Sequence[tuple[Alert, Thread | None]]
                         ) -> list[str | Exception | None]:
        """Send many alerts with their publishes in flight together (the outbox's batch).

        Publishes are issued in order (so they reach the broker in order), up to
        ``INFLIGHT`` awaiting their PUBACK at once; one result per alert: None once every
        publish of it is acknowledged, else the DeliveryError (retryable) it failed with.
        No PUBACK for ``timeout`` seconds, or the connection lost, fails what is still
        unacknowledged.

        Several batches may be in flight at once (``alerts.outbox.WINDOWS_IN_FLIGHT``):
        each issues its publishes only after the batch before it issued all of its own
        (then waits for its PUBACKs while the next one publishes), so the broker gets
        every alert in the order the batches were handed in.
        """
        await self.start()
        async with self._issuing:  # FIFO: batches publish in the order they came
            window, client, todo = await self._issue(items)
        if window is None:
            return todo
        try:
            if window.outstanding:
                await self._acked(window, client)
        finally:
            self._forget(window)
        log.debug("mqtt.sent", channel=self.name, alerts=len(items),
                  failed=sum(r is not None for r in window.results))
        return window.results

    async def _issue(self, items: Sequence[tuple[Alert, Thread | None]]) -> tuple[
            _Window | None, aiomqtt.Client | None, list[str | Exception | None]]:
        """Publish every message of ``items``, waiting for PUBACKs whenever ``INFLIGHT``
        are out; returns (the window, its connection, []) with the last ones still
        unacknowledged, or (None, None, a result per item) when not connected."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._connected.wait()
        except TimeoutError:
            error = DeliveryError(f"MQTT: not connected to {self._host}:{self._port}",
                                  retryable=True)
            return None, None, [error] * len(items)
        client = self._client
        if client is None:  # lost between the wake-up and now
            return None, None, [DeliveryError("MQTT: connection lost", retryable=True)] * \
                len(items)
        paho, acks = client._client, self._acks
        window = _Window(len(items))
        todo = ((i, pub) for i, (alert, thread) in enumerate(items)
                for pub in self._publishes(alert, thread))
        nxt = next(todo, None)
        self._windows.add(window)
        try:
            while nxt is not None:
                while nxt is not None and window.outstanding < INFLIGHT:
                    i, (topic, payload, retain, props) = nxt
                    nxt = next(todo, None)
                    if window.results[i] is not None:
                        continue  # an earlier publish of this alert failed
                    try:
                        info = paho.publish(topic, payload, qos=1, retain=retain,
                                            properties=props)
                    except ValueError as exc:  # a payload too large: no retry can help
                        window.results[i] = DeliveryError(f"MQTT: {exc}", retryable=False)
                        continue
                    if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        window.results[i] = DeliveryError(
                            f"MQTT: publish failed: {info.rc.name}", retryable=True)
                        continue
                    acks[info.mid] = (window, i)
                    window.left[i] += 1
                    window.outstanding += 1
                if nxt is not None and not await self._ack_progress(window, client):
                    break
        except BaseException:
            self._forget(window)
            raise
        if nxt is not None:  # never published: failed with the connection
            for i, _pub in [nxt, *todo]:
                if window.results[i] is None:
                    window.results[i] = DeliveryError("MQTT: connection lost", retryable=True)
        return window, client, []

    async def _ack_progress(self, window: _Window, client: aiomqtt.Client) -> bool:
        """Until a PUBACK of ``window`` comes in; False (and the window failed) if none
        came within ``timeout`` or the connection was lost."""
        window.wake.clear()
        try:
            async with asyncio.timeout(self._timeout):
                await window.wake.wait()
        except TimeoutError:
            window.fail(DeliveryError("MQTT: no PUBACK in time", retryable=True))
            return False
        if self._client is not client:
            window.fail(DeliveryError("MQTT: connection lost", retryable=True))
            return False
        return True

    async def _acked(self, window: _Window, client: aiomqtt.Client | None) -> None:
        """Until every publish of ``window`` is acknowledged (or it failed)."""
        while window.outstanding and not window.failed:
            if client is None or not await self._ack_progress(window, client):
                return

    def _forget(self, window: _Window) -> None:
        """``window`` is over: PUBACKs still due for it (it failed, or was cancelled)
        are no longer awaited."""
        self._windows.discard(window)
        if window.outstanding:
            for mid in [m for m, (w, _) in self._acks.items() if w is window]:
                del self._acks[mid]

    async def aclose(self) -> None:
        """Disconnect and stop the supervisor."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                # Re-raise only if *we* are being cancelled, not the task we just stopped.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


class PackedProperties:
    """MQTT 5 PUBLISH properties (content type, user properties), packed once.

    What paho needs of a publish's properties is ``pack()``; its own ``Properties`` looks
    every name up in its tables on each set and each pack, which cost more than the rest
    of a publish. The bytes are the same (MQTT 5.0 section 3.3.2.3).
    """

    __slots__ = ("_packed", "user")

    def __init__(self, content_type: str, user: list[tuple[str, str]]) -> None:
        self.user = user
        body = _content_type(content_type) + b"".join(
            USER_PROPERTY_ID + _utf8(k) + _utf8(v) for k, v in user)
        self._packed = bytes(VariableByteIntegers.encode(len(body))) + body

    def pack(self) -> bytes:
        return self._packed

    def __str__(self) -> str:  # paho's debug log names a publish's properties
        return f"[ContentType, UserProperty : {self.user}]"


@functools.lru_cache(maxsize=16)
def _content_type(content_type: str) -> bytes:
    """The content-type property, packed (the same for every alert)."""
    return CONTENT_TYPE_ID + _utf8(content_type)


CONTENT_TYPE_ID = bytes([Properties(PacketTypes.PUBLISH).getIdentFromName("ContentType")])
USER_PROPERTY_ID = bytes([Properties(PacketTypes.PUBLISH).getIdentFromName("UserProperty")])


class _Window:
    """One ``send_batch`` in flight: publishes awaiting their PUBACK, per alert."""

    __slots__ = ("failed", "left", "outstanding", "results", "wake")

    def __init__(self, n: int) -> None:
        self.left = [0] * n
        """Per alert: its publishes still awaiting their PUBACK."""
        self.outstanding = 0
        self.results: list[str | Exception | None] = [None] * n
        self.wake = asyncio.Event()
        self.failed = False
        """Given up on (see ``fail``): its late PUBACKs are not waited for."""

    def acked(self, i: int) -> None:
        self.left[i] -= 1
        self.outstanding -= 1
        self.wake.set()

    def fail(self, error: Exception) -> None:
        """Every alert with a publish still unacknowledged failed with ``error``."""
        self.failed = True
        for i, left in enumerate(self.left):
            if left and self.results[i] is None:
                self.results[i] = error


def _hook_acks(client: aiomqtt.Client) -> dict[int, tuple[_Window, int]]:
    """Route the PUBACKs of ``send_batch``'s publishes to their window; any other (none
    today) to aiomqtt's own handler. Returns the message-id table for this connection."""
    acks: dict[int, tuple[_Window, int]] = {}
    paho = client._client
    inner = paho.on_publish

    def on_publish(c: object, userdata: object, mid: int, reason: ReasonCode,
                   props: Properties | None) -> None:
        waiting = acks.pop(mid, None)
        if waiting is None:
            if inner is not None:
                inner(c, userdata, mid, reason, props)  # type: ignore[call-arg, arg-type]
            return
        waiting[0].acked(waiting[1])

    paho.on_publish = on_publish
    return acks
