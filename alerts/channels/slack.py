"""Slack incoming webhook: ``text`` (the notification and fallback) plus Block Kit ``blocks``.

Format, from Slack's incoming-webhook documentation (from memory): POST JSON to
``https://hooks.slack.com/services/T…/B…/…``; success is HTTP 200 with the plain body
``ok``; errors are 4xx with a plain reason (``invalid_payload``, ``no_service``,
``channel_is_archived``, ``action_prohibited``), 429 with ``Retry-After`` when rate
limited (about one message a second), 5xx (``rollup_error``) on Slack's side.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import tzinfo
from typing import Literal

import structlog

from alerts.channels._http import HttpPoster, check_http, validate_url
from alerts.channels.base import DeliveryError, render, render_fields, render_title
from alerts.record import DEFAULT_TZ, Alert
from monitor.secrets import Secret, load_secret
from monitor.settings import Duration

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SlackChannelConfig:
    """A Slack incoming webhook (``type = "slack"``)."""

    type: Literal["slack"]
    name: str
    """Channel name, unique; deliveries are tracked per channel name."""
    url: str
    """The incoming-webhook URL; it is the credential, so better a secret ref
    (``env:NAME``, ``file:/path``, ``credential:NAME``)."""
    timeout: Duration = Duration(10.0)
    """Give up on one attempt after this long (the outbox retries)."""

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from validate_url("url", self.url)


def mrkdwn_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn reserves (``& < >``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert, tz: tzinfo) -> dict[str, object]:
    """``text`` for notifications and old clients, ``blocks`` for the readable card."""
    title, body = render(alert, tz)
    fields = [{"type": "mrkdwn", "text": f"*{label}*\n{mrkdwn_escape(value)}"[:2000]}
              for label, value in render_fields(alert, tz)][:10]  # Slack allows 10
    blocks: list[dict[str, object]] = [
        {"type": "header",
         "text": {"type": "plain_text", "text": render_title(alert)[:150], "emoji": True}},
        {"type": "section", "fields": fields},
    ]
    if alert.text:
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": mrkdwn_escape(alert.text)[:3000]}})
    return {"text": mrkdwn_escape(f"{title}\n{body}")[:3000], "blocks": blocks}


class SlackChannel:
    """Posts each alert through a Slack incoming webhook."""

    def __init__(self, name: str, url: Secret, *, timeout: float = 10.0,
                 tz: tzinfo = DEFAULT_TZ) -> None:
        self.name = name
        self._url = url
        self._tz = tz
        self._http = HttpPoster(timeout)

    @classmethod
    def from_config(cls, cfg: SlackChannelConfig, tz: tzinfo = DEFAULT_TZ) -> SlackChannel:
        """Build from settings, resolving the URL ref now (fail at start-up)."""
        return cls(cfg.name, load_secret(cfg.url), timeout=cfg.timeout, tz=tz)

    async def send(self, alert: Alert) -> None:
        """Post ``alert``; 200 ``ok`` is delivered, 429 honours ``Retry-After``."""
        body = json.dumps(slack_payload(alert, self._tz), ensure_ascii=False).encode()
        answer = await self._http.post(self._url.reveal(), body)
        check_http(answer)
        if answer.text.strip() != "ok":
            # A 200 that is not Slack's "ok": a proxy page or a wrong URL; worth a retry.
            raise DeliveryError(f"Slack: unexpected answer {answer.text[:100]!r}",
                                retryable=True)
        log.debug("slack.sent", channel=self.name, alert_id=alert.id)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()
