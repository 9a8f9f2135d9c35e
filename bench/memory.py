"""Memory of the escalation engine: 1,000,000 open mentions and 10,000 incidents.

    python bench/memory.py [--mentions 1000000] [--brands 10000]

Drives ``rules.engine.EscalationEngine`` through its public inputs only, as the pipeline
does: ``--brands`` brands (all in one config), each hit by an equal share of the mentions
as a burst of negative posts within 20 minutes, so every brand opens one crisis incident
(10,000 incidents by default). No deadline is advanced: every mention stays open, with its
reply clock, deadline and repost counter held in memory. Texts are real Weibo posts from
the sentiment train files (~45 characters each). Prints resident memory (RSS, from
/proc/self/status) before and after, and bytes per mention.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.config import Config
from rules.engine import EscalationEngine
from rules.policy import BrandConfig
from rules.records import Author, Mention, Post, PostKind, Score

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sentiment" / "train.jsonl"
TARGET_BYTES = 1 << 30
T0 = 1_779_206_400.0 + 15 * 3600


def rss() -> int:
    """Resident set size of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    """Fill the engine, print RSS; exit 0 (the target is reported, not enforced)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mentions", type=int, default=1_000_000)
    ap.add_argument("--brands", type=int, default=10_000)
    args = ap.parse_args(argv)

    with DATA.open(encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh if line.strip()]
    brands = tuple(BrandConfig(name=f"品牌{i:05d}", keywords=(f"品牌{i:05d}",),
                               official_accounts=(str(9_000_000_000 + i),))
                   for i in range(args.brands))
    cfg = Config(brands=brands)
    gc.collect()
    base = rss()
    engine = EscalationEngine(cfg.brands, cfg.sla, cfg.crisis, cfg.tz)
    per_brand = max(1, args.mentions // args.brands)
    t0 = time.perf_counter()
    n = 0
    for b, brand in enumerate(brands):
        for k in range(per_brand):
            if n >= args.mentions:
                break
            at = T0 + k * (1200.0 / per_brand) + b * 1e-4
            uid = str(2_000_000_000 + n % 500_000)
            post = Post(id=str(4_900_000_000_000_000 + n), kind=PostKind.STATUS, created_at=at,
                        text=f"{brand.name} {texts[n % len(texts)]}",
                        author=Author(id=uid, screen_name=f"用户{uid[-6:]}",
                                      followers_count=n % 5000),
                        reposts_count=n % 3)
            score = Score(sentiment=0.1, negative=True, severity="P3", terms=("投诉",),
                          reasons=("negative",))
            engine.on_mention(Mention(post=post, brand=brand.name, score=score,
                                      needs_reply=True, keywords=(brand.name,)), at)
            n += 1
        # The pipeline hands the projections to the store after each event; here nobody
        # reads them, so they are dropped as the pipeline would after flushing.
        engine.dirty_mentions.clear()
        engine.dirty_incidents.clear()
    fill_s = time.perf_counter() - t0
    gc.collect()
    used = rss()
    open_mentions = sum(1 for c in engine.clocks.values() if c.is_open)
    print(f"engine: {open_mentions:,} open mentions, {len(engine.incidents):,} incidents, "
          f"{engine.pending():,} pending deadlines, filled in {fill_s:.1f}s")
    print(f"RSS: {used / 2**20:,.0f} MiB total ({base / 2**20:,.0f} MiB before the engine; "
          f"{(used - base) / max(1, n):,.0f} bytes per mention incl. its post text)")
    ok = used < TARGET_BYTES
    print(f"target: {'PASS' if ok else 'MISS'} {used / 2**20:,.0f} MiB < 1024 MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
