"""The replay's write-behind store (monitor.store.behind): same database, same answers,
and a failed write is not lost silently."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.store import Store
from monitor.store.behind import WriteBehind
from rules.records import Alert, AlertType
from tests.factories import post

TABLES = ("events", "alerts", "deliveries", "mentions", "incidents")


def _alert(i: int) -> Alert:
    return Alert(id=f"a-{i:04d}", type=AlertType.MENTION_NEW, at=1_700_000_000.0 + i,
                 brand="快书包", level=0, severity="P2", title=f"标题 {i}",
                 text="正文\u2028含换行", post_id=str(i), recipients=("值班客服",))


def _fill(store: Store) -> None:
    for batch in range(3):
        store.begin()
        for i in range(batch * 50, batch * 50 + 50):
            assert store.add_event(post(1_700_000_000.0 + i, pid=str(i)), 1_700_000_000.0 + i)
            store.add_alerts([_alert(i)], ("duty",))
        # a repeat inside the batch, and one of an earlier (committed) batch
        assert not store.add_event(post(1_700_000_000.0, pid=str(batch * 50)), 0.0)
        if batch:
            assert not store.add_event(post(1_700_000_000.0, pid="0"), 0.0)
        store.commit()


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}
    finally:
        db.close()


def test_write_behind_store_writes_the_same_database(tmp_path: Path) -> None:
    direct = Store(tmp_path / "direct.db", exclusive=True, durable=False)
    behind = Store(tmp_path / "behind.db", exclusive=True, durable=False, write_behind=True)
    assert isinstance(behind.db, WriteBehind)
    for store in (direct, behind):
        _fill(store)
        # a read waits for every write sent before it
        assert store.count_events() == 150
        assert store.alert("a-0007") == _alert(7)
        store.close()
    got, want = _dump(tmp_path / "behind.db"), _dump(tmp_path / "direct.db")
    assert got == want
    assert len(got["alerts"]) == 150 and len(got["deliveries"]) == 150
    db = sqlite3.connect(tmp_path / "behind.db")
    assert db.execute("PRAGMA page_size").fetchone() == (16384,)
    db.close()


def test_a_failed_write_fails_the_next_read_and_close(tmp_path: Path) -> None:
    db = WriteBehind(str(tmp_path / "x.db"), ())
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    db.executemany("INSERT INTO t VALUES (?)", [("a",), ("a",)])  # sent, not waited for
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("SELECT COUNT(*) FROM t")
    with pytest.raises(sqlite3.IntegrityError):
        db.close()
    with pytest.raises(sqlite3.ProgrammingError):
        db.execute("SELECT 1")


def test_rows_answer_like_a_cursor(tmp_path: Path) -> None:
    db = WriteBehind(str(tmp_path / "y.db"), ("PRAGMA synchronous=OFF",))
    try:
        db.executescript("CREATE TABLE t (k TEXT, v BLOB, n REAL); "
                         "INSERT INTO t VALUES ('x', x'00ff', 1.5)")
        db.execute("BEGIN IMMEDIATE")
        assert db.in_transaction
        db.executemany("INSERT INTO t VALUES (?, ?, ?)", [("y", b"\x01", None)])
        db.execute("COMMIT")
        assert not db.in_transaction
        rows = db.execute("SELECT k, v, n FROM t ORDER BY k")
        assert rows.fetchone() == ("x", b"\x00\xff", 1.5)
        assert list(rows) == [("y", b"\x01", None)]
        # bound as they are (the writer registers bytes and None as their own adapters)
        assert db.execute("SELECT typeof(v), typeof(n) FROM t WHERE k = 'y'").fetchall() \
            == [("blob", "null")]
        assert db.execute("SELECT 1 WHERE 0").fetchone() is None
    finally:
        db.close()


def _indexes(db: WriteBehind) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_held_indexes_are_made_again_before_a_read_and_at_the_close(tmp_path: Path) -> None:
    path = tmp_path / "z.db"
    db = WriteBehind(str(path), ())
    db.executescript("CREATE TABLE t (k INTEGER, v TEXT); CREATE INDEX t_k ON t (k)")
    db.hold_indexes(["t_k", "no_such_index"])
    assert _indexes(db) == set()  # nothing written since: reads need no index
    db.executemany("INSERT INTO t VALUES (?, ?)", [(2, "b"), (1, "a")])
    assert _indexes(db) == {"t_k"}
    db.close()
    check = sqlite3.connect(path)
    assert check.execute("SELECT sql FROM sqlite_master WHERE name = 't_k'").fetchone() \
        == ("CREATE INDEX t_k ON t (k)",)
    check.close()


def test_held_indexes_are_made_when_asked_without_a_write(tmp_path: Path) -> None:
    db = WriteBehind(str(tmp_path / "i.db"), ())
    db.executescript("CREATE TABLE t (k INTEGER); CREATE INDEX t_k ON t (k)")
    db.hold_indexes(["t_k"])
    db.restore_indexes()  # not waited for
    assert _indexes(db) == {"t_k"}
    db.close()


def test_held_indexes_survive_a_rollback_of_the_read_that_made_them(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    db = WriteBehind(str(path), ())
    db.executescript("CREATE TABLE t (k INTEGER); CREATE INDEX t_k ON t (k)")
    db.hold_indexes(["t_k"])
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO t VALUES (?)", [(1,)])
    db.execute("ROLLBACK")  # the index, made in the transaction before it, is undone too
    assert _indexes(db) == {"t_k"}
    db.close()


def test_a_write_behind_store_leaves_every_index_of_its_schema(tmp_path: Path) -> None:
    direct = Store(tmp_path / "direct.db", exclusive=True, durable=False)
    behind = Store(tmp_path / "behind.db", exclusive=True, durable=False, write_behind=True)
    for store in (direct, behind):
        _fill(store)
        store.close()
    schemas = []
    for name in ("direct.db", "behind.db"):
        db = sqlite3.connect(tmp_path / name)
        schemas.append(sorted(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")))
        db.close()
    assert schemas[0] == schemas[1]
