"""What every delivery channel is: the protocol, its typed failure, and the shared message text.

A channel does one thing: put one :class:`~rules.records.Alert` on one medium, or raise
:class:`DeliveryError` saying whether trying again later could help. Retrying, backoff and
the durable outbox are the caller's job (the outbox); a channel never sleeps or loops.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Protocol, runtime_checkable

from monitor.retry import parse_retry_after
from rules.records import DEFAULT_TZ, Alert, AlertType, Level


@dataclass(frozen=True, slots=True)
class Thread:
    """Where a message stands in its incident's thread on one channel.

    The outbox keeps one thread per (channel, incident) in the store: the first message
    about an incident that a channel delivers opens it (``update`` 0), every later one is
    update 1, 2, ... of it. A channel threads it as far as its provider allows (a mail
    reply, a Slack thread reply, an MQTT topic per incident) and otherwise says in the
    message which incident and which update it is.
    """

    incident_id: str
    update: int
    """0: this message opens the incident's thread on this channel; n: its n-th update."""
    root: Alert | None = None
    """The message that opened the thread (None while opening it)."""
    ref: str | None = None
    """The provider's handle on that first message (mail Message-ID, Slack ``ts``)."""


@runtime_checkable
class Channel(Protocol):
    """One delivery medium (a chat group, a mailbox, a broker, a terminal)."""

    name: str
    """Unique among the configured channels; the outbox keys deliveries by it."""

    async def send(self, alert: Alert, thread: Thread | None = None) -> str | None:
        """Deliver ``alert`` once; raise :class:`DeliveryError` when it was not delivered.

        Providers that dedupe get ``alert.id`` as the idempotency key, so a retry after
        an ambiguous failure (timeout after the request went out) does not double-page.
        ``thread`` is given for a message about an incident. The answer is the provider's
        handle on the message when it (re)starts the incident's thread (a mail
        ``Message-ID``, a Slack ``ts``); the outbox stores it and hands it back as
        ``thread.ref`` with the incident's later messages.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; the channel is not used afterwards."""
        ...


class DeliveryError(Exception):
    """A send that did not deliver.

    ``retryable`` is False when the same request can never succeed (bad token, bad
    signature, payload rejected): the outbox marks the delivery failed and a person
    must fix the config. ``retry_after`` is the provider's own hint in seconds (HTTP
    ``Retry-After``, or a known rate-limit window), which the outbox should honour
    over its own backoff.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (f"DeliveryError({self.message!r}, retryable={self.retryable}, "
                f"retry_after={self.retry_after})")


def status_error(status: int, detail: str, headers: Mapping[str, str] | None = None,
                 now: float | None = None) -> DeliveryError:
    """The DeliveryError for a non-2xx HTTP answer.

    5xx and 408 are the provider's trouble (retryable); 429 is retryable after the
    ``Retry-After`` it sends; any other 4xx means our request is wrong and will stay wrong.
    """
    detail = " ".join(detail.split())[:200]
    message = f"HTTP {status}" + (f": {detail}" if detail else "")
    if status == 429:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"), now)
        return DeliveryError(message, retryable=True, retry_after=retry_after)
    return DeliveryError(message, retryable=status >= 500 or status == 408)


TYPE_LABELS: dict[AlertType, str] = {
    AlertType.MENTION_NEW: "新提及",
    AlertType.REPLY_WARNING: "即将超时未回复",
    AlertType.REPLY_BREACH: "回复超时",
    AlertType.REPLY_ESCALATED: "回复严重超时（升级）",
    AlertType.REPLY_ARGUMENT: "官方回复与用户争执",
    AlertType.RESOLUTION_NOT_PUBLIC: "私下解决后未公开回应",
    AlertType.CRISIS_OPENED: "危机事件开启",
    AlertType.CRISIS_CHECKPOINT: "危机事件检查点",
    AlertType.CRISIS_ESCALATED: "危机升级（未发声明）",
    AlertType.CRISIS_CLOSED: "危机事件结束",
    AlertType.DIGEST: "舆情摘要",
}

LEVEL_LABELS: dict[int, str] = {
    Level.DUTY: "值班客服",
    Level.SUPERVISOR: "客服总监",
    Level.LEADERSHIP: "公司领导",
}


_REPEAT_ID = re.compile(r"-r\d+$")


def is_repeat(alert: Alert) -> bool:
    """True for a repeat page (its id is ``<alert id>-r<n>``, see ``alerts.outbox``)."""
    return _REPEAT_ID.search(alert.id) is not None


def type_label(alert: Alert) -> str:
    """``回复超时`` for ``reply.breach``; the raw type for anything unknown."""
    return TYPE_LABELS.get(alert.type, str(alert.type))


def level_label(level: int) -> str:
    """``L1 客服总监``: the rung number and who sits on it."""
    return f"L{level} {LEVEL_LABELS.get(level, '')}".rstrip()


def format_due(alert: Alert, tz: tzinfo = DEFAULT_TZ) -> str:
    """The due time as people read it: ``2026-05-01 09:05:00 +08:00``."""
    dt = datetime.fromtimestamp(alert.at, tz=UTC).astimezone(tz)
    offset = dt.strftime("%z")
    return dt.strftime("%Y-%m-%d %H:%M:%S ") + f"{offset[:3]}:{offset[3:]}"


def format_clock(at: float, tz: tzinfo = DEFAULT_TZ) -> str:
    """``05-01 09:05``: a short local time for cross-references inside a message."""
    return datetime.fromtimestamp(at, tz=UTC).astimezone(tz).strftime("%m-%d %H:%M")


def thread_tag(thread: Thread | None) -> str:
    """``【事件 inc-7】`` on an incident's first message, ``【事件 inc-7 · 第3条更新】`` after.

    For providers that cannot thread (chat robots): the title itself says which incident
    and which update it is, so a group reads the story in order.
    """
    if thread is None:
        return ""
    if thread.update == 0:
        return f"【事件 {thread.incident_id}】"
    return f"【事件 {thread.incident_id} · 第{thread.update}条更新】"


def thread_fact(thread: Thread, tz: tzinfo = DEFAULT_TZ) -> str:
    """The ``事件`` fact of a threaded message: the incident, the update number, and what
    the incident's first message was (so an update read alone still points to it)."""
    if thread.update == 0:
        return f"{thread.incident_id}（首条消息）"
    fact = f"{thread.incident_id}（第{thread.update}条更新"
    if thread.root is not None:
        root = thread.root
        fact += f"；首条：{type_label(root)} {format_clock(root.at, tz)} {root.id}"
    return fact + "）"


