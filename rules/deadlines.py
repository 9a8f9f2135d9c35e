"""The reply rule's arithmetic, in one place: when each step of a mention falls due.

Every mention gets a public official reply within ``reply_within`` of being posted; the
engine warns at ``warn_at``, pages a breach at ``reply_within`` and escalates at
``escalate_after`` (all after ``created_at``); a private resolve owes a public follow-up
within ``public_followup_within``. The engine arms its deadlines with these functions,
the page wording quotes them, the dashboard shows them, and the replay report, the digests
and the plots count "replied in time" with :func:`in_time`, so none of them can drift
from the others.

Pure arithmetic on plain floats (epoch seconds): no clock, no I/O.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class ReplyRule(Protocol):
    """What the arithmetic needs of the reply rule (``[sla]``), in seconds."""

    @property
    def warn_at(self) -> float: ...

    @property
    def reply_within(self) -> float: ...

    @property
    def escalate_after(self) -> float: ...

    @property
    def public_followup_within(self) -> float: ...


class ReplyDeadlines(NamedTuple):
    """A mention's three reply deadlines (epoch seconds)."""

    warn_at: float
    """Remind the duty responder (``reply.warning``)."""
    due: float
    """The reply is late from here (``reply.breach``)."""
    escalate_at: float
    """Page leadership (``reply.escalated``)."""


def warn_due(created_at: float, sla: ReplyRule) -> float:
    """When the duty responder is reminded of an unanswered mention."""
    return created_at + sla.warn_at


def reply_due(created_at: float, sla: ReplyRule) -> float:
    """The reply deadline: a mention still unanswered then is breached."""
    return created_at + sla.reply_within


def escalate_due(created_at: float, sla: ReplyRule) -> float:
    """When an unanswered mention goes to leadership."""
    return created_at + sla.escalate_after


def followup_due(resolved_at: float, sla: ReplyRule) -> float:
    """When a privately resolved complaint must have had its public follow-up."""
    return resolved_at + sla.public_followup_within


def reply_deadlines(created_at: float, sla: ReplyRule) -> ReplyDeadlines:
    """All three reply deadlines of a mention posted at ``created_at``."""
    return ReplyDeadlines(warn_due(created_at, sla), reply_due(created_at, sla),
                          escalate_due(created_at, sla))


def in_time(reply_seconds: float | None, reply_within: float) -> bool:
    """Did a reply ``reply_seconds`` after the post (None: no reply) meet the rule?

    Measured as a span, not against ``reply_due``, because the records that reports
    read carry the span (``reply_seconds``); on the deadline itself is in time.
    """
    return reply_seconds is not None and reply_seconds <= reply_within
