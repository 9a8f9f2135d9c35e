"""The MQTT command topic: acks and resolves from chat bots, wall displays, scripts.

A message on ``crisismon/commands`` (by default) is one JSON object, the same shape as a
feed's action line: ``{"action": "ack", "target": "<alert, mention or incident id>",
"by": "小王"}``, plus ``"public": true|false`` for ``resolve``. It becomes an
:class:`~rules.records.Action` stored as an event, exactly like an API or feed action,
so it is replayed on restart. Subscribed at QoS 1 with a persistent session: commands
sent while the daemon is down are delivered when it returns. A malformed command is
logged with its reason and dropped (a bad command must not block the topic).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random

import aiomqtt
import structlog

from alerts.ack import base_alert_id
from monitor.clock import Clock
from monitor.config import CommandsConfig
from monitor.sources.base import Batch, Sink
from rules.records import Action, ActionKind

log = structlog.get_logger(__name__)

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
        kind = ActionKind(obj.get("action", ""))
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
                 name: str = "commands") -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.password = password
        self.subscribed = asyncio.Event()
        self.rejected = 0
        self._failures = 0
        self.failures_total = 0
        """Failed connection attempts since start (``crisismon_source_failures_total``)."""

    async def run(self, sink: Sink) -> None:
        """Receive until cancelled, reconnecting with jittered backoff."""
        while True:
            try:
                await self._session(sink)
            except aiomqtt.MqttError as exc:
                self._failures += 1
                self.failures_total += 1
                if self._failures == 1:
                    log.warning("source failing", source=self.name, error=str(exc))
                cap = min(float(self.config.backoff_max), 2.0 ** min(self._failures, 10))
                await asyncio.sleep(random.uniform(cap / 2, cap))
            finally:
                self.subscribed.clear()

    async def _session(self, sink: Sink) -> None:
        cfg = self.config
        async with aiomqtt.Client(cfg.host, cfg.port, identifier=cfg.client_id,
                                  username=cfg.username or None,
                                  password=self.password or None, clean_session=False,
                                  timeout=10.0) as client:
            await client.subscribe(cfg.topic, qos=1)
            if self._failures:
                log.info("source recovered", source=self.name, failed_attempts=self._failures)
                self._failures = 0
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
