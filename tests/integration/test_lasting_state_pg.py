"""Snapshots, stored decisions and retention on the PostgreSQL store (the real server).

The same behaviour as tests/component/test_lasting_state.py, over ``PgStore``: a restart
after a crash starts from the engine snapshot, feeds only the events stored after it, as
decided then (a new keyword and a shorter ``warn_at`` change nothing about them), and the
retention deletes old events, mentions and delivered alerts in chunks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from monitor.app import build_pipeline
from monitor.config import Config
from monitor.store import Store
from monitor.store_pg import PgStore
from rules.records import Alert, Event
from rules.scoring import Scorer
from tests.fixtures.pg import DSN  # the `schema` fixture: tests/fixtures/pg.py

DAY = 86_400.0
TABLES = ("events", "mentions", "alerts", "deliveries")


def changed(config: Config) -> Config:
    brand = config.brands[0]
    brand = dataclasses.replace(brand, keywords=(*brand.keywords, "美食博主阿杰"))
    return dataclasses.replace(config, sla=dataclasses.replace(config.sla, warn_at=120.0),
                               brands=(brand, *config.brands[1:]))


def play(config: Config, scorer: Scorer, store: Store, events: list[Event],
         snapshot_at: int | None = None) -> list[Alert]:
    pipeline = build_pipeline(config, store, ["log"], scorer=scorer)
    with store.transaction():
        out = pipeline.rebuild()
    for i, event in enumerate(events):
        with store.transaction():
            out += pipeline.handle(event, event.created_at)
            if i == snapshot_at:
                pipeline.snapshot(event.created_at)
    return out


def test_restart_from_snapshot_feeds_the_rest_as_decided(
        config: Config, scorer: Scorer, events: list[Event], schema: str,
        tmp_path: Path) -> None:
    half = len(events) // 2
    store = PgStore(DSN, schema)
    play(config, scorer, store, events, snapshot_at=half)
    store.close()  # a crash: no snapshot at the end
    store = PgStore(DSN, schema)
    again = build_pipeline(changed(config), store, ["log"], scorer=scorer)
    with store.transaction():
        assert again.rebuild() == []
        tail = again.tick(events[-1].created_at + 2 * DAY)
    assert again.restored_from > 0 and again.replayed == len(events) - half - 1
    store.close()
    ref_store = Store(tmp_path / "ref.db")
    ref = build_pipeline(config, ref_store, ["log"], scorer=scorer)
    for event in events:
        with ref_store.transaction():
            ref.handle(event, event.created_at)
    with ref_store.transaction():
        ref_tail = ref.tick(events[-1].created_at + 2 * DAY)
    assert sorted(again.engine.clocks) == sorted(ref.engine.clocks)
    assert [a.to_json() for a in tail] == [a.to_json() for a in ref_tail]
    ref_store.close()


def test_retention_prunes_old_rows_in_chunks(
        config: Config, scorer: Scorer, events: list[Event], schema: str) -> None:
    store = PgStore(DSN, schema)
    play(config, scorer, store, events)
    with store.transaction():
        store.db.execute("UPDATE deliveries SET state = 'delivered'")
        pipeline = build_pipeline(config, store, ["log"], scorer=scorer)
        pipeline.rebuild()
        pipeline.snapshot(events[-1].created_at)
    before = {t: store.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert all(before.values()), before
    cutoff = events[len(events) // 2].created_at
    chunks = 0
    after_at = [(float("-inf"), "")]

    def alerts() -> tuple[int, int]:
        seen, deleted, after_at[0] = store.prune_alerts(cutoff, 50, after_at[0])
        return seen, deleted

    for prune in (lambda: store.prune_events(cutoff, 50),
                  lambda: store.prune_mentions(cutoff, 50, []), alerts):
        while True:
            with store.transaction():
                seen, _ = prune()
            chunks += 1
            if seen < 50:
                break
    after = {t: store.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert chunks > 3
    assert 0 < after["events"] < before["events"]
    assert store.db.execute("SELECT MIN(seen_at) FROM events").fetchone()[0] >= cutoff
    assert store.db.execute("SELECT COUNT(*) FROM mentions WHERE created_at < ?",
                            (cutoff,)).fetchone()[0] == 0
    assert store.db.execute("SELECT COUNT(*) FROM alerts WHERE at < ?",
                            (cutoff,)).fetchone()[0] == 0
    assert store.db.execute("SELECT COUNT(*) FROM deliveries d WHERE NOT EXISTS (SELECT 1 FROM "
                            "alerts a WHERE a.id = d.alert_id)").fetchone()[0] == 0
    assert store.pruned_before() == cutoff
    store.close()
