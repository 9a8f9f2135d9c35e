"""The audit log: every delivery attempt and every ack or resolve, who/what/when/via.

Kept in the daemon's SQLite store (its own table), so it survives restarts and is
read by ``GET /api/audit`` and ``crisismon audit``. Actions are keyed by their id, so
the rebuild after a restart (which replays stored actions) never logs one twice.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from rules.records import Action

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    alert_id TEXT,
    channel TEXT,
    rep INTEGER,
    outcome TEXT NOT NULL,
    detail TEXT,
    who TEXT,
    via TEXT,
    key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_alert ON audit (alert_id);
"""

COLUMNS = ("seq", "at", "kind", "alert_id", "channel", "rep", "outcome", "detail", "who", "via")


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
    """Appends to and reads the ``audit`` table of a store's connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.executescript(SCHEMA)

    def delivery(self, at: float, alert_id: str, channel: str, rep: int, outcome: str,
                 detail: str = "") -> None:
        """One try of one page on one channel: ``delivered``, ``failed``, ``retrying``,
        ``silenced``, ``deferred``, ``held``, ``summarised``, ``cancelled``, ``repeat``."""
        self.db.execute("INSERT INTO audit (at, kind, alert_id, channel, rep, outcome, detail) "
                        "VALUES (?, 'delivery', ?, ?, ?, ?, ?)",
                        (at, alert_id, channel, rep, outcome, detail[:500] or None))

    def deliveries(self, at: float, channel: str, rows: list[tuple[str, int, str]],
                   outcome: str) -> None:
        """Many pages of one channel with one outcome: ``(delivery id, rep, detail)`` each
        (a window of a batching channel)."""
        self.db.executemany("INSERT INTO audit (at, kind, alert_id, channel, rep, outcome, "
                            "detail) VALUES (?, 'delivery', ?, ?, ?, ?, ?)",
                            [(at, did, channel, rep, outcome, detail[:500] or None)
                             for did, rep, detail in rows])

    def action(self, action: Action, at: float, outcome: str = "recorded") -> None:
        """An ack or resolve, once per action id (via: its source, e.g. api, mqtt, a feed)."""
        detail = None if action.public is None else f"public={str(action.public).lower()}"
        self.db.execute("INSERT OR IGNORE INTO audit (at, kind, alert_id, outcome, detail, who, "
                        "via, key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (at, str(action.action), action.target, outcome, detail, action.by,
                         action.source or None, f"action:{action.id}"))

    def entries(self, limit: int = 100, alert_id: str | None = None,
                kind: str | None = None) -> list[AuditEntry]:
        """The newest ``limit`` entries, oldest first; optionally of one alert or kind."""
        where, args = [], []
        if alert_id:
            where.append("(alert_id = ? OR alert_id LIKE ?)")
            args += [alert_id, f"{alert_id}-r%"]
        if kind:
            where.append("kind = ?")
            args.append(kind)
        sql = f"SELECT {', '.join(COLUMNS)} FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [AuditEntry(*r) for r in reversed(rows)]
