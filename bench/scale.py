"""Throughput against configuration size: 1, 2 and 4 brands x 10, 100, 1,000 keywords each.

    python bench/scale.py [--posts 20000]

For each shape: a deterministic synthetic day (``bench/synth.py``, real Weibo texts, 15 %
of them given one of the configured keywords), then (1) brand matching alone
(``rules.matching.BrandMatcher.match`` over every text) and (2) the whole pipeline as
``crisismon replay --speed max`` drives it (match, score, engine, SQLite store, alerts),
timed from the first event to the last deadline, without the fixed start-up and report
writing.
Keywords are the brand name plus brand-prefixed product names built from two-character
words of the texts, so they look like real keyword lists and can collide with post text.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synth import (
    OFFICIAL_BASE,
    BrandSpec,
    brand_config,
    load_texts,
    make_day,
    write_feed,
)
from monitor.app import build_pipeline
from monitor.config import Config, load_config
from monitor.feed import FeedStats, read_feeds
from monitor.replay import COMMIT_EVERY, PREPARE_EVERY
from monitor.store import Store
from rules.matching import BrandMatcher

NAMES = ("快书包", "小满咖啡", "蜜雪冰城", "喜茶")


def make_brands(n_brands: int, n_keywords: int, texts: list[str]) -> tuple[BrandSpec, ...]:
    """``n_brands`` brands with ``n_keywords`` keywords each (deterministic)."""
    rng = random.Random(n_brands * 10_007 + n_keywords)
    words = sorted({t[i:i + 2] for t in texts[:3000] for i in range(0, len(t) - 1, 7)
                    if all("\u4e00" <= c <= "\u9fff" for c in t[i:i + 2])})
    out = []
    for b in range(n_brands):
        name = NAMES[b]
        kws = {name}
        while len(kws) < n_keywords:
            kws.add(name[:2] + rng.choice(words) + rng.choice(words))
        out.append(BrandSpec(name, tuple(sorted(kws, key=lambda k: (k != name, k))),
                             (str(OFFICIAL_BASE + 100 + b),)))
    return tuple(out)


def pipeline_rate(config: Config, feed: Path, db: Path) -> tuple[float, int]:
    """Posts/s of the pipeline alone (as replay drives it, without its start-up and report
    writing, which do not depend on the number of posts), and the mentions seen."""
    events = read_feeds([feed], FeedStats())
    store = Store(db)
    pipeline = build_pipeline(config, store)
    pipeline.scorer.score_many(["预热"])
    t0 = time.perf_counter()
    store.begin()
    for i, event in enumerate(events):
        if i % PREPARE_EVERY == 0:
            pipeline.prepare(events[i:i + PREPARE_EVERY])
        pipeline.handle(event, event.created_at)
        if i % COMMIT_EVERY == COMMIT_EVERY - 1:
            store.commit()
            store.begin()
    while (due := pipeline.engine.next_due()) is not None:
        pipeline.tick(due)
    store.commit()
    rate = len(events) / (time.perf_counter() - t0)
    store.close()
    return rate, pipeline.stats.mentions


def main(argv: list[str] | None = None) -> int:
    """Print a table of matching and pipeline throughput per configuration shape."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=20_000)
    args = ap.parse_args(argv)
    texts = load_texts()
    print(f"{'brands':>6} {'keywords':>9} {'lines':>7} {'mentions':>9} "
          f"{'match texts/s':>14} {'pipeline posts/s':>17}")
    for n_brands in (1, 2, 4):
        for n_kw in (10, 100, 1000):
            brands = make_brands(n_brands, n_kw, texts[0])
            day = make_day(args.posts, brands=brands, burst=min(600, args.posts // 50),
                           texts=texts)
            with tempfile.TemporaryDirectory(prefix="crisismon-scale-") as tmp:
                base = Path(tmp)
                feed = write_feed(day, base / "day.jsonl")
                (base / "config.toml").write_text(brand_config(brands), encoding="utf-8")
                config = load_config(base / "config.toml")
                matcher = BrandMatcher(config.brands)
                post_texts = [row["text"] for row in day]
                t0 = time.perf_counter()
                for t in post_texts:
                    matcher.match(t)
                match_rate = len(post_texts) / (time.perf_counter() - t0)
                rate, mentions = pipeline_rate(config, feed, base / "state.db")
            print(f"{n_brands:>6} {n_kw:>9} {len(day):>7,} {mentions:>9,} "
                  f"{match_rate:>14,.0f} {rate:>17,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
