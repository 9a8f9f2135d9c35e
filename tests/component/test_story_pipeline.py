"""Stories through the whole pipeline (issue 17): reposts that never name the brand are
scored on their own words and counted in the story of the mention they repost; batched
(``prepare``) and one-by-one handling give the same alerts. Real models, SimClock-free."""

from __future__ import annotations

from pathlib import Path

from monitor.app import build_pipeline, build_scorer
from monitor.config import Config, HttpConfig
from monitor.store import Store
from rules.policy import BrandConfig
from tests.factories import T0, author, post

CONFIG = Config(brands=(BrandConfig(name="快书包", keywords=("快书包",),
                                    official_accounts=("1650000001",)),),
                http=HttpConfig(enabled=False))
ANGRY = ["太过分了，垃圾公司", "气死了，再也不买了", "恶心，退钱", "骗子公司，必须曝光",
         "太差劲了，投诉无门"]


def story_feed() -> list:
    root = post(T0, "快书包把我买的书弄丢了，客服也不理人，太差了", pid="900",
                who=author("7", followers=800))
    out = [root]
    for i in range(1, 41):  # reposts a minute apart; none names the brand
        text = "转发微博" if i % 3 == 0 else ANGRY[i % len(ANGRY)]
        out.append(post(T0 + i * 60, text, pid=f"9{i:03d}", who=author(str(100 + i)),
                        reposts="900"))
    return out


def test_a_storys_reposts_count_and_batched_equals_one_by_one(tmp_path: Path) -> None:
    scorer = build_scorer(CONFIG)
    posts = story_feed()
    one = Store(tmp_path / "one.db")
    alone = build_pipeline(CONFIG, one, scorer=scorer)
    with one.transaction():
        for p in posts:
            alone.handle(p, p.created_at)
    batch = Store(tmp_path / "batch.db")
    batched = build_pipeline(CONFIG, batch, scorer=scorer)
    calls: list[int] = []
    score_many = scorer.score_many

    def counting(texts: list[str]) -> list:
        calls.append(len(texts))
        return score_many(texts)

    scorer.score_many = counting  # type: ignore[method-assign]
    with batch.transaction():
        batched.prepare(posts)  # the live path: one scoring batch, reposts included
        assert calls == [1 + 27]  # the mention and the 27 reposts with words of their own
        for p in posts:
            batched.handle(p, p.created_at)
    assert alone.stats.mentions == 1 and alone.stats.reposts_of_mentions == 40
    story = alone.engine.stories[900][0]
    assert (story.n_posts, story.n_scored) == (41, 1 + 40 - 13)  # 13 pure reposts: volume
    assert story.n_negative >= 8
    opened = [a for a in one.alerts() if a.type == "crisis.opened"]
    assert len(opened) == 1 and opened[0].post_id == "900"
    assert "原帖及转发、评论" in opened[0].text and "快书包把我买的书弄丢了" in opened[0].text
    assert [(a.id, a.at, a.text) for a in one.alerts()] == \
        [(a.id, a.at, a.text) for a in batch.alerts()]


class _NoScoring:
    """A scorer a rebuild must never use: every stored post carries its decision."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the rebuild scored again ({name})")


def test_a_rebuild_counts_the_story_from_stored_decisions_never_scoring_again(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    live = build_pipeline(CONFIG, store, scorer=build_scorer(CONFIG))
    with store.transaction():
        for p in story_feed():
            live.handle(p, p.created_at)
    before = live.engine.stories[900][0]
    alerts = [(a.id, a.at) for a in store.alerts()]
    # A restart: a fresh pipeline on the same store, whose scorer may not be called.
    again = build_pipeline(CONFIG, store, scorer=_NoScoring())  # type: ignore[arg-type]
    with store.transaction():
        unsent = again.rebuild()
    story = again.engine.stories[900][0]
    assert (story.n_posts, story.n_scored, story.n_negative) == \
        (before.n_posts, before.n_scored, before.n_negative) == (41, 28, before.n_negative)
    assert unsent == [] and [(a.id, a.at) for a in store.alerts()] == alerts


def test_the_live_batch_decided_ahead_equals_one_by_one(tmp_path: Path) -> None:
    """The daemon's batches (``prepare(..., decide=True)``: plain posts only stored) give
    the alerts, stored events and decisions of handling each post alone: mentions, their
    stories, the official account's replies (one arguing, one naming the brand), a
    repeated id and posts about nothing, several to a batch."""
    from rules.records import PostKind
    from tests.factories import OFFICIAL

    feed = story_feed()
    feed += [post(T0 + 30, "今天天气不错", pid="801"), post(T0 + 31, "快书包 又迟到了", pid="802"),
             post(T0 + 32, "您好，是您自己填错了地址，请看清楚再投诉", pid="803", who=OFFICIAL,
                  kind=PostKind.COMMENT, on="802"),
             post(T0 + 33, "快书包已为您补发", pid="804", who=OFFICIAL, kind=PostKind.COMMENT,
                  on="900"),
             post(T0 + 34, "我也是，快书包太慢", pid="805", kind=PostKind.COMMENT, on="802"),
             post(T0 + 35, "随便说说", pid="806", who=OFFICIAL),
             post(T0 + 31, "快书包 又迟到了", pid="802")]
    feed.sort(key=lambda p: p.created_at)
    scorer = build_scorer(CONFIG)
    runs = {}
    for name, size in (("one", 0), ("batched", 7)):
        store = Store(tmp_path / f"{name}.db")
        pipeline = build_pipeline(CONFIG, store, scorer=scorer)
        with store.transaction():
            for i in range(0, len(feed), size or 1):
                chunk = feed[i:i + (size or 1)]
                if size:
                    pipeline.prepare(chunk, decide=True)
                for p in chunk:
                    pipeline.handle(p, p.created_at)
                if size:
                    pipeline.forget_prepared()
        runs[name] = ([(a.id, a.at, a.text) for a in store.alerts()],
                      [(ev.id, decision) for _seq, _at, ev, decision in store.events_since(0)],
                      pipeline.stats)
    assert runs["one"] == runs["batched"]
    assert runs["one"][2].official == 3 and runs["one"][2].duplicates == 1
