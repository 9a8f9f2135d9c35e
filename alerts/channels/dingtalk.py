"""DingTalk (钉钉) custom group robot (自定义机器人), markdown messages, optional 加签 signing.

Format, from DingTalk's robot documentation (from memory; checked against public guides):
POST ``https://oapi.dingtalk.com/robot/send?access_token=…`` with
``{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles", "isAtAll"}}``.
With signing on, ``timestamp`` (ms) and ``sign`` go in the query string, where
``sign = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")))``;
DingTalk rejects timestamps more than an hour off. It always answers HTTP 200 with
``{"errcode": 0, "errmsg": "ok"}``; a non-zero ``errcode`` is the failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Callable
from datetime import tzinfo

import structlog
from yarl import URL

from alerts import digest
from alerts.channels._http import HttpPoster, check_code
from alerts.channels.base import Thread, render_fields, render_title, truncate_utf8
from alerts.channels.options import DingTalkChannelConfig
from monitor.secrets import Secret, load_secret
from rules.records import DEFAULT_TZ, Alert

log = structlog.get_logger(__name__)

# errcode -> retry hint (s). Everything else is permanent: 310000 keyword/sign/IP
# mismatch, 300001 / 400101 bad token, 400013 group dissolved, 43xxxx content refused.
RETRYABLE_CODES: dict[int, float | None] = {
    -1: None,  # 系统繁忙
    130101: 60.0,  # send too fast: 20 messages a minute per robot
    410100: 60.0,  # 发送速度太快而限流
    90018: 60.0,  # 调用频率超限
}

MAX_TEXT_BYTES = 18_000  # DingTalk caps a message at about 20000 bytes


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's ``sign`` before URL encoding: base64 HMAC-SHA256 of ``"{ts}\\n{secret}"``."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def signed_url(url: str, secret: str, timestamp_ms: int) -> URL:
    """``url`` with ``&timestamp=…&sign=…`` appended, the signature percent-encoded once."""
    sign = urllib.parse.quote_plus(dingtalk_sign(secret, timestamp_ms))
    sep = "&" if "?" in url else "?"
    # encoded=True: the string is final; letting yarl re-encode risks a double-encoded sign.
    return URL(f"{url}{sep}timestamp={timestamp_ms}&sign={sign}", encoded=True)


def dingtalk_markdown(alert: Alert, tz: tzinfo, at_mobiles: tuple[str, ...] = (),
                      thread: Thread | None = None) -> str:
    """The markdown ``text``: heading, one bold-labelled line per fact, the text quoted.

    A robot cannot thread: an incident's message says in its heading and its ``事件``
    line which incident and which update it is."""
    # DingTalk's markdown needs a blank line to break a line.
    lines = [f"#### {render_title(alert, thread)}"]
    lines += [f"**{label}**：{value}" for label, value in render_fields(alert, tz, thread)]
    if alert.text:
        lines.append("\n".join(f"> {line}" for line in alert.text.splitlines()))
    if at_mobiles:
        # An @ only notifies when the number also appears in the text.
        lines.append(" ".join(f"@{m}" for m in at_mobiles))
    return truncate_utf8("\n\n".join(lines), MAX_TEXT_BYTES)


class DingTalkChannel:
    """Posts each alert to a DingTalk group through a custom robot."""

    def __init__(self, name: str, url: Secret, *, secret: Secret | None = None,
                 at_mobiles: tuple[str, ...] = (), at_all: bool = False, timeout: float = 10.0,
                 tz: tzinfo = DEFAULT_TZ, wall: Callable[[], float] = time.time) -> None:
        self.name = name
        self._url = url
        self._secret = secret or Secret("")
        self._at_mobiles = at_mobiles
        self._at_all = at_all
        self._tz = tz
        # The signature must carry real wall time (DingTalk checks it against its own
        # clock), whatever clock drives the engine; injectable for tests.
        self._wall = wall
        self._http = HttpPoster(timeout)

    @classmethod
    def from_config(cls, cfg: DingTalkChannelConfig, tz: tzinfo = DEFAULT_TZ) -> DingTalkChannel:
        """Build from settings, resolving the secret refs now (fail at start-up)."""
        return cls(cfg.name, load_secret(cfg.url), secret=load_secret(cfg.secret),
                   at_mobiles=cfg.at_mobiles, at_all=cfg.at_all, timeout=cfg.timeout, tz=tz)

    def payload(self, alert: Alert, thread: Thread | None = None) -> dict[str, object]:
        """The JSON body for ``alert``."""
        if digest.is_digest(alert):  # a scheduled summary: its own markdown, same limits
            return digest.dingtalk_payload(digest.from_alert(alert)[0])
        return {
            "msgtype": "markdown",
            "markdown": {
                "title": render_title(alert, thread)[:60],  # the preview in the chat list
                "text": dingtalk_markdown(alert, self._tz, self._at_mobiles, thread),
            },
            "at": {"atMobiles": list(self._at_mobiles), "isAtAll": self._at_all},
        }

    async def send(self, alert: Alert, thread: Thread | None = None) -> None:
        """Post ``alert``; map HTTP status and ``errcode`` to DeliveryError."""
        body = json.dumps(self.payload(alert, thread), ensure_ascii=False).encode()
        url: str | URL = self._url.reveal()
        if self._secret:
            url = signed_url(self._url.reveal(), self._secret.reveal(), int(self._wall() * 1000))
        answer = await self._http.post(url, body)
        check_code(answer, "errcode", message_key="errmsg", retryable=RETRYABLE_CODES,
                   provider="DingTalk")
        log.debug("dingtalk.sent", channel=self.name, alert_id=alert.id)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()
