"""The PostgreSQL store passes the SQLite store's restart test, on the real server.

PostgreSQL 15 on 127.0.0.1:5432 (trust auth, database ``test``); each test uses a schema
of its own, dropped afterwards. No server: the tests fail (this machine has one).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from monitor.app import build_pipeline
from monitor.config import Config
from monitor.store import Store
from monitor.store.postgres import PgStore
from rules.records import Alert, Event
from rules.scoring import Scorer
from tests.fixtures.pg import DSN  # the `schema` fixture: tests/fixtures/pg.py

END = 1779408000.0  # after every deadline of the sample day


def life(config: Config, scorer: Scorer, store: Store, events: list[Event],
         finish: bool) -> list[Alert]:
    """One daemon life over ``store``: rebuild, handle ``events``, maybe run the clock out."""
    pipeline = build_pipeline(config, store, ["log"], scorer=scorer)
    with store.transaction():
        out = pipeline.rebuild()
    for event in events:
        with store.transaction():
            out += pipeline.handle(event, event.created_at)
    if finish:
        with store.transaction():
            out += pipeline.tick(END)
    store.close()
    return out


def signature(alerts: list[Alert]) -> list[tuple[str, str, float]]:
    return sorted((a.id, str(a.type), a.at) for a in alerts)


PG_TYPES = {"INTEGER": "bigint", "REAL": "double precision", "BLOB": "bytea", "TEXT": "text"}
"""The PostgreSQL type each SQLite column type is written as (``postgres.SCHEMA``)."""


def test_the_two_schemas_agree(schema: str) -> None:
    """Each backend has its own schema text: the same tables, columns, types (as mapped
    above) and NOT NULLs (a primary key is one there); PostgreSQL has the brand leases
    on top."""
    lite = Store(":memory:")
    want = {(t, c, PG_TYPES[ctype], bool(notnull) or pk > 0)
            for (t,) in lite.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for _cid, c, ctype, notnull, _default, pk in lite.db.execute(
                f"PRAGMA table_info({t})")}
    lite.close()
    pg = PgStore(DSN, schema)
    got = set(pg.db.execute(
        "SELECT table_name, column_name, data_type, is_nullable = 'NO' FROM "
        "information_schema.columns WHERE table_schema = ?", (schema,)))
    pg.close()
    assert len(want) > 60
    assert {r for r in got if r[0] != "leases"} == want
    assert {r[1] for r in got if r[0] == "leases"} == {"brand", "owner", "expires_at"}


def test_restarts_on_postgres_match_sqlite(config: Config, scorer: Scorer,
                                           events: list[Event], schema: str,
                                           tmp_path: Path) -> None:
    reference = life(config, scorer, Store(tmp_path / "s.db"), events, finish=True)
    sent: list[Alert] = []
    bounds = [0, 40, 150, 151, len(events)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        sent += life(config, scorer, PgStore(DSN, schema), events[a:b],
                     finish=i == len(bounds) - 2)
    assert signature(sent) == signature(reference)
    assert len({a.id for a in sent}) == len(sent)
    store = PgStore(DSN, schema)
    assert store.alert_ids() == {a.id for a in reference}
    assert [a.id for a in store.alerts()] == [a.id for a in reference]
    lite = Store(tmp_path / "s.db")
    assert store.count_events() == lite.count_events()
    assert store.last_seen() == lite.last_seen()
    assert store.delivery_counts() == lite.delivery_counts()
    lite.close()
    store.close()


def test_outbox_cursors_and_meta_on_postgres(config: Config, scorer: Scorer,
                                             events: list[Event], schema: str) -> None:
    store = PgStore(DSN, schema)
    alerts = life(config, scorer, store, events[:60], finish=False)
    assert alerts
    store = PgStore(DSN, schema)
    pending = store.pending_deliveries("log", now=END)
    assert [p.alert.id for p in pending] == [a.id for a in alerts][:len(pending)]
    first = pending[0].alert.id
    with store.transaction():
        store.mark_delivered(first, "log", END)
        store.mark_failed(pending[1].alert.id, "log", "boom", END + 60)
        store.set_cursor("src", "42")
        store.set_meta("clock", "1.5")
    assert store.get_cursor("src") == "42" and store.get_meta("clock") == "1.5"
    assert store.next_retry("log") is not None
    counts = store.delivery_counts()
    assert counts[("log", "delivered")] == 1
    with store.transaction():
        assert not store.add_event(events[0], 0.0)  # the dedupe holds across instances
    assert store.has_post(events[0].id)
    try:
        with store.transaction():
            store.set_cursor("src", "43")
            raise RuntimeError("crash mid-batch")
    except RuntimeError:
        pass
    assert store.get_cursor("src") == "42"  # rolled back whole
    store.close()


def test_brand_leases_take_over_after_ttl(schema: str) -> None:
    from monitor.lease import Leases

    a_store, b_store = PgStore(DSN, schema), PgStore(DSN, schema)
    a, b = Leases(a_store, "a", ttl=30), Leases(b_store, "b", ttl=30)
    brands = ["小满咖啡", "大熊奶茶"]
    assert a.claim(brands, now=1000) == set(brands)
    assert b.claim(brands, now=1001) == set()  # held by a
    assert a.claim(brands, now=1020) == set(brands)  # renewed to 1050
    assert b.claim(brands, now=1049) == set()
    # a dies (stops renewing): at the expiry b takes both brands, and a cannot get them back
    assert b.claim(brands, now=1050) == set(brands)
    assert a.claim(brands, now=1051) == set()
    assert a.owners() == {"小满咖啡": "b", "大熊奶茶": "b"}
    b.release()  # clean shutdown: free at once
    assert a.claim(brands, now=1052) == set(brands)
    a_store.close()
    b_store.close()
