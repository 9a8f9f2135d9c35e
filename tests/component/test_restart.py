"""Restarts: a rebuilt daemon re-arms every pending deadline and never sends an alert twice."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from monitor.app import build_pipeline
from monitor.config import Config
from monitor.store import Store
from rules.records import Alert, Event
from rules.scoring import Scorer

END = 1779408000.0  # 2026-05-22T08:00:00+08:00, after every deadline of the sample day


def run(config: Config, scorer: Scorer, db: Path, events: list[Event],
        finish: bool) -> list[Alert]:
    """One daemon life: rebuild from the store, handle ``events``, maybe run the clock out."""
    store = Store(db)
    pipeline = build_pipeline(config, store, scorer=scorer)
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


@pytest.fixture(scope="module")
def uninterrupted(config: Config, scorer: Scorer, events: list[Event],
                  tmp_path_factory: pytest.TempPathFactory) -> list[Alert]:
    return run(config, scorer, tmp_path_factory.mktemp("one") / "s.db", events, finish=True)


@pytest.mark.parametrize("cuts", [[40], [150, 151], [10, 90, 200, 280]])
def test_restarts_anywhere_lose_and_duplicate_nothing(
        config: Config, scorer: Scorer, events: list[Event], uninterrupted: list[Alert],
        tmp_path: Path, cuts: list[int]) -> None:
    db = tmp_path / "s.db"
    sent: list[Alert] = []
    bounds = [0, *cuts, len(events)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        sent += run(config, scorer, db, events[a:b], finish=i == len(bounds) - 2)
    assert signature(sent) == signature(uninterrupted)
    assert len({a.id for a in sent}) == len(sent)
    store = Store(db)
    assert sorted(store.alert_ids()) == sorted(a.id for a in uninterrupted)
    store.close()


def test_deadlines_due_while_down_fire_once_after_restart(
        config: Config, scorer: Scorer, events: list[Event], tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    first = next(i for i, e in enumerate(events) if "会员卡余额" in getattr(e, "text", ""))
    # Down right after the 16:20 mention was stored; back 30 minutes later.
    before = run(config, scorer, db, events[: first + 1], finish=False)
    assert [str(a.type) for a in before if a.post_id == events[first].id] == ["mention.new"]
    back = events[first].created_at + 30 * 60
    store = Store(db)
    pipeline = build_pipeline(config, store, scorer=scorer)
    with store.transaction():
        after = pipeline.rebuild() + pipeline.tick(back)
    store.close()
    mine = [(str(a.type), a.at - events[first].created_at) for a in after
            if a.post_id == events[first].id]
    assert mine == [("reply.warning", 180), ("reply.breach", 300), ("reply.escalated", 900)]
    # And a third life sends none of them again.
    store = Store(db)
    pipeline = build_pipeline(config, store, scorer=scorer)
    with store.transaction():
        again = pipeline.rebuild() + pipeline.tick(back)
    store.close()
    assert [a for a in again if a.post_id == events[first].id] == []


def test_a_repeated_post_is_stored_and_handled_once(
        config: Config, scorer: Scorer, events: list[Event], tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    pipeline = build_pipeline(config, store, scorer=scorer)
    first = events[:30]
    with store.transaction():
        a = [x for e in first for x in pipeline.handle(e, e.created_at)]
        b = [x for e in first for x in pipeline.handle(e, e.created_at)]
    assert a and b == []
    assert pipeline.stats.duplicates == len(first)
    assert store.count_events() == len(first)
    store.close()


class ExplodingSentiment:
    """A model with a bug that only one text triggers."""

    name = "exploding"

    def score(self, text: str) -> float:
        if "BOOM" in text:
            raise RuntimeError("model bug")
        return 0.1

    def score_many(self, texts: list[str]) -> list[float]:
        return [self.score(t) for t in texts]


def test_an_event_that_breaks_a_stage_is_skipped_and_the_rest_go_on(
        config: Config, scorer: Scorer, events: list[Event], tmp_path: Path) -> None:
    from msgspec.structs import replace as copy

    from rules.records import Post

    broken = Scorer(ExplodingSentiment(), scorer.lexicon, scorer.negative_below)
    store = Store(tmp_path / "s.db")
    pipeline = build_pipeline(config, store, scorer=broken)
    first = next(e for e in events if isinstance(e, Post) and "小满咖啡" in e.text)
    bad = copy(first, id="boom-1", text="小满咖啡 BOOM")
    good = copy(first, id="ok-1", created_at=first.created_at + 1)
    with store.transaction():
        out = pipeline.handle(bad, bad.created_at) + pipeline.handle(good, good.created_at)
    assert pipeline.stats.failed == 1
    assert [a.post_id for a in out] == ["ok-1"]
    assert not store.has_post("boom-1") and store.has_post("ok-1")  # rolled back, not half-kept
    store.close()
    # A restart does not trip over it either.
    store = Store(tmp_path / "s.db")
    again = build_pipeline(config, store, scorer=broken)
    with store.transaction():
        assert again.rebuild() == []
    assert again.stats.failed == 0 and "小满咖啡\x1fok-1" in again.engine.clocks
    store.close()
