"""Snapshots, stored decisions and retention on the PostgreSQL store (the real server).

The same behaviour as tests/component/test_lasting_state.py, over ``PgStore``: a restart
after a crash starts from the engine snapshot, feeds only the events stored after it, as
decided then (a new keyword and a shorter ``warn_at`` change nothing about them), and the
retention deletes old events, mentions and delivered alerts in chunks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import signal
import time
from pathlib import Path

from monitor.app import build_pipeline
from monitor.clock import SimClock
from monitor.config import AlertsConfig, Config
from monitor.daemon import Daemon
from monitor.sources.base import Batch
from monitor.store import Store
from monitor.store.postgres import PgStore
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


def test_a_forked_snapshot_is_stored_by_the_child_while_the_parent_writes(
        config: Config, scorer: Scorer, events: list[Event], schema: str) -> None:
    """The periodic snapshot's row is written by the forked child through a connection
    of its own (``PgStore.write_snapshot_forked``), not the parent's, and without the
    write lock: it commits while the parent is inside a batch's transaction. A restart
    (or a peer) then starts from it."""
    half = len(events) // 2
    store = PgStore(DSN, schema)
    play(config, scorer, store, events[:half])
    pipeline = build_pipeline(config, store, ["log"], scorer=scorer)
    with store.transaction():
        pipeline.rebuild()
    body, seq = pipeline.engine.snapshot(), store.max_seq()
    with store.transaction():  # a batch: the parent holds the write lock
        pipeline.handle(events[half], events[half].created_at)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                store.write_snapshot_forked(body, seq, 7.0, time.time(), 0.0)
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + 60
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:  # it waits for our lock: fail, do not hang
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError("the snapshot child waited for the write lock")
            time.sleep(0.01)
        assert os.waitstatus_to_exitcode(done[1]) == 0
    assert store.load_snapshot() == (seq, 7.0, body)  # the parent's connection still works
    store.close()
    again = PgStore(DSN, schema)
    restarted = build_pipeline(config, again, ["log"], scorer=scorer)
    with again.transaction():
        restarted.rebuild()
    assert restarted.restored_from == seq and restarted.replayed == 1
    again.close()


def test_the_daemons_forked_snapshot_on_postgresql(
        config: Config, scorer: Scorer, events: list[Event], schema: str,
        tmp_path: Path) -> None:
    """``Daemon.snapshot_forked`` end to end on PostgreSQL: the child's row is the
    snapshot (no file, nothing for the parent to record), as of the state at the fork."""
    half = len(events) // 2
    store = PgStore(DSN, schema)
    cfg = dataclasses.replace(config, alerts=AlertsConfig(terminal=False,
                                                          log=str(tmp_path / "alerts.jsonl")))
    pipeline = build_pipeline(cfg, store, ["log"], scorer=scorer)
    daemon = Daemon(cfg, store, pipeline, SimClock(events[half].created_at), [])

    async def run() -> tuple[int, bytes]:
        await daemon.ingest(Batch("test", events[:half], None))
        expected = daemon.pipeline.engine.snapshot()
        try:
            seq = await daemon.snapshot_forked()
        finally:
            gc.unfreeze()  # (``Daemon.run`` would, at its end)
        await daemon.ingest(Batch("test", events[half:], None))  # after it
        return seq, expected

    seq, expected = asyncio.run(run())
    assert store.load_snapshot() == (seq, events[half].created_at, expected)
    assert 0 < seq < store.max_seq() and store.snapshot_dir() is None
    store.close()


def test_the_daemons_retention_pass_on_postgresql(
        config: Config, scorer: Scorer, events: list[Event], schema: str,
        tmp_path: Path) -> None:
    """``Daemon.prune`` end to end on PostgreSQL, as on SQLite (tests/component/
    test_lasting_state.py): every old row goes, in chunks that shrink while they are
    slow, and a post older than the cutoff seen again is not handled again."""
    store = PgStore(DSN, schema)
    play(config, scorer, store, events)
    cfg = dataclasses.replace(config, store=dataclasses.replace(config.store, retention=DAY),
                              alerts=AlertsConfig(terminal=False,
                                                  log=str(tmp_path / "alerts.jsonl")))
    pipeline = build_pipeline(cfg, store, ["log"], scorer=scorer)
    end, later = events[-1].created_at + DAY, events[-1].created_at + 3 * DAY
    daemon = Daemon(cfg, store, pipeline, SimClock(later), [])
    with store.transaction():
        pipeline.rebuild()
        pipeline.tick(end)  # every deadline of the day fired, its incidents over
        daemon.take_snapshot()  # (events a kept snapshot still needs are never pruned)
    with store.transaction():  # (the deliveries above are written at the commit)
        store.db.execute("UPDATE deliveries SET state = 'delivered'")  # the outbox's work
    counts = {t: store.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert all(counts.values()), counts
    first = next(e for e in events if hasattr(e, "text") and "小满咖啡" in e.text)

    async def prune() -> int:
        pruned = await daemon.prune()
        await daemon.ingest(Batch("test", [first], None))  # seen again, past the cutoff
        return pruned

    pruned = asyncio.run(prune())
    left = {t: store.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert left == {"events": 0, "mentions": 0, "alerts": 0, "deliveries": 0}
    assert pruned == counts["events"] + counts["mentions"] + counts["alerts"]
    assert pipeline.stats.stale == 1 and store.pruned_before() == later - DAY
    assert daemon.checkpointer is None  # no SQLite log to wait for
    store.close()
