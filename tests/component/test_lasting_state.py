"""State that lasts: decisions are facts, restarts start from snapshots, old rows are pruned.

- A day played into the daemon, then a shorter ``warn_at`` and a keyword that matches old
  posts (the reproduction of issue 18): neither a restart nor a SIGHUP reload raises a
  single new alert about the past.
- An engine snapshot restored mid-stream gives byte-identical later alerts, whatever
  state the engine (and its crisis detector) holds: the snapshot is generic.
- A restart from a snapshot feeds only the events stored after it.
- Retention deletes old events, mentions and delivered alerts, in chunks, and a post
  older than the cutoff that comes in again is not handled again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
from pathlib import Path

import pytest

from monitor import daemon as daemon_module
from monitor.app import build_pipeline, build_scorer
from monitor.clock import ScaledClock
from monitor.config import AlertsConfig, Config, HttpConfig, StoreConfig, load_config
from monitor.daemon import Daemon
from monitor.feed import FeedStats, read_feeds
from monitor.reload import reload_config
from monitor.sources.base import Batch
from monitor.sources.feed import FeedSource
from monitor.store import Store
from rules.engine import EscalationEngine, SnapshotError
from rules.matching import BrandMatcher
from rules.records import Alert, AlertType, Author, Event, Post, PostKind
from rules.scoring import Scorer
from tests.fixtures.live import running_daemon, until

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "seeds" / "feeds" / "sample_day.jsonl"
NEW_KEYWORDS = ("中午喝什么", "美食博主阿杰")
"""Not keywords of the bundled config, but words of posts in the sample day."""
DAY = 86_400.0


@pytest.fixture(scope="module")
def base() -> Config:
    return load_config(ROOT / "config.toml")


@pytest.fixture(scope="module")
def scorer(base: Config) -> Scorer:
    return build_scorer(base)


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return read_feeds([SAMPLE], FeedStats())


def daemon_config(base: Config, tmp: Path) -> Config:
    return dataclasses.replace(
        base, http=HttpConfig(enabled=False),
        alerts=AlertsConfig(terminal=False, log=str(tmp / "alerts.jsonl")))


def changed(config: Config) -> Config:
    """Shorter ``warn_at`` (3m -> 2m) and a brand keyword that matches day-old posts."""
    brand = config.brands[0]
    brand = dataclasses.replace(brand, keywords=(*brand.keywords, *NEW_KEYWORDS))
    return dataclasses.replace(config, sla=dataclasses.replace(config.sla, warn_at=120.0),
                               brands=(brand, *config.brands[1:]))


async def play_day(config: Config, db: Path, events: list[Event]) -> None:
    """The sample day through the live daemon (a feed source on a fast clock), then the
    clock run on until every deadline of the day has fired (two days later at least)."""
    start = events[0].created_at
    clock = ScaledClock(start, 400_000.0)  # the day in ~0.2 s
    feed: list[FeedSource] = []

    def sources(daemon: Daemon) -> list[FeedSource]:
        feed.append(FeedSource(SAMPLE, clock, None, "feed"))
        return feed

    async with running_daemon(config, db, clock, sources=sources) as live:
        engine = live.daemon.pipeline.engine
        end = start + 2 * DAY
        await until(lambda: feed[0].next_time is None and clock.now() > end, timeout=30,
                    what="the day to be played")
        # Nothing pending at all, not only nothing due by ``end``: under load the feed's
        # crisis posts were handled late on this fast clock, so their incident opened
        # (and its checkpoints and close fell due) past ``end``; stopped with those still
        # pending, the next life fired them, as it should, and the test saw new alerts.
        await until(lambda: engine.next_due() is None and clock.now() > end + 60,
                    timeout=30, what="the day's deadlines to fire")


def stored_alerts(db: Path) -> list[Alert]:
    store = Store(db)
    try:
        return store.alerts()
    finally:
        store.close()


def test_new_config_after_a_day_raises_no_alert_about_the_past(
        base: Config, events: list[Event], tmp_path: Path) -> None:
    config, db = daemon_config(base, tmp_path), tmp_path / "s.db"
    asyncio.run(play_day(config, db, events))
    before = stored_alerts(db)
    log_before = (tmp_path / "alerts.jsonl").read_text(encoding="utf-8")
    assert len(before) > 50
    # The change would matter: mentions answered between 2 and 3 minutes (a warning at
    # 2m, none at 3m), and old posts the new keywords match.
    store = Store(db)
    late = store.db.execute("SELECT COUNT(*) FROM mentions WHERE replied_at - created_at "
                            "BETWEEN 120.5 AND 180").fetchone()[0]
    store.close()
    assert late >= 5
    new = changed(config)
    old_matcher, new_matcher = BrandMatcher(config.brands), BrandMatcher(new.brands)
    newly = [e for e in events if hasattr(e, "text") and not old_matcher.match(
        e.text, e.author.id) and new_matcher.match(e.text, e.author.id)]
    assert len(newly) >= 2

    async def second_life() -> None:
        later = events[-1].created_at + 3 * DAY
        async with running_daemon(new, db, ScaledClock(later, 600.0),
                                  sources=lambda d: [FeedSource(SAMPLE, d.clock, None, "feed")]
                                  ) as live:
            await asyncio.sleep(0.5)  # five simulated minutes: a new 2m warning would fire
            assert live.daemon.pipeline.replayed == 0  # stopped cleanly: a snapshot covers all

    asyncio.run(second_life())
    after = stored_alerts(db)
    assert [a.id for a in after] == [a.id for a in before]
    assert (tmp_path / "alerts.jsonl").read_text(encoding="utf-8") == log_before


def test_a_reload_of_that_config_raises_no_alert_about_the_past(
        base: Config, events: list[Event], tmp_path: Path) -> None:
    config, db = daemon_config(base, tmp_path), tmp_path / "s.db"
    asyncio.run(play_day(config, db, events))
    before = [a.id for a in stored_alerts(db)]

    later = events[-1].created_at + 3 * DAY

    async def reloaded() -> None:
        async with running_daemon(config, db, ScaledClock(later, 600.0)) as live:
            assert await reload_config(live.daemon, changed(config))
            await asyncio.sleep(0.5)  # five simulated minutes: a new 2m warning would fire
            # The new keyword applies to new posts: one comes in and is paged.
            fresh = Post(id="fresh-1", kind=PostKind.STATUS, created_at=live.daemon.clock.now(),
                         text="中午喝什么好呢", author=Author(id="u-fresh", screen_name="顾客"))
            await live.daemon.ingest(Batch("test", [fresh], None))

    asyncio.run(reloaded())
    after = stored_alerts(db)
    assert [a.id for a in after[:len(before)]] == before
    new = [(str(a.type), a.post_id) for a in after[len(before):]]
    assert new[0] == ("mention.new", "fresh-1")
    assert {post_id for _, post_id in new} == {"fresh-1"}
    # The reload applied the reply rule to new mentions, and a restart keeps it so: the
    # engine was snapshotted with it when it was swapped in.
    store = Store(db)
    try:
        snap = store.load_snapshot()
        assert snap is not None
        engine = EscalationEngine.restore(snap[2])
    finally:
        store.close()
    assert engine.sla.warn_at == 120.0
    assert engine.clocks[f"{config.brands[0].name}\x1ffresh-1"].sla.warn_at == 120.0
    # The day's mentions, settled three days ago, are no longer held in memory.
    assert list(engine.clocks) == [f"{config.brands[0].name}\x1ffresh-1"]


def test_after_kill_the_events_since_the_snapshot_are_fed_with_their_decisions(
        base: Config, scorer: Scorer, events: list[Event], tmp_path: Path) -> None:
    """A crash after the snapshot: the events stored since are fed again, as decided then
    (the new keyword and warn_at do not apply to them), and nothing is raised twice."""
    db = tmp_path / "s.db"
    half = len(events) // 2
    store = Store(db)
    pipeline = build_pipeline(base, store, scorer=scorer)
    raised: list[Alert] = []
    for i, event in enumerate(events):
        with store.transaction():
            raised += pipeline.handle(event, event.created_at)
            if i == half:
                pipeline.snapshot(event.created_at)
    store.close()  # "killed": no snapshot at the end
    store = Store(db)
    again = build_pipeline(changed(base), store, scorer=scorer)
    with store.transaction():
        unsent = again.rebuild()
    assert again.restored_from > 0 and again.replayed == len(events) - half - 1
    assert unsent == []
    # Same state as the pipeline that saw it all: the same mentions, nothing more.
    assert sorted(again.engine.clocks) == sorted(pipeline.engine.clocks)
    with store.transaction():
        tail = again.tick(events[-1].created_at + 2 * DAY)
    store.close()
    ref_store = Store(tmp_path / "ref.db")
    ref = build_pipeline(base, ref_store, scorer=scorer)
    for event in events:
        with ref_store.transaction():
            ref.handle(event, event.created_at)
    with ref_store.transaction():
        ref_tail = ref.tick(events[-1].created_at + 2 * DAY)
    ref_store.close()
    assert [a.to_json() for a in tail] == [a.to_json() for a in ref_tail]


def test_snapshot_round_trip_gives_byte_identical_later_alerts(
        base: Config, scorer: Scorer, events: list[Event], tmp_path: Path) -> None:
    """Restored mid-day (at several points), the engine raises exactly the alerts, byte
    for byte, of one that never stopped: every part of its state (reply clocks, deadlines,
    incidents, the detector's windows) survives, without the snapshot naming any."""
    def run(cuts: set[int], db: Path) -> list[str]:
        store = Store(db)
        pipeline = build_pipeline(base, store, scorer=scorer)
        out: list[Alert] = []
        for i, event in enumerate(events):
            with store.transaction():
                out += pipeline.handle(event, event.created_at)
            if i in cuts:
                with store.transaction():
                    body = pipeline.engine.snapshot()
                    pipeline.engine = EscalationEngine.restore(body)
                    assert pipeline.engine.snapshot() == body
        with store.transaction():
            out += pipeline.tick(events[-1].created_at + 2 * DAY)
        store.close()
        return [a.to_json() for a in out]

    straight = run(set(), tmp_path / "a.db")
    assert any('"crisis.opened"' in a for a in straight)
    assert run({3, 100, 150, 151, 240}, tmp_path / "b.db") == straight


def test_a_snapshot_of_another_build_is_refused(base: Config) -> None:
    engine = EscalationEngine(base.brands, base.sla, base.crisis, base.tz)
    body = engine.snapshot()
    assert EscalationEngine.restore(body).snapshot() == body
    with pytest.raises(SnapshotError, match="unreadable"):
        EscalationEngine.restore(body[: len(body) // 2])
    with pytest.raises(SnapshotError, match="another build"):
        EscalationEngine.restore(pickle.dumps(("0" * 16, {})))


@pytest.mark.parametrize("slow", [False, True], ids=["chunks", "slow-chunks"])
def test_retention_prunes_in_chunks_and_an_old_post_is_not_handled_again(
        base: Config, scorer: Scorer, events: list[Event], tmp_path: Path, slow: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if slow:  # every chunk seems slow: they shrink to the smallest, and all still goes
        monkeypatch.setattr(daemon_module, "PRUNE_CHUNK_SECONDS", 0.0)
    config = dataclasses.replace(daemon_config(base, tmp_path),
                                 store=StoreConfig(retention=DAY))
    db = tmp_path / "s.db"
    asyncio.run(play_day(config, db, events))
    store = Store(db)
    counts = {t: store.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("events", "mentions", "alerts", "deliveries")}
    store.close()
    assert all(counts.values()), counts

    async def later() -> int:
        now = events[-1].created_at + 3 * DAY
        async with running_daemon(config, db, ScaledClock(now, 1.0)) as live:
            d = live.daemon
            pruned = await d.prune()
            # The oldest mention of the day, seen again: past the cutoff, not handled.
            first = next(e for e in events if hasattr(e, "text") and "小满咖啡" in e.text)
            await d.ingest(Batch("test", [first], None))
            assert d.pipeline.stats.stale == 1
            return pruned

    pruned = asyncio.run(later())
    store = Store(db)
    left = {t: store.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("events", "mentions", "alerts", "deliveries")}
    store.close()
    assert left == {"events": 0, "mentions": 0, "alerts": 0, "deliveries": 0}
    assert pruned == counts["events"] + counts["mentions"] + counts["alerts"]


def test_settled_mentions_are_forgotten_open_ones_kept(
        base: Config, scorer: Scorer, events: list[Event], tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    pipeline = build_pipeline(base, store, scorer=scorer)
    for event in events:
        with store.transaction():
            pipeline.handle(event, event.created_at)
    engine = pipeline.engine
    n = len(engine.clocks)
    pending = {id(d.subject) for d in engine.deadlines()}
    waiting = [c.key for c in engine.clocks.values() if id(c) in pending]
    forgotten = engine.forget_settled(events[-1].created_at + 1)
    assert 0 < forgotten < n and len(engine.clocks) == n - forgotten
    assert all(k in engine.clocks for k in waiting)
    # A snapshot now holds only what is left.
    assert len(EscalationEngine.restore(engine.snapshot()).clocks) == n - forgotten
    store.close()


def test_alert_pruning_steps_over_pending_ones_sharing_a_time(tmp_path: Path) -> None:
    """Alerts still pending are kept and stepped over, even more of them at one ``at``
    than a chunk holds: the pass ends, and the delivered ones around them are deleted."""
    store = Store(tmp_path / "s.db")
    at = 1_779_206_400.0
    alerts = [Alert(id=f"a-{i:04d}", type=AlertType.MENTION_NEW, at=at + (i >= 7), brand="b",
                    level=0, severity="P3", title="t", text="x") for i in range(10)]
    with store.transaction():
        store.add_alerts(alerts, ["log"])
    with store.transaction():
        for alert in alerts[:2] + alerts[7:]:  # the rest stay pending
            store.mark_delivered(alert.id, "log", at + 5)
    seen, deleted, after = 3, 0, (float("-inf"), "")
    passes = 0
    while seen == 3:
        with store.transaction():
            seen, n, after = store.prune_alerts(at + 10, 3, after)
        deleted += n
        passes += 1
    assert passes == 4 and deleted == 5
    assert sorted(a.id for a in store.alerts()) == [f"a-{i:04d}" for i in range(2, 7)]
    store.close()


def test_a_forked_snapshot_covers_the_state_it_was_taken_at(
        base: Config, events: list[Event], tmp_path: Path) -> None:
    """The periodic snapshot is pickled in a forked child while the loop goes on: it is
    stored as of the events in at the fork, and restores to the engine as it was then."""
    config, db = daemon_config(base, tmp_path), tmp_path / "s.db"

    async def run() -> tuple[int, int, tuple[int, float, bytes], bytes]:
        clock = ScaledClock(events[0].created_at, 1.0)
        async with running_daemon(config, db, clock) as live:
            d = live.daemon
            half = events[: len(events) // 2]
            await d.ingest(Batch("test", half, None))
            expected = d.pipeline.engine.snapshot()
            half_mentions = len(d.pipeline.engine.clocks)
            seq = await d.snapshot_forked()
            assert d.events_since_snapshot == 0
            await d.ingest(Batch("test", events[len(events) // 2:], None))  # after it
            snap = d.store.load_snapshot()
            assert snap is not None
            restored = EscalationEngine.restore(snap[2])
            assert 0 < len(restored.clocks) == half_mentions < len(d.pipeline.engine.clocks)
            return seq, d.store.last_seq(), snap, expected

    seq, last, snap, expected = asyncio.run(run())
    assert snap[0] == seq < last
    assert snap[2] == expected


def test_a_large_feed_is_streamed_and_resumes_where_its_cursor_says(
        events: list[Event], monkeypatch: pytest.MonkeyPatch) -> None:
    """A feed above ``STREAM_ABOVE`` is read as it plays, not held in memory; its cursor
    says where in the file to go on, so a restart neither reads what was played nor
    plays it twice."""
    from monitor.clock import SimClock
    from monitor.sources import feed as feed_source

    monkeypatch.setattr(feed_source, "STREAM_ABOVE", 0)
    monkeypatch.setattr(feed_source, "MAX_BATCH", 40)

    class Sink:
        def __init__(self, stop_after: int | None = None) -> None:
            self.batches: list[Batch] = []
            self.stop_after = stop_after

        async def ingest(self, batch: Batch) -> None:
            self.batches.append(batch)
            if self.stop_after is not None and len(self.batches) == self.stop_after:
                raise asyncio.CancelledError  # "killed" right after this batch's commit

    end = SimClock(events[-1].created_at + 1)
    whole = FeedSource(SAMPLE, end, None, "feed")
    assert whole.events == [] and whole.next_time == events[0].created_at
    first = Sink()
    asyncio.run(whole.run(first))
    played = [e for b in first.batches for e in b.events]
    assert sorted(e.id for e in played) == sorted(e.id for e in events)
    assert max(len(b.events) for b in first.batches) == 40
    cut = Sink(stop_after=3)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(FeedSource(SAMPLE, end, None, "feed").run(cut))
    cursor = cut.batches[-1].cursor
    assert cursor is not None and cursor.count("@") == 2
    rest = Sink()
    asyncio.run(FeedSource(SAMPLE, end, cursor, "feed").run(rest))
    again = [e.id for b in cut.batches + rest.batches for e in b.events]
    assert again == [e.id for e in played]
