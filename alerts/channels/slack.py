"""Slack, in one of two modes: an incoming webhook, or a bot posting with ``chat.postMessage``.

Incoming webhook (``url``), from Slack's documentation (from memory): POST JSON to
``https://hooks.slack.com/services/T…/B…/…``; success is HTTP 200 with the plain body
``ok``; errors are 4xx with a plain reason (``invalid_payload``, ``no_service``,
``channel_is_archived``, ``action_prohibited``), 429 with ``Retry-After`` when rate
limited (about one message a second), 5xx (``rollup_error``) on Slack's side. A webhook
cannot reply in a thread, so an incident's messages say which incident and which update
they are, like the chat robots.

Bot (``token`` + ``channel``), the Web API method ``chat.postMessage`` (checked against a
published copy of Slack's method reference): POST ``{api_url}/chat.postMessage`` with
``Authorization: Bearer xoxb-…`` (scope ``chat:write``) and a JSON body
``{"channel", "text", "blocks", "thread_ts"?, "reply_broadcast"?}``. The answer is
HTTP 200 ``{"ok": true, "channel": …, "ts": "1503435956.000247"}`` or
``{"ok": false, "error": "invalid_auth" | "channel_not_found" | "not_in_channel" | …}``;
rate limits are HTTP 429 with ``Retry-After``. The ``ts`` of an incident's first message
is kept in the store by the outbox; the incident's later messages are posted with
``thread_ts`` set to it, so the channel shows one message per incident with its updates
threaded below (those of ``broadcast`` severities, and every repeat, also shown in the
channel).
"""

from __future__ import annotations

import json
from datetime import tzinfo

import structlog

from alerts import digest
from alerts.channels._http import HttpPoster, check_http
from alerts.channels.base import (
    DeliveryError,
    Thread,
    is_repeat,
    render,
    render_fields,
    render_title,
)
from alerts.channels.options import SlackChannelConfig
from monitor.secrets import Secret, load_secret
from rules.records import DEFAULT_TZ, Alert

log = structlog.get_logger(__name__)


# Errors worth another try (Slack's side or its rate limit); every other error means our
# request or our token is wrong and stays wrong until someone fixes the config.
RETRYABLE_ERRORS: dict[str, float | None] = {
    "ratelimited": 60.0,
    "rate_limited": 60.0,
    "internal_error": None,
    "fatal_error": None,
    "service_unavailable": None,
    "request_timeout": None,
    "team_added_to_org": 60.0,
}

# The thread's first message is gone (deleted by someone): start the thread again.
# Defensive: the method reference lists none of these for chat.postMessage (they are the
# thread errors of the reading methods); if Slack answers so, we do not lose the page.
LOST_THREAD_ERRORS = frozenset({"thread_not_found", "invalid_thread_ts", "message_not_found"})


class SlackApiError(DeliveryError):
    """A Web API answer ``{"ok": false, "error": code}``."""

    def __init__(self, code: str) -> None:
        retry = code in RETRYABLE_ERRORS
        super().__init__(f"Slack: {code}", retryable=retry,
                         retry_after=RETRYABLE_ERRORS.get(code))
        self.code = code


def mrkdwn_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn reserves (``& < >``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert, tz: tzinfo, thread: Thread | None = None) -> dict[str, object]:
    """``text`` for notifications and old clients, ``blocks`` for the readable card."""
    if digest.is_digest(alert):  # a scheduled summary, in blocks of its own
        return digest.slack_payload(digest.from_alert(alert)[0])
    title, body = render(alert, tz, thread)
    fields = [{"type": "mrkdwn", "text": f"*{label}*\n{mrkdwn_escape(value)}"[:2000]}
              for label, value in render_fields(alert, tz, thread)][:10]  # Slack allows 10
    blocks: list[dict[str, object]] = [
        {"type": "header",
         "text": {"type": "plain_text", "text": render_title(alert, thread)[:150],
                  "emoji": True}},
        {"type": "section", "fields": fields},
    ]
    if alert.text:
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": mrkdwn_escape(alert.text)[:3000]}})
    return {"text": mrkdwn_escape(f"{title}\n{body}")[:3000], "blocks": blocks}


