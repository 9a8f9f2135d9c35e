"""Feishu / Lark (飞书) custom bot (自定义机器人): an interactive card or plain text.

Format, from Feishu's custom-bot documentation (from memory; signing checked against
public guides): POST ``https://open.feishu.cn/open-apis/bot/v2/hook/<id>`` with
``{"msg_type": "interactive", "card": …}`` or ``{"msg_type": "text", "content": {"text"}}``.
With signature verification on, the body also carries ``timestamp`` (seconds, a string)
and ``sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))``; Feishu rejects
timestamps more than an hour off. Answers ``{"code": 0, "msg": "success"}`` (older robots:
``{"StatusCode": 0}``); a non-zero ``code`` is the failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import tzinfo
from typing import Literal

import structlog

from alerts import digest
from alerts.channels._http import HttpPoster, check_code
from alerts.channels.base import Thread, render, render_fields, render_title, truncate_utf8
from alerts.channels.options import FeishuChannelConfig
from monitor.secrets import Secret, load_secret
from rules.records import DEFAULT_TZ, Alert

log = structlog.get_logger(__name__)

# code -> retry hint (s). Permanent: 9499 bad request, 19021 bad signature or stale
# timestamp, 19022 IP not allowed, 19024 keyword missing, 11246 card invalid.
RETRYABLE_CODES: dict[int, float | None] = {
    11232: 5.0,  # frequency limited: 100 a minute, 5 a second per bot
    11233: 5.0,  # the group's rate limit
    -1: None,
}

MAX_TEXT_BYTES = 15_000  # requests are capped at 20 KB (cards 30 KB)

_TEMPLATE = {"P1": "red", "P2": "orange", "P3": "yellow", "P4": "blue"}


def feishu_sign(secret: str, timestamp: str) -> str:
    """Feishu's ``sign``: the key is ``"{timestamp}\\n{secret}"`` and the message empty."""
    mac = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def feishu_card(alert: Alert, tz: tzinfo, thread: Thread | None = None) -> dict[str, object]:
    """An interactive card: coloured header by severity, facts in lark_md, text as is.

    A custom bot cannot reply in a thread: an incident's card says in its header and its
    ``事件`` line which incident and which update it is."""
    facts = "\n".join(f"**{label}**：{value}"
                      for label, value in render_fields(alert, tz, thread))
    elements: list[dict[str, object]] = [
        {"tag": "div", "text": {"tag": "lark_md", "content": facts}},
    ]
    if alert.text:
        elements += [
            {"tag": "hr"},
            # plain_text: a customer's post must not be read as markup.
            {"tag": "div", "text": {"tag": "plain_text",
                                    "content": truncate_utf8(alert.text, MAX_TEXT_BYTES)}},
        ]
    return {
        "config": {"wide_screen_mode": True},
        "header": {"title": {"tag": "plain_text", "content": render_title(alert, thread)},
                   "template": _TEMPLATE.get(alert.severity, "blue")},
        "elements": elements,
    }


class FeishuChannel:
    """Posts each alert to a Feishu / Lark group through a custom bot."""

    def __init__(self, name: str, url: Secret, *, secret: Secret | None = None,
                 msg_type: Literal["interactive", "text"] = "interactive",
                 timeout: float = 10.0, tz: tzinfo = DEFAULT_TZ,
                 wall: Callable[[], float] = time.time) -> None:
        self.name = name
        self._url = url
        self._secret = secret or Secret("")
        self._msg_type = msg_type
        self._tz = tz
        self._wall = wall  # real wall time: Feishu checks the timestamp against its clock
        self._http = HttpPoster(timeout)

    @classmethod
    def from_config(cls, cfg: FeishuChannelConfig, tz: tzinfo = DEFAULT_TZ) -> FeishuChannel:
        """Build from settings, resolving the secret refs now (fail at start-up)."""
        return cls(cfg.name, load_secret(cfg.url), secret=load_secret(cfg.secret),
                   msg_type=cfg.msg_type, timeout=cfg.timeout, tz=tz)

    def payload(self, alert: Alert, thread: Thread | None = None) -> dict[str, object]:
        """The JSON body for ``alert``, signed when a secret is set."""
        body: dict[str, object] = {}
        if self._secret:
            timestamp = str(int(self._wall()))
            body["timestamp"] = timestamp
            body["sign"] = feishu_sign(self._secret.reveal(), timestamp)
        if digest.is_digest(alert):  # a scheduled summary: its own card (or plain text)
            summary = digest.from_alert(alert)[0]
            if self._msg_type == "interactive":
                body.update(digest.feishu_payload(summary))
            else:
                body.update(msg_type="text", content={"text": truncate_utf8(
                    digest.plain_text(summary), MAX_TEXT_BYTES)})
        elif self._msg_type == "interactive":
            body.update(msg_type="interactive", card=feishu_card(alert, self._tz, thread))
        else:
            title, text = render(alert, self._tz, thread)
            body.update(msg_type="text",
                        content={"text": truncate_utf8(f"{title}\n{text}", MAX_TEXT_BYTES)})
        return body

    async def send(self, alert: Alert, thread: Thread | None = None) -> None:
        """Post ``alert``; map HTTP status and ``code`` to DeliveryError."""
        body = json.dumps(self.payload(alert, thread), ensure_ascii=False).encode()
        answer = await self._http.post(self._url.reveal(), body)
        check_code(answer, "code", message_key="msg", retryable=RETRYABLE_CODES,
                   provider="Feishu")
        log.debug("feishu.sent", channel=self.name, alert_id=alert.id)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()
