"""All channel kinds in one place: the config union and the factory.

``ChannelConfig`` is what ``[[channels]]`` tables load into; the settings loader tells
the kinds apart by their ``type`` key. The settings live in ``alerts.channels.options``;
a channel's own module (and the network library it uses) is imported only when a channel
of its kind is built, so a config naming no MQTT channel never loads paho.
"""

from __future__ import annotations

import importlib
from datetime import tzinfo
from typing import Any, cast

from alerts.channels.base import Channel
from alerts.channels.options import (
    DingTalkChannelConfig,
    EmailChannelConfig,
    FeishuChannelConfig,
    MqttChannelConfig,
    SlackChannelConfig,
    TerminalChannelConfig,
    WebhookChannelConfig,
    WeComChannelConfig,
)
from rules.records import DEFAULT_TZ

ChannelConfig = (DingTalkChannelConfig | WeComChannelConfig | FeishuChannelConfig
                 | SlackChannelConfig | WebhookChannelConfig | EmailChannelConfig
                 | MqttChannelConfig | TerminalChannelConfig)
"""Any one channel's settings; a ``[[channels]]`` table with its ``type``."""

IMPLEMENTATIONS: dict[str, str] = {
    "dingtalk": "alerts.channels.dingtalk:DingTalkChannel",
    "wecom": "alerts.channels.wecom:WeComChannel",
    "feishu": "alerts.channels.feishu:FeishuChannel",
    "slack": "alerts.channels.slack:SlackChannel",
    "webhook": "alerts.channels.webhook:WebhookChannel",
    "email": "alerts.channels.email:EmailChannel",
    "mqtt": "alerts.channels.mqtt:MqttChannel",
    "terminal": "alerts.channels.terminal:TerminalChannel",
}
"""A channel kind (its settings' ``type``) -> ``module:Class`` of the channel, whose
``from_config(cfg, tz)`` builds it. Strings, resolved on use: see the module docstring."""


def channel_class(kind: str) -> type[Any]:
    """The channel class for a ``[[channels]]`` ``type``, its module imported now."""
    try:
        module, _, name = IMPLEMENTATIONS[kind].partition(":")
    except KeyError:
        raise TypeError(f"not a channel kind: {kind!r}") from None
    return cast("type[Any]", getattr(importlib.import_module(module), name))


def build_channel(cfg: ChannelConfig, tz: tzinfo = DEFAULT_TZ) -> Channel:
    """The channel for ``cfg``, its secret refs resolved (raises SecretError if missing).

    ``tz`` is the config's zone, for the times written in messages and records.
    """
    kind = getattr(cfg, "type", None)
    if not isinstance(kind, str) or kind not in IMPLEMENTATIONS:
        raise TypeError(f"not a channel config: {cfg!r}")
    return cast(Channel, channel_class(kind).from_config(cfg, tz))
