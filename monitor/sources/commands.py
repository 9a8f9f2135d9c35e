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
import json
import random

import aiomqtt
import structlog

from monitor.clock import Clock
from monitor.config import CommandsConfig
from monitor.normalise import BadInput, parse_action
from monitor.retry import FailureLog, backoff
from monitor.sources.base import Batch, Sink
from rules.records import Action

log = structlog.get_logger(__name__)


def parse_command(payload: bytes, now: float, source: str = "mqtt") -> Action:
    """One command message -> an Action (created now). Raises BadInput.

    The message's ``id``, when the sender gives one, is its idempotency key; without
    one, the same command twice (a redelivery, a bot's retry) is one action.
    """
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("not JSON") from None
    if not isinstance(obj, dict):
        raise BadInput("not a JSON object")
    return parse_action(obj, source, now=now, default_by="mqtt")


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
                except BadInput as exc:
                    self.rejected += 1
                    log.warning("command rejected", source=self.name, topic=str(message.topic),
                                reason=str(exc))
                    continue
                await sink.ingest(Batch(self.name, [action]))