class SlackChannel:
    """Posts each alert through a Slack incoming webhook, or as a bot (threads)."""

    def __init__(self, name: str, url: Secret | None = None, *, token: Secret | None = None,
                 channel: str = "", api_url: str = "https://slack.com/api",
                 broadcast: tuple[str, ...] = ("P1", "P2"), timeout: float = 10.0,
                 tz: tzinfo = DEFAULT_TZ) -> None:
        if bool(url) == bool(token):
            raise ValueError("SlackChannel needs either url (webhook) or token (bot)")
        self.name = name
        self._url = url or Secret("")
        self._token = token or Secret("")
        self._channel = channel
        self._api = api_url.rstrip("/")
        self._broadcast = frozenset(broadcast)
        self._tz = tz
        self._http = HttpPoster(timeout)

    @classmethod
    def from_config(cls, cfg: SlackChannelConfig, tz: tzinfo = DEFAULT_TZ) -> SlackChannel:
        """Build from settings, resolving the URL or token ref now (fail at start-up)."""
        if cfg.token:
            return cls(cfg.name, token=load_secret(cfg.token), channel=cfg.channel,
                       api_url=cfg.api_url, broadcast=cfg.broadcast, timeout=cfg.timeout,
                       tz=tz)
        return cls(cfg.name, load_secret(cfg.url), timeout=cfg.timeout, tz=tz)

    @property
    def threads(self) -> bool:
        """True in bot mode: an incident's updates are replies in its thread."""
        return bool(self._token)

    async def send(self, alert: Alert, thread: Thread | None = None) -> str | None:
        """Post ``alert``; in bot mode return the ``ts`` of a message that (re)starts an
        incident's thread. 429 honours ``Retry-After``."""
        if self._token:
            return await self._post_message(alert, thread)
        body = json.dumps(slack_payload(alert, self._tz, thread), ensure_ascii=False).encode()
        answer = await self._http.post(self._url.reveal(), body)
        check_http(answer)
        if answer.text.strip() != "ok":
            # A 200 that is not Slack's "ok": a proxy page or a wrong URL; worth a retry.
            raise DeliveryError(f"Slack: unexpected answer {answer.text[:100]!r}",
                                retryable=True)
        log.debug("slack.sent", channel=self.name, alert_id=alert.id)
        return None

    async def _post_message(self, alert: Alert, thread: Thread | None) -> str | None:
        payload: dict[str, object] = {"channel": self._channel, "unfurl_links": False,
                                      **slack_payload(alert, self._tz, thread)}
        # An update without a stored ts (its first message went out before the bot mode)
        # is posted on its own and starts the thread.
        thread_ts = thread.ref if thread is not None and thread.update > 0 else None
        reply = thread_ts is not None
        if reply:
            payload["thread_ts"] = thread_ts
            payload["reply_broadcast"] = alert.severity in self._broadcast or is_repeat(alert)
        try:
            ts = await self._call("chat.postMessage", payload)
        except SlackApiError as exc:
            if not (reply and exc.code in LOST_THREAD_ERRORS):
                raise
            # The incident's first message was deleted: this one starts its thread anew.
            log.warning("slack.thread_lost", channel=self.name, alert_id=alert.id)
            payload.pop("thread_ts")
            payload.pop("reply_broadcast")
            ts = await self._call("chat.postMessage", payload)
            reply = False
        log.debug("slack.posted", channel=self.name, alert_id=alert.id, ts=ts,
                  thread_ts=payload.get("thread_ts"))
        # Only a message that starts a thread is worth remembering.
        return ts if thread is not None and not reply else None

    async def _call(self, method: str, payload: dict[str, object]) -> str:
        """One Web API call; the ``ts`` of the message posted. Raises DeliveryError."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        answer = await self._http.post(f"{self._api}/{method}", body, headers={
            "Authorization": f"Bearer {self._token.reveal()}"})
        check_http(answer)
        data = answer.json()
        if not isinstance(data, dict):
            raise DeliveryError(f"Slack: unexpected answer {answer.text[:100]!r}",
                                retryable=True)
        if data.get("ok") is True:
            ts = data.get("ts")
            if not isinstance(ts, str) or not ts:
                raise DeliveryError("Slack: answer without ts", retryable=True)
            return ts
        raise SlackApiError(str(data.get("error") or "unknown_error"))

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()
