"""Wiring for paging: the configured channels, the outbox's noise and repeat options,
and the MQTT command source, built from the config for the daemon."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from alerts.ack import is_settled
from alerts.channels.registry import build_channel
from alerts.noise import Stages
from monitor.clock import Clock
from monitor.config import Config, ConfigError
from monitor.secrets import SecretError, resolve_secret
from monitor.sources.commands import CommandSource
from rules.records import Alert

if TYPE_CHECKING:
    from alerts.outbox import Sender
    from monitor.pipeline import Pipeline

log = structlog.get_logger(__name__)


def build_paging_channels(config: Config) -> list[Sender]:
    """Every ``[[channels]]`` entry, secrets resolved; a missing secret is a ConfigError
    naming its key (``channels[1].secret: ...``), never showing the secret itself."""
    built: list[Sender] = []
    problems: list[str] = []
    for i, cfg in enumerate(config.channels):
        try:
            built.append(build_channel(cfg, config.tz))
        except SecretError as exc:
            problems.append(f"channels[{i}]{_secret_key(cfg, str(exc))}: {exc}")
    if problems:
        raise ConfigError(problems)
    return built


def _secret_key(cfg: object, message: str) -> str:
    """The settings key whose reference failed, found by the reference in the message."""
    for key in ("url", "secret", "password", "token"):
        ref = getattr(cfg, key, "")
        if isinstance(ref, str) and ref and ref in message:
            return f".{key}"
    return ""


def outbox_options(config: Config, pipeline: Pipeline) -> dict[str, Any]:
    """Noise stages and repeat settings for the daemon's Outbox."""

    def settled(alert: Alert) -> bool:
        # The engine in use now, never one captured here: a lease takeover
        # (``Cluster.take_over``) and a rebuild swap ``pipeline.engine``, and the old one
        # no longer hears of replies or acks (an answered breach would repeat) nor of new
        # mentions (a new breach would count as settled and never repeat).
        return is_settled(pipeline.engine, alert)

    return {"stages": Stages.from_config(config.paging, config.tz),
            "repeat_every": float(config.paging.repeat_every),
            "repeat_max": config.paging.repeat_max, "settled": settled}


def command_sources(config: Config, clock: Clock) -> list[CommandSource]:
    """The MQTT command source when ``[commands] enabled``; actions are stamped by ``clock``
    (the engine's clock, so a demo's scaled time stays consistent)."""
    cc = config.commands
    if not cc.enabled:
        return []
    try:
        password = resolve_secret(cc.password) if cc.password else ""
    except SecretError as exc:
        raise ConfigError([f"commands.password: {exc}"]) from None
    return [CommandSource(cc, clock, password)]


async def aclose_channels(channels: Sequence[object]) -> None:
    """Close every channel that holds connections; one failing close does not stop the rest."""
    for c in channels:
        aclose = getattr(c, "aclose", None)
        if not callable(aclose):
            continue
        try:
            await aclose()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # closing is best effort at shutdown
            log.warning("channel close failed", channel=getattr(c, "name", "?"), error=str(exc))
