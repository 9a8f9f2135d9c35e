"""E-mail over SMTP (aiosmtplib): one plain-text UTF-8 message per alert.

``Message-ID`` is derived from the alert id, so a retry after a lost answer produces the
same id and mail systems (and people's clients) drop the duplicate.

An incident's later messages are replies to its first page on this channel
(RFC 5322 threading): ``In-Reply-To`` and ``References`` name the first page's
``Message-ID`` and the subject is ``Re: <the first page's subject>``, so mail clients
(Thunderbird and Outlook by the headers, Gmail by headers and subject) show one
conversation per incident; the update's own subject line opens the body.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from datetime import tzinfo
from email.message import EmailMessage
from typing import Literal

import aiosmtplib
import structlog

from alerts import digest
from alerts.channels.base import DeliveryError, Thread, render, type_label
from alerts.channels.options import EmailChannelConfig
from monitor.secrets import Secret, load_secret
from rules.records import DEFAULT_TZ, Alert

log = structlog.get_logger(__name__)


def message_id(alert: Alert, sender: str) -> str:
    """``<a-1f2e…@example.com>``: stable per alert, in the sender's domain."""
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "crisismon.invalid"
    return f"<{alert.id}@{domain}>"


def subject(alert: Alert) -> str:
    """``[P1] 快书包 reply.breach 回复超时：<title>``: sortable by severity, greppable by type."""
    return f"[{alert.severity}] {alert.brand} {alert.type} {type_label(alert)}：{alert.title}"


class EmailChannel:
    """Sends each alert as a plain-text mail through one SMTP server."""

    def __init__(self, name: str, *, sender: str, to: tuple[str, ...], host: str = "localhost",
                 port: int = 587, tls: Literal["starttls", "tls", "none"] = "starttls",
                 username: str = "", password: Secret | None = None, timeout: float = 30.0,
                 tz: tzinfo = DEFAULT_TZ, wall: Callable[[], float] = time.time) -> None:
        self.name = name
        self._sender = sender
        self._to = to
        self._host = host
        self._port = port
        self._tls = tls
        self._username = username
        self._password = password or Secret("")
        self._timeout = timeout
        self._tz = tz
        self._wall = wall  # the Date header is when the mail is written, in real time

    @classmethod
    def from_config(cls, cfg: EmailChannelConfig, tz: tzinfo = DEFAULT_TZ) -> EmailChannel:
        """Build from settings, resolving the password ref now (fail at start-up)."""
        return cls(cfg.name, sender=cfg.sender, to=cfg.to, host=cfg.host, port=cfg.port,
                   tls=cfg.tls, username=cfg.username, password=load_secret(cfg.password),
                   timeout=cfg.timeout, tz=tz)

    def message(self, alert: Alert, thread: Thread | None = None) -> EmailMessage:
        """The mail for ``alert``; a reply to the incident's first page when ``thread``
        says it is an update."""
        if digest.is_digest(alert):
            return self.digest_message(alert)
        _, body = render(alert, self._tz, thread)
        msg = EmailMessage()
        root = thread.root if thread is not None and thread.update > 0 else None
        if thread is not None and root is not None:
            parent = thread.ref or message_id(root, self._sender)
            msg["Subject"] = f"Re: {subject(root)}"
            msg["In-Reply-To"] = parent
            msg["References"] = parent
            body = f"{subject(alert)}\n\n{body}"
        else:
            msg["Subject"] = subject(alert)
        msg["From"] = self._sender
        msg["To"] = ", ".join(self._to)
        msg["Date"] = email.utils.formatdate(self._wall(), localtime=False)
        msg["Message-ID"] = message_id(alert, self._sender)
        msg["X-Crisismon-Alert-Id"] = alert.id
        if thread is not None:
            msg["X-Crisismon-Incident"] = thread.incident_id
            msg["X-Crisismon-Update"] = str(thread.update)
        # Urgent-looking pages for the worst severities (Outlook, Thunderbird honour these).
        if alert.severity in ("P1", "P2"):
            msg["X-Priority"] = "1"
            msg["Importance"] = "high"
        msg.set_content(body + "\n\n-- \ncrisismon\n", charset="utf-8")
        return msg

    def digest_message(self, alert: Alert) -> EmailMessage:
        """A digest: HTML with its plots inline (``cid:``), and a plain-text part."""
        summary, plots = digest.from_alert(alert)
        msg = EmailMessage()
        msg["Subject"] = digest.title(summary)
        msg["From"] = self._sender
        msg["To"] = ", ".join(self._to)
        msg["Date"] = email.utils.formatdate(self._wall(), localtime=False)
        msg["Message-ID"] = message_id(alert, self._sender)
        msg["X-Crisismon-Alert-Id"] = alert.id
        msg["X-Crisismon-Digest"] = summary.name
        msg.set_content(digest.plain_text(summary) + "\n-- \ncrisismon\n", charset="utf-8")
        domain = message_id(alert, self._sender)[1:-1].partition("@")[2]
        cids = {name: f"{name}.{alert.id}@{domain}" for name in plots}
        msg.add_alternative(digest.html_page(summary, plots, lambda n: f"cid:{cids[n]}"),
                            subtype="html", charset="utf-8")
        page = list(msg.iter_parts())[1]  # the html alternative
        for name, png in plots.items():
            page.add_related(png, "image", "png", cid=f"<{cids[name]}>",
                             filename=f"{name}.png")
        return msg

    async def send(self, alert: Alert, thread: Thread | None = None) -> str | None:
        """Submit the mail; SMTP 4xx and connection trouble are retryable, 5xx not.

        Returns the ``Message-ID`` when the mail opens an incident's thread (its later
        mails reply to it)."""
        msg = self.message(alert, thread)
        try:
            refused, _ = await aiosmtplib.send(
                msg, hostname=self._host, port=self._port, timeout=self._timeout,
                use_tls=self._tls == "tls", start_tls=self._tls == "starttls",
                username=self._username or None,
                password=self._password.reveal() if self._username else None)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise DeliveryError(f"SMTP: all recipients refused ({codes})",
                                retryable=all(400 <= c < 500 for c in codes)) from None
        except aiosmtplib.SMTPResponseException as exc:
            # Covers auth failures (535), sender refused, data refused: 4xx is transient.
            raise DeliveryError(f"SMTP {exc.code}: {exc.message[:200]}",
                                retryable=400 <= exc.code < 500) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # Connect/timeout/disconnect/TLS handshake: nothing was accepted, try again.
            raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}", retryable=True) from None
        if refused:
            # Some recipients accepted: delivered; the others will not take a retry either.
            log.warning("email.recipients_refused", channel=self.name, alert_id=alert.id,
                        refused=sorted(refused))
        log.debug("email.sent", channel=self.name, alert_id=alert.id)
        return str(msg["Message-ID"]) if thread is not None and thread.update == 0 else None

    async def aclose(self) -> None:
        """Nothing held: one SMTP connection per mail (pages are rare; no idle sockets)."""
