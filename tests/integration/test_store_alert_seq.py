"""Deliveries and audit rows are found by their alert's seq, not its hashed id (issue 18):
a store from before is migrated on open, also after a migration stopped half-way, and the
outbox's reads and writes find the same rows as before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alerts.audit import AuditLog
from monitor.store.sqlite import Store
from rules.records import Alert, AlertType

OLD_TABLES = """
CREATE TABLE alerts (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, at REAL NOT NULL, type TEXT NOT NULL,
    brand TEXT NOT NULL, level INTEGER NOT NULL, severity TEXT NOT NULL, post_id TEXT,
    incident_id TEXT, body TEXT NOT NULL);
CREATE TABLE deliveries (
    alert_id TEXT NOT NULL, channel TEXT NOT NULL, rep INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0, last_error TEXT, delivered_at REAL,
    grp TEXT NOT NULL DEFAULT '', PRIMARY KEY (alert_id, channel, rep));
CREATE INDEX deliveries_pending ON deliveries (state, next_try);
CREATE INDEX deliveries_channel ON deliveries (channel, state, next_try);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, alert_id TEXT,
    channel TEXT, rep INTEGER, outcome TEXT NOT NULL, detail TEXT, who TEXT, via TEXT,
    key TEXT UNIQUE);
CREATE INDEX audit_alert ON audit (alert_id);
"""


def alert(n: int) -> Alert:
    return Alert(id=f"a-{n:016x}", type=AlertType.MENTION_NEW, at=1000.0 + n, brand="b",
                 level=1, severity="P2", title=f"mention {n}", text="text", post_id=str(n))


def old_store(path: Path) -> None:
    """A store as the code before ``alert_seq`` left it: two alerts, one delivered on
    ``log`` with a repeat pending on ``mqtt``, and their audit rows."""
    db = sqlite3.connect(path)
    db.executescript(OLD_TABLES)
    for seq, a in ((1, alert(1)), (2, alert(2))):
        db.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (a.id, seq, a.at, str(a.type), a.brand, a.level, a.severity, a.post_id,
                    None, a.to_json()))
    a1, a2 = alert(1).id, alert(2).id
    db.executemany("INSERT INTO deliveries (alert_id, channel, rep, state) VALUES (?, ?, ?, ?)",
                   [(a1, "log", 0, "delivered"), (a1, "mqtt", 0, "delivered"),
                    (a1, "mqtt", 1, "pending"), (a2, "mqtt", 0, "pending"),
                    ("a-gone", "mqtt", 0, "delivered")])  # its alert pruned
    db.executemany("INSERT INTO audit (at, kind, alert_id, channel, rep, outcome) VALUES "
                   "(?, 'delivery', ?, ?, ?, ?)",
                   [(5.0, a1, "log", 0, "delivered"), (6.0, f"{a1}-r1", "mqtt", 1, "repeat"),
                    (7.0, a2, "mqtt", 0, "retrying"), (8.0, "s-summary", "mqtt", 0,
                                                        "delivered")])
    db.commit()
    db.close()


def check_migrated(store: Store) -> None:
    a1, a2 = alert(1).id, alert(2).id
    rows = set(store.db.execute("SELECT alert_id, channel, rep, alert_seq FROM deliveries"))
    assert {(a, c, r, s) for a, c, r, s in rows if s > 0} == {
        (a1, "log", 0, 1), (a1, "mqtt", 0, 1), (a1, "mqtt", 1, 1), (a2, "mqtt", 0, 2)}
    assert len(rows) == 5  # the orphan kept (with a seq of its own)
    pending = store.pending_deliveries("mqtt", 10.0)
    assert [(p.alert.id, p.rep, p.seq) for p in pending] == [(a1, 1, 1), (a2, 0, 2)]
    assert sorted(store.delivery_channels(a1)) == ["log", "mqtt"]
    indexes = {r[0] for r in store.db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit'")}
    assert "audit_alert" not in indexes and "audit_alert_seq" in indexes
    log = AuditLog(store)
    assert [(e.alert_id, e.outcome) for e in log.entries(10, a1)] == [
        (a1, "delivered"), (f"{a1}-r1", "repeat")]
    assert [e.outcome for e in log.entries(10, a2)] == ["retrying"]
    assert [e.at for e in log.entries(10, "s-summary")] == [8.0]  # no alert: looked for
    with store.transaction():  # by seq, as the outbox's window records them
        store.mark_delivered_many("mqtt", [(a2, 0, pending[1].seq)], 9.0)
        log.deliveries(9.0, "mqtt", [(a2, 0, "", pending[1].seq)], "delivered")
        store.mark_delivered(a1, "mqtt", 9.0, rep=1)  # by id
    assert store.pending_deliveries("mqtt", 10.0) == []
    assert [e.outcome for e in log.entries(10, a2)] == ["retrying", "delivered"]


def test_a_store_from_before_alert_seq_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_store(path)
    store = Store(path)
    try:
        check_migrated(store)
    finally:
        store.close()
    again = Store(path)  # a second open changes nothing
    try:
        assert again.db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 5
    finally:
        again.close()


def test_a_migration_stopped_after_the_rename_is_finished_on_the_next_open(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_store(path)
    db = sqlite3.connect(path)  # as if killed right after moving the old table aside
    db.executescript("DROP INDEX deliveries_pending; DROP INDEX deliveries_channel; "
                     "ALTER TABLE deliveries RENAME TO deliveries_old;")
    db.close()
    store = Store(path)
    try:
        check_migrated(store)
        assert store.db.execute("SELECT name FROM sqlite_master WHERE name = 'deliveries_old'"
                                ).fetchone() is None
    finally:
        store.close()


def test_new_rows_carry_their_alerts_seq(tmp_path: Path) -> None:
    store = Store(tmp_path / "new.db")
    try:
        with store.transaction():
            store.add_alerts([alert(7), alert(8)], ("log", "mqtt"))
            store.add_repeat(alert(7).id, 1, ["mqtt"])
            store.audit_delivery(1.0, f"{alert(8).id}-r1", "mqtt", 1, "repeat", None)
        seqs = dict(store.db.execute("SELECT id, seq FROM alerts"))
        rows = set(store.db.execute("SELECT alert_id, rep, alert_seq FROM deliveries"))
        assert rows == {(alert(7).id, 0, seqs[alert(7).id]), (alert(8).id, 0, seqs[alert(8).id]),
                        (alert(7).id, 1, seqs[alert(7).id])}
        assert store.db.execute("SELECT alert_seq FROM audit").fetchall() == [
            (seqs[alert(8).id],)]
    finally:
        store.close()


def test_alerts_another_process_stored_meanwhile_are_numbered_around(tmp_path: Path) -> None:
    """``crisismon digest --now`` stores an alert in the daemon's store from a process of
    its own: the daemon's next alert must not get its seq (its delivery would be lost)."""
    daemon = Store(tmp_path / "live.db")
    other = Store(tmp_path / "live.db")
    try:
        with daemon.transaction():
            daemon.add_alerts([alert(1)], ("log",))
        other.add_alerts([alert(2)], ("log", "mail"))  # outside a transaction: one of its own
        with daemon.transaction():
            daemon.add_alerts([alert(3)], ("log", "mail"))
        seqs = [s for (s,) in daemon.db.execute("SELECT seq FROM alerts ORDER BY seq")]
        assert len(set(seqs)) == 3
        pending = {(p.alert.id, p.seq) for p in daemon.pending_deliveries("mail", 1e12)}
        assert {aid for aid, _ in pending} == {alert(2).id, alert(3).id}
        assert len(daemon.pending_deliveries("log", 1e12)) == 3
    finally:
        other.close()
        daemon.close()
