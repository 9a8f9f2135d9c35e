"""How bad is one mention? P1 (worst) .. P4, with the reasons in words.

Inputs: sentiment, crisis-lexicon terms, the author's influence and the post's reach.
The rule is a short list a PR lead can read and argue with:

- P1: negative with a danger term (爆炸, 中毒, 死亡 ...), or negative with complaint terms
  from a super author, or from a strong author with big reach;
- P2: negative and influential (strong tier: verified, many followers), or big reach,
  or strong complaint terms (曝光, 315, 维权 ...);
- P3: negative;
- P4: not negative (praise and questions still get the 5-minute reply).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from monitor.model import Author


class Tier(StrEnum):
    """Author tiers a team may keep in a CSV: how far their word travels."""

    NONE = "none"
    MICRO = "micro"
    WEAK = "weak"
    STRONG = "strong"
    SUPER = "super"


TIER_RANK = {Tier.NONE: 0, Tier.MICRO: 1, Tier.WEAK: 2, Tier.STRONG: 3, Tier.SUPER: 4}


@dataclass(frozen=True, slots=True)
class SeverityPolicy:
    """Thresholds of the table above (defaults suit a consumer brand)."""

    influential_followers: int = 100_000
    big_reach: int = 100
    """Reposts + comments that make a post's reach big."""
    complaint_weight: float = 3.0
    """Summed lexicon weight of complaint terms that counts as a strong complaint."""


@dataclass(frozen=True, slots=True)
class Assessment:
    severity: str
    reasons: tuple[str, ...]


def influence_tier(author: Author, tier: Tier | None, policy: SeverityPolicy) -> Tier:
    """The author's tier: the team's CSV wins; otherwise guessed from followers and badge."""
    if tier is not None:
        return tier
    f = author.followers_count
    if f >= 10 * policy.influential_followers:
        return Tier.SUPER
    if f >= policy.influential_followers or (author.verified and f >= 10_000):
        return Tier.STRONG
    if f >= 10_000 or author.verified:
        return Tier.WEAK
    if f >= 500:
        return Tier.MICRO
    return Tier.NONE


def assess(sentiment: float, negative: bool, danger_terms: tuple[str, ...],
           complaint_weight: float, complaint_terms: tuple[str, ...], author: Author,
           reach: int, tier: Tier | None, policy: SeverityPolicy) -> Assessment:
    """Severity and reasons for one mention."""
    reasons: list[str] = []
    if negative:
        reasons.append(f"负面（正面概率 {sentiment:.2f}）")
    t = influence_tier(author, tier, policy)
    rank = TIER_RANK[t]
    if rank >= 3:
        kind = "超级" if t is Tier.SUPER else "强"
        badge = "，认证" if author.verified else ""
        reasons.append(f"{kind}影响力作者（粉丝 {author.followers_count:,}{badge}）")
    if reach >= policy.big_reach:
        reasons.append(f"传播量大（转发+评论 {reach}）")
    if danger_terms:
        reasons.append("危险词：" + "、".join(danger_terms))
    if complaint_terms:
        reasons.append("投诉词：" + "、".join(complaint_terms))
    strong_complaint = complaint_weight >= policy.complaint_weight
    big = reach >= policy.big_reach
    if not negative:
        return Assessment("P4", tuple(reasons) or ("非负面",))
    if danger_terms or (complaint_terms and (rank >= 4 or (rank >= 3 and big))):
        return Assessment("P1", tuple(reasons))
    if rank >= 3 or big or strong_complaint:
        return Assessment("P2", tuple(reasons))
    return Assessment("P3", tuple(reasons))
