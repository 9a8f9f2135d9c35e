"""Generic JSON webhook: the contract record POSTed as is, for your own systems.

The receiver gets exactly the ``alerts.jsonl`` line (INTERFACES.md section 3), with

- ``Idempotency-Key: <alert id>``: the same alert retried carries the same key, so the
  receiver can drop duplicates after a timeout that hid a success;
- optionally ``X-Crisismon-Signature: sha256=<hex>``: HMAC-SHA256 of the raw body with the
  shared secret (GitHub's scheme), so the receiver can prove the page is ours. Verify it
  over the bytes received, before parsing, with a constant-time compare;
- for a message about an incident, ``X-Crisismon-Incident: <incident id>``,
  ``X-Crisismon-Update: <n>`` (0 for the incident's first message on this channel) and,
  on updates, ``X-Crisismon-Thread-Root: <id of that first message>``, so the receiver
  can thread without keeping state of its own.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import tzinfo

import structlog

from alerts.channels._http import HttpPoster, check_http
from alerts.channels.base import Thread
from alerts.channels.options import WebhookChannelConfig
from monitor.secrets import Secret, load_secret
from rules.records import DEFAULT_TZ, Alert

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Crisismon-Signature"


def sign_body(secret: str, body: bytes) -> str:
    """The ``X-Crisismon-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel:
    """POSTs the alert's contract record as JSON."""

    def __init__(self, name: str, url: Secret, *, secret: Secret | None = None,
                 timeout: float = 10.0, tz: tzinfo = DEFAULT_TZ) -> None:
        self.name = name
        self._url = url
        self._secret = secret or Secret("")
        self._tz = tz
        self._http = HttpPoster(timeout)

    @classmethod
    def from_config(cls, cfg: WebhookChannelConfig, tz: tzinfo = DEFAULT_TZ) -> WebhookChannel:
        """Build from settings, resolving the secret refs now (fail at start-up)."""
        return cls(cfg.name, load_secret(cfg.url), secret=load_secret(cfg.secret),
                   timeout=cfg.timeout, tz=tz)

    async def send(self, alert: Alert, thread: Thread | None = None) -> None:
        """POST the record; 2xx is delivered, anything else a DeliveryError."""
        body = alert.to_json(self._tz).encode()
        headers = {"Idempotency-Key": alert.id}
        if thread is not None:
            headers["X-Crisismon-Incident"] = thread.incident_id
            headers["X-Crisismon-Update"] = str(thread.update)
            if thread.root is not None:
                headers["X-Crisismon-Thread-Root"] = thread.root.id
        if self._secret:
            headers[SIGNATURE_HEADER] = sign_body(self._secret.reveal(), body)
        answer = await self._http.post(self._url.reveal(), body, headers=headers)
        check_http(answer)
        log.debug("webhook.sent", channel=self.name, alert_id=alert.id, status=answer.status)

    async def aclose(self) -> None:
        """Close the HTTP session."""
        await self._http.aclose()
