"""Synthetic Weibo days for the benchmarks, made from real Weibo texts.

Texts come from the sentiment *train* files (``../shared/data/sentiment``); brand keywords
are injected into a fraction of them, official accounts answer some mentions, a burst of
negative mentions hits the first brand in the afternoon, and some mentions are reposted.
Everything is drawn from one seeded ``random.Random``, so the same arguments always give
the same feed. The data is written to a temporary directory by the caller, never committed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_DIR.parent / "shared" / "data" / "sentiment"
TEXT_FILES = ("train.jsonl", "human_train.jsonl")
DAY0 = 1_779_206_400.0
"""2026-05-20 00:00 +08:00: the synthetic day starts here."""
OFFICIAL_BASE = 7_100_000_000


@dataclass(frozen=True)
class BrandSpec:
    """One synthetic brand: its name, keywords and official account ids."""

    name: str
    keywords: tuple[str, ...]
    official: tuple[str, ...]


BRANDS = (
    BrandSpec("快书包", ("快书包", "kuaishubao"), (str(OFFICIAL_BASE + 1),)),
    BrandSpec("小满咖啡", ("小满咖啡", "小满coffee"), (str(OFFICIAL_BASE + 2),)),
    BrandSpec("蜜雪冰城", ("蜜雪冰城", "雪王"), (str(OFFICIAL_BASE + 3), str(OFFICIAL_BASE + 4))),
)
REPLIES = ("您好，非常抱歉给您带来不便，已私信您处理。", "感谢反馈，我们马上核实！",
           "亲，请私信订单号，我们尽快解决。", "谢谢支持，欢迎再来~")


def load_texts(data_dir: Path = DATA_DIR) -> tuple[list[str], list[str]]:
    """All texts of the train files, and the negative ones (for the burst)."""
    texts: list[str] = []
    negative: list[str] = []
    for name in TEXT_FILES:
        with (data_dir / name).open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    texts.append(row["text"])
                    if int(row["label"]) == 0:
                        negative.append(row["text"])
    return texts, negative


def brand_config(brands: tuple[BrandSpec, ...] = BRANDS) -> str:
    """A config.toml for the synthetic brands (contract defaults otherwise)."""
    out = ['timezone = "Asia/Shanghai"\n', "[scoring]\nmodel = \"weibo\"\n"]
    for b in brands:
        kws = ", ".join(json.dumps(k, ensure_ascii=False) for k in b.keywords)
        offs = ", ".join(f'"{o}"' for o in b.official)
        out.append(f'[[brands]]\nname = "{b.name}"\nkeywords = [{kws}]\n'
                   f"official_accounts = [{offs}]\n")
    return "\n".join(out)


def _inject(rng: random.Random, text: str, keyword: str) -> str:
    style = rng.random()
    if style < 0.3:
        return f"#{keyword}# {text}"
    if style < 0.5:
        return f"@{keyword} {text}"
    cut = rng.randrange(len(text) + 1)
    return text[:cut] + keyword + text[cut:]


def make_day(posts: int = 100_000, *, seed: int = 20260520, mention_share: float = 0.15,
             reply_share: float = 0.4, burst: int = 600, repost_share: float = 0.05,
             brands: tuple[BrandSpec, ...] = BRANDS,
             texts: tuple[list[str], list[str]] | None = None) -> list[dict[str, Any]]:
    """A day of ``posts`` statuses/comments (plus official replies), sorted by time."""
    rng = random.Random(seed)
    pool, negative = texts or load_texts()
    span = 86_400.0
    lines: list[dict[str, Any]] = []
    mentions: list[tuple[float, int, BrandSpec]] = []
    next_id = 4_900_000_000_000_000

    def user() -> dict[str, Any]:
        uid = 2_000_000_000 + rng.randrange(50_000)
        followers = int(rng.lognormvariate(5, 2))
        return {"id": uid, "screen_name": f"用户{uid % 100_000}",
                "followers_count": followers, "verified": followers > 200_000}

    def status(at: float, text: str, **extra: Any) -> dict[str, Any]:
        nonlocal next_id
        next_id += 1
        return {"id": next_id, "created_at": _iso(at), "text": text, "user": user(),
                "reposts_count": 0, "comments_count": 0, "attitudes_count": 0, **extra}

    burst_at = DAY0 + 15 * 3600.0
    for _ in range(posts - burst):
        at = DAY0 + rng.random() * span
        text = rng.choice(pool)
        if rng.random() < mention_share:
            brand = rng.choice(brands)
            text = _inject(rng, text, rng.choice(brand.keywords))
            post = status(at, text)
            mentions.append((at, post["id"], brand))
        elif mentions and rng.random() < repost_share:
            src_at, src, _ = rng.choice(mentions[-200:])
            post = status(max(at, src_at + 1), "转发微博", retweeted_status={"id": src})
        else:
            post = status(at, text)
        lines.append(post)
    for _ in range(burst):  # a negative storm about the first brand, within 20 minutes
        at = burst_at + rng.random() * 1200.0
        text = _inject(rng, rng.choice(negative), brands[0].keywords[0])
        lines.append(status(at, text))
    for at, mid, brand in mentions:
        if rng.random() < reply_share:
            reply_at = at + rng.choice((60.0, 150.0, 240.0, 420.0, 1200.0))
            next_id += 1
            lines.append({
                "id": next_id, "created_at": _iso(reply_at), "text": rng.choice(REPLIES),
                "user": {"id": int(brand.official[0]), "screen_name": f"{brand.name}官方",
                         "followers_count": 500_000, "verified": True},
                "reposts_count": 0, "comments_count": 0, "attitudes_count": 0,
                "status": {"id": mid}})
    lines.sort(key=lambda r: (r["created_at"], r["id"]))
    return lines


def _iso(at: float) -> str:
    from datetime import datetime, timedelta, timezone

    return datetime.fromtimestamp(at, timezone(timedelta(hours=8))).isoformat(
        timespec="seconds")


def write_feed(lines: list[dict[str, Any]], path: Path) -> Path:
    """Write a feed as JSON lines."""
    with path.open("w", encoding="utf-8") as fh:
        for row in lines:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
