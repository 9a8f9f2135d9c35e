"""All channel kinds in one place: the config union and the factory.

``ChannelConfig`` is what ``[[channels]]`` tables load into; the settings loader tells
the kinds apart by their ``type`` key.
"""

from __future__ import annotations

from datetime import tzinfo

from alerts.channels.base import Channel
from alerts.channels.dingtalk import DingTalkChannel, DingTalkChannelConfig
from alerts.channels.email import EmailChannel, EmailChannelConfig
from alerts.channels.feishu import FeishuChannel, FeishuChannelConfig
from alerts.channels.mqtt import MqttChannel, MqttChannelConfig
from alerts.channels.slack import SlackChannel, SlackChannelConfig
from alerts.channels.terminal import TerminalChannel, TerminalChannelConfig
from alerts.channels.webhook import WebhookChannel, WebhookChannelConfig
from alerts.channels.wecom import WeComChannel, WeComChannelConfig
from rules.records import DEFAULT_TZ

ChannelConfig = (DingTalkChannelConfig | WeComChannelConfig | FeishuChannelConfig
                 | SlackChannelConfig | WebhookChannelConfig | EmailChannelConfig
                 | MqttChannelConfig | TerminalChannelConfig)
"""Any one channel's settings; a ``[[channels]]`` table with its ``type``."""


def build_channel(cfg: ChannelConfig, tz: tzinfo = DEFAULT_TZ) -> Channel:
    """The channel for ``cfg``, its secret refs resolved (raises SecretError if missing).

    ``tz`` is the config's zone, for the times written in messages and records.
    """
    match cfg:
        case DingTalkChannelConfig():
            return DingTalkChannel.from_config(cfg, tz)
        case WeComChannelConfig():
            return WeComChannel.from_config(cfg, tz)
        case FeishuChannelConfig():
            return FeishuChannel.from_config(cfg, tz)
        case SlackChannelConfig():
            return SlackChannel.from_config(cfg, tz)
        case WebhookChannelConfig():
            return WebhookChannel.from_config(cfg, tz)
        case EmailChannelConfig():
            return EmailChannel.from_config(cfg, tz)
        case MqttChannelConfig():
            return MqttChannel.from_config(cfg, tz)
        case TerminalChannelConfig():
            return TerminalChannel.from_config(cfg, tz)
    raise TypeError(f"not a channel config: {cfg!r}")
