"""The store hands the outbox the alerts it recorded lately as they are (issue 18), not
decoded again from their stored body; an alert it no longer holds (evicted, rolled back,
stored by another process) is read back from the database as before."""

from __future__ import annotations

from pathlib import Path

import pytest

import monitor.store.sqlite as sqlite_store
from monitor.store.sqlite import Store
from rules.records import Alert, AlertType


def alert(n: int) -> Alert:
    return Alert(id=f"r-{n:016x}", type=AlertType.MENTION_NEW, at=1000.0 + n, brand="b",
                 level=1, severity="P2", title=f"mention {n}", text="text", post_id=str(n))


def test_recent_alerts_handed_out_as_recorded(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    made = [alert(n) for n in range(5)]
    with store.transaction():
        store.add_alerts(made, ["log"])
    due = store.pending_deliveries("log", now=2000.0)
    assert [d.alert.id for d in due] == [a.id for a in made]
    assert all(d.alert is a for d, a in zip(due, made, strict=True))  # not decoded again
    store.close()


def test_evicted_rolled_back_and_foreign_alerts_read_from_the_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "RECENT_ALERTS", 3)
    store = Store(tmp_path / "s.db")
    made = [alert(n) for n in range(6)]
    with store.transaction():
        store.add_alerts(made, ["log"])
    # Another process (``crisismon digest --now``) stores an alert on the same file.
    other = Store(tmp_path / "s.db")
    with other.transaction():
        other.add_alerts([alert(6)], ["log"])
    other.close()
    due = store.pending_deliveries("log", now=2000.0)
    assert [d.alert for d in due] == [*made, alert(6)]  # equal, whether held or read
    assert [d.alert is a for d, a in zip(due[:6], made, strict=True)] == [False] * 3 + [True] * 3
    assert [d.seq for d in due] == list(range(1, 8))
    # Skipped deliveries (in flight) still pass over, held or not.
    skip = {(made[0].id, 0), (made[4].id, 0)}
    due = store.pending_deliveries("log", now=2000.0, skip=skip, skip_upto=5)
    assert [d.alert.id for d in due] == [a.id for a in made[1:4] + made[5:]] + [alert(6).id]
    # A rolled-back transaction leaves nothing held.
    store.begin()
    store.add_alerts([alert(7)], ["log"])
    store.rollback()
    assert store._recent == {}
    assert [d.alert for d in store.pending_deliveries("log", now=2000.0)] == [*made, alert(6)]
    # Those stored already, by either process, are not recorded again (looked up at once).
    store.begin()
    assert store.add_alerts([made[2], alert(9), alert(6), alert(9)], ["log"]) == [alert(9)]
    store.rollback()
    store.close()


def test_alerts_without_deliveries_are_not_held(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # An alert routed to no channel is never handed out: holding it would only push the
    # held pages out (the replay records every alert so, 131,722 on a mention-heavy day).
    monkeypatch.setattr(sqlite_store, "RECENT_ALERTS", 2)
    store = Store(tmp_path / "s.db")
    paged, quiet = alert(0), [alert(n) for n in range(1, 4)]
    with store.transaction():
        store.add_alerts([paged], ["log"])
        store.add_alerts(quiet)
    assert list(store._recent) == [paged.id]
    due = store.pending_deliveries("log", now=2000.0)
    assert [d.alert for d in due] == [paged] and due[0].alert is paged
    store.close()
