"""Small builders for records, so tests say only what matters to them."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime

from monitor.config import Config
from rules.engine import EscalationEngine
from rules.policy import BrandConfig, CrisisConfig, SlaConfig
from rules.records import Action, ActionKind, Author, Mention, Post, PostKind, Score

T0 = datetime(2026, 5, 20, 2, 0, tzinfo=UTC).timestamp()  # 10:00 in Shanghai
BRAND = "快书包"
OFFICIAL_ID = "1650000001"
_ids = itertools.count(1000)

BRAND_CFG = BrandConfig(name=BRAND, keywords=(BRAND,), official_accounts=(OFFICIAL_ID,))


def author(uid: str = "42", followers: int = 100, verified: bool = False) -> Author:
    return Author(id=uid, screen_name=f"user{uid}", followers_count=followers, verified=verified)


OFFICIAL = Author(id=OFFICIAL_ID, screen_name="快书包官方", followers_count=50000, verified=True)


def post(at: float, text: str = "快书包送货太慢了", pid: str | None = None,
         who: Author | None = None, kind: PostKind = PostKind.STATUS,
         on: str | None = None, reply_to: str | None = None,
         reposts: str | None = None) -> Post:
    return Post(id=pid or str(next(_ids)), kind=kind, created_at=at, text=text,
                author=who or author(), on_status_id=on, reply_to_id=reply_to,
                reposts_id=reposts)


def official_comment(at: float, on: str, reply_to: str | None = None,
                     text: str = "您好，已私信您") -> Post:
    return post(at, text, who=OFFICIAL, kind=PostKind.COMMENT, on=on, reply_to=reply_to)


def mention(p: Post, negative: bool = True, danger: bool = False, needs_reply: bool = True,
            brand: str = BRAND, severity: str = "P3") -> Mention:
    score = Score(sentiment=0.1 if negative else 0.9, negative=negative, severity=severity,
                  terms=("中毒",) if danger else (), danger=danger)
    return Mention(post=p, brand=brand, score=score, needs_reply=needs_reply)


def action(at: float, kind: str, target: str, public: bool | None = None,
           by: str = "小王") -> Action:
    return Action(id=f"{kind}-{target}-{at}", action=ActionKind(kind), target=target, by=by,
                  created_at=at, public=public)


def config(**crisis: object) -> Config:
    cfg = Config(brands=(BRAND_CFG,))
    if crisis:
        cfg = replace(cfg, crisis=replace(CrisisConfig(), **crisis))
    return cfg


def engine(sla: SlaConfig | None = None, crisis: CrisisConfig | None = None) -> EscalationEngine:
    cfg = Config(brands=(BRAND_CFG,))
    return EscalationEngine(cfg.brands, sla or cfg.sla, crisis or cfg.crisis, cfg.tz)
