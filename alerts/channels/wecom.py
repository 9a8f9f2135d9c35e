"""WeCom (企业微信) group robot (群机器人), markdown messages.

Format, from WeCom's group-robot documentation (from memory; checked against public
guides): POST ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`` with
``{"msgtype": "markdown", "markdown": {"content": …}}``; content at most 4096 bytes of
UTF-8; ``<font color="warning|info|comment">`` and ``<@userid>`` mentions are allowed.
Answers HTTP 200 ``{"errcode": 0, "errmsg": "ok"}``; non-zero ``errcode`` is the failure.
The ``key`` in the URL is the only credential.
"""

from __future__ import annotations

import json
from datetime import tzinfo

import structlog

from alerts import digest
from alerts.channels._http import HttpPoster, check_code
from alerts.channels.base import Thread, render_fields, render_title, truncate_utf8
from alerts.channels.options import WeComChannelConfig
from monitor.secrets import Secret, load_secret
from rules.records import DEFAULT_TZ, Alert

log = structlog.get_logger(__name__)

# errcode -> retry hint (s). Permanent: 93000 invalid webhook key, 40008 bad msgtype,
# 44004 empty content, 40058 bad parameter, 45002 content too long.
RETRYABLE_CODES: dict[int, float | None] = {
    -1: None,  # system busy
    45009: 60.0,  # api freq out of limit: 20 messages a minute per robot
    45033: 5.0,  # too many concurrent calls
}

MAX_CONTENT_BYTES = 4096

_SEVERITY_COLOUR = {"P1": "warning", "P2": "warning", "P3": "comment", "P4": "comment"}


def wecom_markdown(alert: Alert, tz: tzinfo, mention: tuple[str, ...] = (),
                   thread: Thread | None = None) -> str:
    """The markdown ``content``, cut to WeCom's 4096-byte limit. A robot cannot thread:
    an incident's message says which incident and which update it is."""
    colour = _SEVERITY_COLOUR.get(alert.severity, "comment")
    lines = [f"### {render_title(alert, thread)}"]
    for label, value in render_fields(alert, tz, thread):
        if label == "严重度":
            value = f'<font color="{colour}">{value}</font>'
        lines.append(f"> **{label}**：{value}")
    if alert.text:
        lines += ["", alert.text]
    if mention:
        lines += ["", " ".join(f"<@{m}>" for m in mention)]
    # The mentions are at the end; keep them when cutting the text.
    tail = "\n".join(lines[-2:]) if mention else ""
    head = "\n".join(lines[:-2]) if mention else "\n".join(lines)
    budget = MAX_CONTENT_BYTES - len(tail.encode()) - 1
    return truncate_utf8(head, budget) + ("\n" + tail if tail else "")


class WeComChannel:
    """Posts each alert to a WeCom group through a group robot."""

    def __init__(self, name: str, url: Secret, *, mention: tuple[str, ...] = (),
                 timeout: float = 10.0, tz: tzinfo = DEFAULT_TZ) -> None:
        self.name = name
        self._url = url
        self._mention = mention
        self._tz = tz
        self._http = HttpPoster(timeout)

    @classmethod
    def from_config(cls, cfg: WeComChannelConfig, tz: tzinfo = DEFAULT_TZ) -> WeComChannel:
        """Build from settings, resolving the URL ref now (fail at start-up)."""
        return cls(cfg.name, load_secret(cfg.url), mention=cfg.mention, timeout=cfg.timeout,
                   tz=tz)

    def payload(self, alert: Alert, thread: Thread | None = None) -> dict[str, object]:
        """The JSON body for ``alert``."""
        if digest.is_digest(alert):  # a scheduled summary, within the 4096 bytes
            return digest.wecom_payload(digest.from_alert(alert)[0])
        return {"msgtype": "markdown",
                "markdown": {"content": wecom_markdown(alert, self._tz, self._mention, thread)}}

    async def send(self, alert: Alert, thread: Thread | None = None) -> None:
        """Post ``alert``; map HTTP status and ``errcode`` to DeliveryError."""
        body = json.dumps(self.payload(alert, thread), ensure_ascii=False).encode()
        answer = await self._http.post(self._url.reveal(), body)
        check_code(answer, "errcode", message_key="errmsg", retryable=RETRYABLE_CODES,
                   provider="WeCom")
        log.debug("wecom.sent", channel=self.name, alert_id=alert.id)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()
