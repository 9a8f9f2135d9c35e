"""Every channel kind's settings (``[[channels]]`` tables), apart from the channels.

The config loads and validates these; the channel that uses one is imported only when a
configured channel of that kind is built (``alerts.channels.registry``). So loading and
checking a config, and importing the engine, load no network library (aiohttp,
aiosmtplib, aiomqtt, paho): tests/unit/test_layers.py holds that.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from monitor.secrets import check_reference, is_reference
from rules.records import Duration

SEVERITIES = ("P1", "P2", "P3", "P4")
DEFAULT_PREFIX = "crisismon/alerts"
"""The MQTT channel's topic prefix unless ``prefix`` is set."""


def validate_url(key: str, url: str) -> Iterator[tuple[str, str]]:
    """Problems with a URL-or-secret-ref setting (shared by the HTTP channels)."""
    if is_reference(url):
        problem = check_reference(url)
        if problem:
            yield key, problem
    elif not url.startswith(("https://", "http://")):
        yield key, "must start with https:// (or be a secret ref such as \"env:NAME\")"


def validate_ref(key: str, ref: str) -> Iterator[tuple[str, str]]:
    """Problems with the form of a secret ref setting."""
    problem = check_reference(ref) if ref else None
    if problem:
        yield key, problem


@dataclass(frozen=True)
class DingTalkChannelConfig:
    """A DingTalk custom robot in a group chat (``type = "dingtalk"``)."""

    type: Literal["dingtalk"]
    name: str
    """Channel name, unique; deliveries are tracked per channel name."""
    url: str
    """The robot's webhook URL with its ``access_token``; as it carries the token, better a
    secret ref (``env:NAME``, ``file:/path``, ``credential:NAME``)."""
    secret: str = ""
    """Secret ref for 加签 signing (the ``SEC…`` key); empty when the robot is not signed."""
    at_mobiles: tuple[str, ...] = ()
    """Phone numbers to @ in every message (they get a push even when the group is muted)."""
    at_all: bool = False
    """@ everyone in the group."""
    timeout: Duration = Duration(10.0)
    """Give up on one attempt after this long (the outbox retries)."""

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from validate_url("url", self.url)
        yield from validate_ref("secret", self.secret)


@dataclass(frozen=True)
class WeComChannelConfig:
    """A WeCom group robot (``type = "wecom"``)."""

    type: Literal["wecom"]
    name: str
    """Channel name, unique; deliveries are tracked per channel name."""
    url: str
    """The robot's webhook URL with its ``key``; as the key is the credential, better a
    secret ref (``env:NAME``, ``file:/path``, ``credential:NAME``)."""
    mention: tuple[str, ...] = ()
    """WeCom user ids to @ in every message (``<@userid>``)."""
    timeout: Duration = Duration(10.0)
    """Give up on one attempt after this long (the outbox retries)."""

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from validate_url("url", self.url)


@dataclass(frozen=True)
class FeishuChannelConfig:
    """A Feishu / Lark custom bot in a group chat (``type = "feishu"``)."""

    type: Literal["feishu"]
    name: str
    """Channel name, unique; deliveries are tracked per channel name."""
    url: str
    """The bot's webhook URL (``…/open-apis/bot/v2/hook/<id>``); better a secret ref
    (``env:NAME``, ``file:/path``, ``credential:NAME``), as anyone holding it can post."""
    secret: str = ""
    """Secret ref for signature verification (签名校验); empty when it is off."""
    msg_type: Literal["interactive", "text"] = "interactive"
    """``interactive``: a coloured card; ``text``: plain text (for clients without cards)."""
    timeout: Duration = Duration(10.0)
    """Give up on one attempt after this long (the outbox retries)."""

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from validate_url("url", self.url)
        yield from validate_ref("secret", self.secret)


@dataclass(frozen=True)
class SlackChannelConfig:
    """Slack (``type = "slack"``): an incoming webhook (``url``), or a bot (``token`` and
    ``channel``) that threads each incident's updates under its first message."""

    type: Literal["slack"]
    name: str
    """Channel name, unique; deliveries are tracked per channel name."""
    url: str = ""
    """Webhook mode: the incoming-webhook URL; it is the credential, so better a secret
    ref (``env:NAME``, ``file:/path``, ``credential:NAME``). Cannot thread."""
    token: str = ""
    """Bot mode: secret ref for the bot token (``xoxb-…``, scope ``chat:write``)."""
    channel: str = ""
    """Bot mode: the conversation id to post in (``C0123456789``); invite the bot to it."""
    api_url: str = "https://slack.com/api"
    """Bot mode: the Web API base URL (a test points it at a fake)."""
    broadcast: tuple[str, ...] = ("P1", "P2")
    """Bot mode: thread replies of these severities, and every repeat, are also shown in
    the channel (``reply_broadcast``), so a threaded page still reaches everyone."""
    timeout: Duration = Duration(10.0)
    """Give up on one attempt after this long (the outbox retries)."""

    def validate(self) -> Iterator[tuple[str, str]]:
        if bool(self.url) == bool(self.token):
            yield "url", ("set either url (incoming webhook) or token and channel (a bot, "
                          "which threads each incident's updates)")
        if self.url:
            yield from validate_url("url", self.url)
        if self.token:
            yield from validate_ref("token", self.token)
            yield from validate_url("api_url", self.api_url)
            if not self.channel.strip():
                yield "channel", 'a bot (token) needs the conversation id, e.g. "C0123456789"'
        if any(s not in SEVERITIES for s in self.broadcast):
            yield "broadcast", "use P1, P2, P3, P4"


