"""``Daemon.ingest`` on the live path: a batch is matched and scored at once, and the
deadlines it leaves behind fire in its own transaction. In process, SimClock, no sleeps."""

from __future__ import annotations

from pathlib import Path

from monitor.app import build_pipeline
from monitor.clock import SimClock
from monitor.config import Config, HttpConfig
from monitor.daemon import Daemon
from monitor.sources.base import Batch
from monitor.store import Store
from rules.policy import BrandConfig
from rules.records import AlertType
from tests.factories import T0, post
from tests.integration.test_outbox_batch import BatchChannel

CONFIG = Config(brands=(BrandConfig(name="快书包", keywords=("快书包",),
                                    official_accounts=("1650000001",)),),
                http=HttpConfig(enabled=False))


def make_daemon(store: Store, now: float) -> Daemon:
    return Daemon(CONFIG, store, build_pipeline(CONFIG, store, ["sink"]), SimClock(now),
                  [BatchChannel("sink")], delivery_clock=SimClock(now))


async def test_the_daemon_scores_a_batch_at_once_with_the_same_alerts(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    daemon = make_daemon(store, T0 + 5)
    scorer = daemon.pipeline.scorer
    calls: list[int] = []
    score_many = scorer.score_many

    def counting(texts: list[str]) -> list[float]:
        calls.append(len(texts))
        return score_many(texts)

    scorer.score_many = counting  # type: ignore[method-assign]
    texts = ["快书包送货太慢了，客服也不回", "快书包的新品太好喝了", "今天天气不错",
             "快书包杯盖又漏了"]
    posts = [post(T0 + i, t, pid=f"p{i}") for i, t in enumerate(texts)]
    await daemon.ingest(Batch("test", [*posts, posts[0]]))  # a repeat in the batch: once
    assert calls == [3]  # the three mentions, scored together
    new = [a for a in store.alerts() if a.type == "mention.new"]
    assert sorted(a.post_id for a in new) == ["p0", "p1", "p3"]
    assert store.count_events() == 4
    one = Store(tmp_path / "one.db")  # the same posts handled one by one: same alerts
    alone = build_pipeline(CONFIG, one, ["sink"])
    with one.transaction():
        for p in posts:
            alone.handle(p, T0 + 5)
    assert [a.id for a in one.alerts()] == [a.id for a in store.alerts()]
    assert [a.severity for a in one.alerts()] == [a.severity for a in store.alerts()]


async def test_deadlines_a_late_batch_leaves_behind_fire_in_its_own_commit(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    daemon = make_daemon(store, T0 + 200)  # the batch arrives 200 s late: past the warning
    commits: list[int] = []
    commit = store.commit

    def counting() -> None:
        commits.append(1)
        commit()

    store.commit = counting  # type: ignore[method-assign]
    await daemon.ingest(Batch("test", [post(T0, "快书包送货太慢了", pid="late")]))
    assert [a.type for a in store.alerts()] == [AlertType.MENTION_NEW, AlertType.REPLY_WARNING]
    assert commits == [1]  # events, their alerts and the late warning: one transaction
    assert daemon.pipeline.engine.next_due() == T0 + 300  # the breach is still ahead


async def test_the_young_collection_threshold_is_raised_while_running_only(
        tmp_path: Path) -> None:
    """``GC_YOUNG`` while the daemon runs (its posts' garbage is freed by reference
    counting, so Python's 700 ran the collector ~22 times a second for nothing), and the
    process's own thresholds again once it stops (the tests run many daemons)."""
    import asyncio
    import gc

    from monitor.daemon import GC_YOUNG

    before = gc.get_threshold()
    store = Store(tmp_path / "s.db")
    daemon = make_daemon(store, T0 + 5)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run([], stop))
    while not daemon.started:  # noqa: ASYNC110 - ``started`` is a flag, not an event
        await asyncio.sleep(0.01)
    assert gc.get_threshold() == (max(GC_YOUNG, before[0]), *before[1:])
    stop.set()
    await task
    assert gc.get_threshold() == before
    store.close()
