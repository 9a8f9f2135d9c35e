"""Forked snapshots stored by the child: a file next to the SQLite store, recorded after.

The periodic engine snapshot is pickled and written by a forked child
(``Store.write_snapshot_forked``), so the event loop only fixes the state, forks and
records a small row (``Store.record_snapshot``). These tests check what a kill -9 can
leave behind at each step: a child killed while writing (a ``.part`` file), a parent
killed after the child's file was complete but before it was recorded, a file gone
missing. Each time the previous snapshot is the one restored, and the left-overs are
deleted by the next start. (Fixtures ``config``, ``events``: tests/fixtures/sample_day.py.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import signal
from pathlib import Path

import pytest

from monitor.app import build_pipeline
from monitor.clock import ScaledClock
from monitor.config import AlertsConfig, Config, HttpConfig
from monitor.daemon import GC_FREEZE_EVERY, GC_THAW_EVERY, GcWatch
from monitor.sources.base import Batch
from monitor.store import SNAPSHOT_PART, SNAPSHOT_SUFFIX, Store
from rules.engine import EscalationEngine
from rules.records import Event
from rules.scoring import Scorer
from tests.fixtures.live import running_daemon


def daemon_config(config: Config, tmp: Path) -> Config:
    return dataclasses.replace(
        config, http=HttpConfig(enabled=False),
        alerts=AlertsConfig(terminal=False, log=str(tmp / "alerts.jsonl")))


def snapshot_rows(db: Path) -> list[tuple[int, int]]:
    """(seq, length of the body stored in the row) of every snapshot row."""
    store = Store(db)
    try:
        return [(int(s), int(n)) for s, n in store.db.execute(
            "SELECT seq, length(body) FROM snapshots ORDER BY seq")]
    finally:
        store.close()


def files(db: Path) -> list[str]:
    folder = Path(str(db) + ".snapshots")
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_the_child_writes_the_file_and_the_parent_records_it(
        config: Config, events: list[Event], tmp_path: Path) -> None:
    """Two forked snapshots: each is a file named by a row with no body of its own; the
    second replaces the first (its file deleted once the row is replaced)."""
    cfg, db = daemon_config(config, tmp_path), tmp_path / "s.db"
    third = len(events) // 3

    async def run() -> tuple[int, int, tuple[int, float, bytes] | None, bytes]:
        async with running_daemon(cfg, db, ScaledClock(events[0].created_at, 1.0)) as live:
            d = live.daemon
            await d.ingest(Batch("test", events[:third], None))
            first = await d.snapshot_forked()
            assert files(db) == [f"{first:015d}{SNAPSHOT_SUFFIX}"]
            await d.ingest(Batch("test", events[third:2 * third], None))
            expected = d.pipeline.engine.snapshot()
            second = await d.snapshot_forked()
            assert files(db) == [f"{second:015d}{SNAPSHOT_SUFFIX}"]
            assert (second, 0) in snapshot_rows(db)
            assert d.snapshot_seconds > 0 and d.snapshot_total >= d.snapshot_seconds
            snap = d.store.load_snapshot()
            await d.ingest(Batch("test", events[2 * third:], None))  # after it
            assert gc.get_freeze_count() > 0  # what the snapshot saw: left to refcounting
            return first, second, snap, expected

    first, second, snap, expected = asyncio.run(run())
    assert gc.get_freeze_count() == 0  # the stopped daemon thawed it all
    assert 0 < first < second
    assert snap is not None and snap[0] == second and snap[2] == expected


def test_a_child_killed_while_writing_leaves_the_previous_snapshot(
        config: Config, events: list[Event], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """kill -9 of the child half-way through its file: the snapshot fails (logged, the
    events since the last one still counted), the previous one is what a restart loads,
    and the half-written file is deleted at the next start."""
    cfg, db = daemon_config(config, tmp_path), tmp_path / "s.db"
    half = len(events) // 2

    def killed_midway(self: Store, body: bytes, seq: int, at: float, taken_at: float,
                      keep_for: float) -> None:
        part = self.snapshot_file(seq).with_suffix(SNAPSHOT_PART)
        part.parent.mkdir(exist_ok=True)
        with part.open("wb") as out:
            out.write(body[: len(body) // 2])
            out.flush()
        os.kill(os.getpid(), signal.SIGKILL)  # in the child: the parent lives on

    async def run() -> tuple[int, bytes]:
        async with running_daemon(cfg, db, ScaledClock(events[0].created_at, 1.0)) as live:
            d = live.daemon
            await d.ingest(Batch("test", events[:half], None))
            good = await d.snapshot_forked()
            kept = d.pipeline.engine.snapshot()
            await d.ingest(Batch("test", events[half:], None))
            monkeypatch.setattr(Store, "write_snapshot_forked", killed_midway)
            with pytest.raises(RuntimeError, match="snapshot child exited"):
                await d.snapshot_forked()
            assert d.events_since_snapshot == len(events) - half  # still to be covered
            assert any(name.endswith(SNAPSHOT_PART) for name in files(db))
            snap = d.store.load_snapshot()
            assert snap is not None and snap[0] == good and snap[2] == kept
            # "kill -9" of the daemon too: no snapshot at the stop (it would cover all).
            d.events_since_snapshot = 0
            monkeypatch.undo()
            return good, kept

    good, _kept = asyncio.run(run())
    assert f"{good:015d}{SNAPSHOT_SUFFIX}" in files(db)

    async def restart() -> tuple[int, int]:
        async with running_daemon(cfg, db, ScaledClock(events[-1].created_at, 1.0)) as live:
            return live.daemon.pipeline.restored_from, live.daemon.pipeline.replayed

    restored_from, replayed = asyncio.run(restart())
    assert restored_from == good and replayed == len(events) - half
    assert not any(n.endswith(SNAPSHOT_PART) for n in files(db))  # deleted at the start


def test_a_file_never_recorded_is_ignored_and_deleted(
        config: Config, events: list[Event], tmp_path: Path) -> None:
    """The parent killed after the child's file was complete, before its row: the file
    is no snapshot (nothing names it), the older one is loaded, the file deleted."""
    db = tmp_path / "s.db"
    store = Store(db)
    engine = EscalationEngine(config.brands, config.sla, config.crisis, config.tz)
    body = engine.snapshot()
    store.write_snapshot_forked(body, 5, 1.0, 100.0, 0.0)
    store.record_snapshot(5, 1.0, 100.0, 0.0)
    store.write_snapshot_forked(b"never recorded", 9, 2.0, 200.0, 0.0)  # then "kill -9"
    assert files(db) == [f"{5:015d}{SNAPSHOT_SUFFIX}", f"{9:015d}{SNAPSHOT_SUFFIX}"]
    assert store.load_snapshot() == (5, 1.0, body)
    assert store.drop_snapshot_files() == 1
    assert files(db) == [f"{5:015d}{SNAPSHOT_SUFFIX}"]
    store.close()


def test_a_missing_file_falls_back_to_an_older_snapshot(
        config: Config, tmp_path: Path) -> None:
    """A store copied without its snapshot folder, or a file deleted by hand: the newest
    snapshot whose body can be read is loaded (one kept in the row, here)."""
    db = tmp_path / "s.db"
    store = Store(db)
    body = EscalationEngine(config.brands, config.sla, config.crisis, config.tz).snapshot()
    with store.transaction():
        store.save_snapshot(body, 1.0, 100.0, keep_for=1000.0, seq=3)  # in the row
    store.write_snapshot_forked(b"x", 7, 2.0, 200.0, keep_for=1000.0)
    store.record_snapshot(7, 2.0, 200.0, keep_for=1000.0)
    store.snapshot_file(7).unlink()
    assert store.load_snapshot() == (3, 1.0, body)
    store.close()


def test_forgotten_mentions_leave_no_garbage_cycles(
        config: Config, scorer: Scorer, events: list[Event], tmp_path: Path) -> None:
    """Why each forked snapshot may freeze what is alive (``GcWatch``) without losing
    memory: a mention the engine forgets is freed by reference counting, and leaves
    nothing for the cyclic collector, which no longer looks at frozen objects."""
    store = Store(tmp_path / "s.db")
    pipeline = build_pipeline(config, store, ["log"], scorer=scorer)
    for event in events:
        with store.transaction():
            pipeline.handle(event, event.created_at)
    later = events[-1].created_at + 3 * 86_400
    with store.transaction():
        pipeline.tick(later)
    gc.collect()
    gc.disable()
    try:
        assert pipeline.engine.forget_settled(later) > 0
        assert gc.collect() == 0
    finally:
        gc.enable()
        store.close()


def test_gc_watch_freezes_thaws_on_schedule_and_counts_pauses() -> None:
    watch = GcWatch()
    try:
        watch.tick()  # too soon for either
        assert gc.get_freeze_count() == 0
        watch.frozen -= GC_FREEZE_EVERY  # (real seconds: the collector's time)
        watch.tick()
        assert gc.get_freeze_count() > 0
        assert not watch.thaw_if_due() and gc.get_freeze_count() > 0
        watch.thawed -= GC_THAW_EVERY  # an hour on
        watch.tick()
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
    watch.on_gc("start", {"generation": 2})
    watch.on_gc("stop", {"generation": 2, "collected": 3})
    worst, full, garbage = watch.take()
    assert full == 1 and garbage == 3 and worst >= 0.0
    assert watch.take() == (0.0, 0, 0)


def test_two_writers_of_one_seq_never_mix_their_bytes(config: Config, tmp_path: Path) -> None:
    """A child orphaned by a kill -9 of its daemon may still be writing when the next
    daemon's first child writes the same ``seq``: each writes a file of its own name and
    renames it whole, so the snapshot file is one writer's, never a mix."""
    store = Store(tmp_path / "s.db")
    body = EscalationEngine(config.brands, config.sla, config.crisis, config.tz).snapshot()
    orphan = store.snapshot_file(4).with_name(f"{4:015d}.999999{SNAPSHOT_PART}")
    orphan.parent.mkdir()
    orphan.write_bytes(b"half of what an orphaned child was writing")
    store.write_snapshot_forked(body, 4, 1.0, 100.0, 0.0)
    assert store.snapshot_file(4).read_bytes() == body
    assert orphan.read_bytes() == b"half of what an orphaned child was writing"
    store.close()