def render_fields(alert: Alert, tz: tzinfo = DEFAULT_TZ,
                  thread: Thread | None = None) -> list[tuple[str, str]]:
    """The labelled facts of an alert, in reading order; absent ones left out.

    Chat channels lay these out in their own markup; :func:`render` as plain lines.
    With ``thread``, the ``事件`` fact says which update of the incident this is.
    """
    fields = [
        ("严重度", alert.severity),
        ("品牌", alert.brand),
        ("类型", f"{type_label(alert)}（{alert.type}）"),
        ("级别", level_label(alert.level)),
        ("到期时间", format_due(alert, tz)),
    ]
    if alert.post_id:
        fields.append(("帖子", alert.post_id))
    if thread is not None:
        fields.append(("事件", thread_fact(thread, tz)))
    elif alert.incident_id:
        fields.append(("事件", alert.incident_id))
    if alert.recipients:
        fields.append(("通知", "、".join(alert.recipients)))
    fields.append(("告警编号", alert.id))
    return fields


def render_title(alert: Alert, thread: Thread | None = None) -> str:
    """One line that says how bad, whose, and what: ``[P1] 快书包 回复超时：…``; a message
    about an incident starts with its :func:`thread_tag`."""
    return (f"{thread_tag(thread)}[{alert.severity}] {alert.brand} {type_label(alert)}："
            f"{alert.title}")


def render(alert: Alert, tz: tzinfo = DEFAULT_TZ,
           thread: Thread | None = None) -> tuple[str, str]:
    """``(title, body)`` in readable Chinese plain text, shared by the chat channels.

    The body is one ``标签：值`` line per fact, a blank line, then the alert's own text.
    """
    lines = [f"{label}：{value}" for label, value in render_fields(alert, tz, thread)]
    body = "\n".join(lines)
    if alert.text:
        body += "\n\n" + alert.text
    return render_title(alert, thread), body


def truncate_utf8(text: str, max_bytes: int, marker: str = "…") -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 without splitting a character.

    Chat providers reject over-long messages outright (WeCom: 4096 bytes of markdown);
    a shortened page is better than none.
    """
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    budget = max_bytes - len(marker.encode())
    return raw[:max(0, budget)].decode(errors="ignore") + marker
