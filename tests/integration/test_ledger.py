"""The outbox's durable memory (incident threads, rate-limit send times) on both stores.

SQLite in a temporary file and PostgreSQL 15 on 127.0.0.1:5432 (trust auth, database
``test``, a schema of its own per test, dropped afterwards; no server: the test fails).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alerts.channels.base import Thread
from alerts.ledger import SendLog, ThreadBook
from monitor.store import Store
from monitor.store.postgres import PgStore, drop_schema
from rules.records import Alert, AlertType
from tests.integration.test_store_pg import DSN


def _alert(aid: str, kind: AlertType) -> Alert:
    return Alert(id=aid, type=kind, at=1779242400.0, brand="快书包", level=2, severity="P1",
                 title="危机", text="x", incident_id="inc-1")


@pytest.fixture(params=["sqlite", "postgres"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens the same store again, as a restarted daemon does."""
    if request.param == "sqlite":
        yield lambda: Store(tmp_path / "s.db")
        return
    schema = f"t_{secrets.token_hex(6)}"
    yield lambda: PgStore(DSN, schema)
    drop_schema(DSN, schema)


def test_threads_and_send_times_survive_a_restart(reopen: Callable[[], Store]) -> None:
    opened = _alert("a-1", AlertType.CRISIS_OPENED)
    update = _alert("a-2", AlertType.CRISIS_CHECKPOINT)
    store = reopen()
    book, sends = ThreadBook(store), SendLog(store)
    first = book.get("slack", "inc-1")
    assert first == Thread("inc-1", 0)
    book.delivered("slack", first, opened, "1779242400.000100", 10.0)
    for t in (10.0, 20.0, 30.0):
        sends.add("dingtalk", t, t - 60)
    store.close()

    store = reopen()
    book, sends = ThreadBook(store), SendLog(store)
    second = book.get("slack", "inc-1")
    assert (second.update, second.root, second.ref) == (1, opened, "1779242400.000100")
    assert book.get("mail", "inc-1") == Thread("inc-1", 0)  # threads are per channel
    book.delivered("slack", second, update, None, 20.0)
    assert book.get("slack", "inc-1").update == 2
    book.delivered("slack", book.get("slack", "inc-1"), update, "1779242999.000200", 30.0)
    third = book.get("slack", "inc-1")  # a new ref: the thread starts again under it
    assert (third.update, third.root, third.ref) == (3, update, "1779242999.000200")
    assert sends.times("dingtalk", 15.0) == [20.0, 30.0]
    sends.add("dingtalk", 85.0, 25.0)  # what no window can hold any more is dropped
    assert sends.times("dingtalk", 0.0) == [30.0, 85.0]
    store.close()


def test_a_window_of_deliveries_leaves_the_threads_as_one_by_one(
        reopen: Callable[[], Store]) -> None:
    """``delivered_many`` (one statement for the counts) ends where ``delivered`` for each
    page in order ends, also when a thread's last page restarts it (a new ref) after a
    count."""
    pages = [_alert(f"a-{n}", AlertType.CRISIS_CHECKPOINT) for n in range(6)]

    def window(book: ThreadBook, refs: list[tuple[str, str | None]]) -> list[
            tuple[Thread, Alert, str | None]]:
        # The threads as the outbox sees them for a window: each page one update on.
        got: list[tuple[Thread, Alert, str | None]] = []
        updates: dict[str, int] = {}
        for (incident, ref), page in zip(refs, pages, strict=False):
            n = updates.get(incident, book.get("slack", incident).update)
            got.append((Thread(incident, n), page, ref))
            updates[incident] = n + 1
        return got

    refs = [("inc-1", None), ("inc-2", None), ("inc-1", None), ("inc-2", None),
            ("inc-1", "r-2"), ("inc-2", None)]
    store = reopen()
    book = ThreadBook(store)
    one_by_one = window(book, refs)
    for thread, page, ref in one_by_one:
        book.delivered("slack", thread, page, ref, 10.0)
    expected = {i: book.get("slack", i) for i in ("inc-1", "inc-2")}
    book.delivered_many("mail", [(Thread(t.incident_id, t.update), p, r)
                                 for t, p, r in one_by_one], 10.0)
    assert {i: book.get("mail", i) for i in ("inc-1", "inc-2")} == expected
    assert (expected["inc-1"].update, expected["inc-1"].ref) == (3, "r-2")
    assert expected["inc-2"].update == 3
    store.close()
