"""The audit log: every delivery attempt and every ack or resolve, who/what/when/via.

Kept in the daemon's store (its ``audit`` table), so it survives restarts and is
read by ``GET /api/audit`` and ``crisismon audit``. Actions are keyed by their id, so
the rebuild after a restart (which replays stored actions) never logs one twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rules.records import Action

if TYPE_CHECKING:
    from monitor.store import Store

@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row: a delivery attempt (kind ``delivery``) or a responder's move (``ack``,
    ``resolve``)."""

    seq: int
    at: float
    kind: str
    alert_id: str | None
    channel: str | None
    rep: int | None
    outcome: str
    detail: str | None
    who: str | None
    via: str | None


class AuditLog:
    """Appends to and reads the audit log of a store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def delivery(self, at: float, alert_id: str, channel: str, rep: int, outcome: str,
                 detail: str = "") -> None:
        """One try of one page on one channel: ``delivered``, ``failed``, ``retrying``,
        ``silenced``, ``deferred``, ``held``, ``summarised``, ``cancelled``, ``repeat``."""
        self.store.audit_delivery(at, alert_id, channel, rep, outcome, detail[:500] or None)

    def deliveries(self, at: float, channel: str, rows: list[tuple[str, int, str, int]],
                   outcome: str) -> None:
        """Many pages of one channel with one outcome: ``(delivery id, rep, detail, the
        alert's seq or 0)`` each (a window of a batching channel)."""
        self.store.audit_deliveries([(at, did, channel, rep, outcome, detail[:500] or None, seq)
                                     for did, rep, detail, seq in rows])

    def action(self, action: Action, at: float, outcome: str = "recorded") -> None:
        """An ack or resolve, once per action id (via: its source, e.g. api, mqtt, a feed)."""
        detail = None if action.public is None else f"public={str(action.public).lower()}"
        self.store.record_action(at, str(action.action), action.target, outcome, detail,
                                 action.by, action.source or None, f"action:{action.id}")

    def entries(self, limit: int = 100, alert_id: str | None = None,
                kind: str | None = None) -> list[AuditEntry]:
        """The newest ``limit`` entries, oldest first; optionally of one alert or kind."""
        rows = self.store.audit_entries(limit, alert_id, kind)
        return [AuditEntry(*r) for r in reversed(rows)]
