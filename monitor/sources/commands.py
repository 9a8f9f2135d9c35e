"""The MQTT command topic: acks and resolves from chat bots, wall displays, scripts.

A message on ``crisismon/commands`` (by default) is one JSON object, the same shape as a
feed's action line: ``{"action": "ack", "target": "<alert, mention or incident id>",
"by": "小王"}``, plus ``"public": true|false`` for ``resolve``. It becomes an
:class:`~monitor.model.Action` stored as an event, exactly like an API or feed action,
so it is replayed on restart. Subscribed at QoS 1 with a persistent session: commands
sent while the daemon is down are delivered when it returns. A malformed command is
logged with its reason and dropped (a bad command must not block the topic).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

import aiomqtt
import structlog

from alerts.ack import base_alert_id
from monitor.clock import Clock
from monitor.model import Action, ActionKind
from monitor.retry import FailureLog, backoff
from monitor.secrets import check_reference
from monitor.settings import Duration
from monitor.sources.base import Batch, Sink

log = structlog.get_logger(__name__)

DEFAULT_TOPIC = "crisismon/commands"


@dataclass(frozen=True)
class CommandsConfig:
    """Acks and resolves over MQTT (``[commands]``)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    topic: str = DEFAULT_TOPIC
    """Where commands are published; JSON ``{"action", "target", "by", "public"}``."""
    client_id: str = "crisismon-commands"
    """Stable, so the broker queues commands while the daemon is down."""
    username: str = ""
    password: str = ""
    """A secret ref (``env:NAME``, ``file:/path``, ``credential:NAME``) or empty."""
    backoff_max: Duration = Duration(15.0)
    """Longest wait between reconnect attempts (acks flow again this soon after the
    broker is back)."""

    def validate(self) -> Iterator[tuple[str, str]]:
        if not 0 < self.port < 65536:
            yield "port", "must be 1..65535"
        if not self.topic or any(c in self.topic for c in "+#"):
            yield "topic", "must be a topic without wildcards"
        if self.password and (problem := check_reference(self.password)):
            yield "password", problem


class BadCommand(ValueError):
    """A command message that cannot be an action; the message says why."""


def parse_command(payload: bytes, now: float, source: str = "mqtt") -> Action:
    """One command message -> an Action (created now). Raises BadCommand."""
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise BadCommand("not JSON") from None
    if not isinstance(obj, dict):
        raise BadCommand("not a JSON object")
    try:
        kind = ActionKind(obj.get("action"))
    except ValueError:
        raise BadCommand('"action" must be "ack" or "resolve"') from None
    target, by = obj.get("target"), obj.get("by", "mqtt")
    if not isinstance(target, str | int) or not str(target).strip():
        raise BadCommand('"target" (alert, mention or incident id) is required')
    if not isinstance(by, str) or not by.strip():
        raise BadCommand('"by" must be a name')
    public = obj.get("public")
    if kind is ActionKind.RESOLVE and not isinstance(public, bool):
        raise BadCommand('"public": true|false is required with resolve')
    # The message id when the sender gives one (a retry is then stored once), else the
    # content and time: two identical commands a moment apart are two actions.
    given = obj.get("id")
    digest = hashlib.blake2b(payload + repr(now).encode(), digest_size=8).hexdigest()
    aid = f"{source}:{given}" if isinstance(given, str) and given else f"{source}:{digest}"
    # A page's repeat names itself a-…-r2; acking it acks the alert it repeats (as the
    # HTTP API does).
    return Action(id=aid, action=kind, target=base_alert_id(str(target).strip()), by=by,
                  created_at=now, public=public if kind is ActionKind.RESOLVE else None,
                  source=source)


class CommandSource:
    """Subscribes to the command topic and hands each valid command to the sink."""

    def __init__(self, config: CommandsConfig, clock: Clock, password: str = "",
                 name: str = "commands", rng: random.Random | None = None) -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.password = password
        self.subscribed = asyncio.Event()
        self.rejected = 0
        self.rng = rng or random.Random()
        self.health = FailureLog(log, "source failing", "source recovered", source=name)

    @property
    def failures_total(self) -> int:
        """Failed connection attempts since start (``crisismon_source_failures_total``)."""
        return self.health.total

    async def run(self, sink: Sink) -> None:
        """Receive until cancelled, reconnecting with jittered backoff."""
        while True:
            try:
                await self._session(sink)
            except aiomqtt.MqttError as exc:
                failures = self.health.failed(exc)
                await asyncio.sleep(backoff(failures, base=2.0, cap=float(self.config.backoff_max),
                                            rand=self.rng.random))
            finally:
                self.subscribed.clear()

    async def _session(self, sink: Sink) -> None:
        cfg = self.config
        async with aiomqtt.Client(cfg.host, cfg.port, identifier=cfg.client_id,
                                  username=cfg.username or None,
                                  password=self.password or None, clean_session=False,
                                  timeout=10.0) as client:
            await client.subscribe(cfg.topic, qos=1)
            self.health.succeeded()
            self.subscribed.set()
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else \
                    str(message.payload or "").encode()
                try:
                    action = parse_command(payload, self.clock.now(), self.name)
                except BadCommand as exc:
                    self.rejected += 1
                    log.warning("command rejected", source=self.name, topic=str(message.topic),
                                reason=str(exc))
                    continue
                await sink.ingest(Batch(self.name, [action]))