@dataclass(frozen=True)
class WebhookChannelConfig:
    """A generic JSON webhook (``type = "webhook"``)."""

    type: Literal["webhook"]
    name: str
    """Channel name, unique; deliveries are tracked per channel name."""
    url: str
    """Where to POST; or a secret ref (``env:NAME``, ``file:/path``, ``credential:NAME``)."""
    secret: str = ""
    """Secret ref for the HMAC-SHA256 signature header; empty: unsigned."""
    timeout: Duration = Duration(10.0)
    """Give up on one attempt after this long (the outbox retries)."""

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from validate_url("url", self.url)
        yield from validate_ref("secret", self.secret)


@dataclass(frozen=True)
class EmailChannelConfig:
    """Mail through an SMTP server (``type = "email"``)."""

    type: Literal["email"]
    name: str
    """Channel name, unique; deliveries are tracked per channel name."""
    sender: str
    """The From address, e.g. ``"crisismon <alerts@example.com>"``."""
    to: tuple[str, ...]
    """Recipient addresses; every alert goes to all of them."""
    host: str = "localhost"
    """SMTP server."""
    port: int = 587
    """SMTP port: 587 for STARTTLS submission, 465 for implicit TLS, 25 for a local relay."""
    tls: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls`` (upgrade, required), ``tls`` (implicit, port 465), ``none`` (local relay)."""
    username: str = ""
    """Login name; empty: no login."""
    password: str = ""
    """Secret ref for the login password (``env:NAME``, ``file:/path``, ``credential:NAME``)."""
    timeout: Duration = Duration(30.0)
    """Give up on one attempt after this long (the outbox retries)."""

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.to:
            yield "to", "needs at least one address"
        for i, addr in enumerate((self.sender, *self.to)):
            if "@" not in email.utils.parseaddr(addr)[1]:
                yield ("sender" if i == 0 else f"to[{i - 1}]"), f'"{addr}" is not an e-mail address'
        if self.username and not self.password:
            yield "password", "is required when username is set"
        if not 0 < self.port < 65536:
            yield "port", "must be 1..65535"
        yield from validate_ref("password", self.password)


@dataclass(frozen=True)
class MqttChannelConfig:
    """Publish alerts to an MQTT broker (``type = "mqtt"``)."""

    type: Literal["mqtt"]
    name: str
    """Channel name, unique; deliveries are tracked per channel name."""
    host: str = "127.0.0.1"
    """Broker host."""
    port: int = 1883
    """Broker port (8883 is the usual one with TLS)."""
    prefix: str = DEFAULT_PREFIX
    """Topic prefix; alerts go to ``{prefix}/{brand}/{type}``."""
    username: str = ""
    """Login name; empty: anonymous."""
    password: str = ""
    """Secret ref for the password (``env:NAME``, ``file:/path``, ``credential:NAME``)."""
    client_id: str = ""
    """MQTT client id; empty: a random one per connection."""
    tls: bool = False
    """Connect with TLS, verifying the broker against the system's CAs."""
    protocol: Literal["5", "3.1.1"] = "5"
    """MQTT protocol version; 3.1.1 only for brokers without MQTT 5."""
    keepalive: Duration = Duration(60.0)
    """MQTT keepalive: how soon a dead connection is noticed (at most 1.5 times this)."""
    timeout: Duration = Duration(10.0)
    """How long one send waits for the connection and for the broker's PUBACK."""
    reconnect_min: Duration = Duration(1.0)
    """First wait before reconnecting; doubles on each failure, with jitter."""
    reconnect_max: Duration = Duration(15.0)
    """Longest wait between reconnection attempts: pages flow again this soon after the
    broker is back."""

    def validate(self) -> Iterator[tuple[str, str]]:
        if not 0 < self.port < 65536:
            yield "port", "must be 1..65535"
        if not self.prefix or any(c in self.prefix for c in "+#\0") or self.prefix.endswith("/"):
            yield "prefix", "must be a topic without wildcards (+, #) or a trailing /"
        if self.reconnect_min <= 0 or self.reconnect_max < self.reconnect_min:
            yield "reconnect_max", "needs 0 < reconnect_min <= reconnect_max"
        if self.password and not self.username:
            yield "username", "is required when password is set"
        yield from validate_ref("password", self.password)


@dataclass(frozen=True)
class TerminalChannelConfig:
    """Print each alert as one line (``type = "terminal"``)."""

    type: Literal["terminal"]
    name: str
    """Channel name, unique; deliveries are tracked per channel name."""
    stream: Literal["stdout", "stderr"] = "stdout"
    """Where to print."""
    color: Literal["auto", "always", "never"] = "auto"
    """``auto``: colour only when the stream is a terminal."""
