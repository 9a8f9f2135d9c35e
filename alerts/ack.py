"""What an ack or an answer means for paging: is an alert's subject settled?

An ack stops repeat pages; it never stops the reply clock (only a public reply does,
which also settles the page). Read from the engine's state, which the events rebuild
after a restart, so a repeat schedule resumes correctly.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rules.records import Alert, AlertType

if TYPE_CHECKING:  # only a type here; importing the engine would make a cycle with config
    from rules.engine import EscalationEngine

_REPEAT = re.compile(r"^(a-[0-9a-f]+)-r\d+$")
REPLY_TYPES = frozenset({AlertType.REPLY_WARNING, AlertType.REPLY_BREACH,
                         AlertType.REPLY_ESCALATED, AlertType.MENTION_NEW})


def base_alert_id(delivery_id: str) -> str:
    """``a-…-r2`` (a repeat's idempotency key) -> ``a-…``, the alert it repeats."""
    m = _REPEAT.match(delivery_id)
    return m.group(1) if m else delivery_id


def repeat_id(alert_id: str, rep: int) -> str:
    """The idempotency key of repeat ``rep`` (0: the page itself)."""
    return alert_id if rep == 0 else f"{alert_id}-r{rep}"


def is_settled(engine: EscalationEngine, alert: Alert) -> bool:
    """True when nobody needs paging about ``alert`` again (acked, answered, closed)."""
    subject = engine.subject_of(alert)
    if subject is None:
        return True  # unknown to the engine: nothing to chase
    inc = engine.incidents.get(subject)
    if inc is not None:
        return bool(inc.acked_by or inc.resolved_by) or not inc.is_open
    clock = engine.clocks.get(subject)
    if clock is None:
        return True
    if clock.acked_by:
        return True
    if alert.type in REPLY_TYPES:
        return not clock.is_open
    if alert.type is AlertType.RESOLUTION_NOT_PUBLIC:
        pr, last = clock.private_resolve_at, clock.last_public_reply_at
        return pr is None or (last is not None and last >= pr)
    return False  # reply.argument: only an ack settles it
