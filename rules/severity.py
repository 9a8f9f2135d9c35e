"""How bad is one mention? P1 (worst) .. P4, with the reasons in words.

Inputs: what the post says happened (``rules.harm``: harm cues, grievance cues, read without
the sentiment model), sentiment, crisis-lexicon terms, the author's influence and the
post's reach. The rule is a short list a PR lead can read and argue with:

- P1: the post reports harm (poisoning, fire, explosion, injury, death, a child in danger, a
  product failure that could hurt someone: ``Reading.harm``) and is not clearly positive;
  or a complaint (negative, or with grievance cues) with complaint terms from a super author,
  or from a strong author with big reach;
- P2: a complaint (money, service, fraud) whose strength reaches ``grievance_p2`` (grievance
  cue weight, +1 when the model calls it negative, +1 more when it is confidently negative:
  P(negative) >= ``confident_negative``), or one that is influential (strong tier) or has
  big reach, or negative with strong complaint terms (曝光, 315, 维权 ...);
- P3: negative, or a weak complaint (one cue, the model not negative);
- P4: the rest (praise and questions still get the 5-minute reply).

Harm does not wait for the sentiment model: it reads factual reports of harm as neutral.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rules.harm import NOTHING, Reading
from rules.records import Author


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
    clearly_positive: float = 0.8
    """P(positive) at or above which a post is clearly positive: its harm words are not a
    report (这款灭火器太好用了，厨房着火一下就扑灭了) and its grievance words not a complaint."""
    grievance_p2: float = 2.0
    """Complaint strength (grievance cue weight, +1 when negative, +1 when confidently
    negative) that ranks P2."""
    confident_negative: float = 0.8
    """P(negative) at or above which a negative post is confidently negative: the model's
    confidence counts as strength, since cue lists miss much of how people complain.
    Chosen on the dev parts of tests/data/severity_posts.jsonl as the lowest value that
    ranks at most 5 % of benign posts P2 (4 of 84 there)."""


@dataclass(frozen=True, slots=True)
class Assessment:
    severity: str
    reasons: tuple[str, ...]
    danger: bool = False
    """The post reports real harm (and is not clearly positive)."""


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
           reach: int, tier: Tier | None, policy: SeverityPolicy,
           harm: Reading | None = None, grievance: Reading = NOTHING,
           p_negative: float = 0.0, acts: tuple[str, ...] = ()) -> Assessment:
    """Severity and reasons for one mention.

    ``acts`` are what the post does (``rules.acts``: a question, a notice ...), already
    weighed into ``sentiment`` and ``negative``; they are named in the reasons.
    ``harm`` is the post's harm reading; without one, ``danger_terms`` stand for a harm
    report (a caller that has only terms). ``grievance`` is its grievance reading.
    """
    reasons: list[str] = []
    positive = sentiment >= policy.clearly_positive
    if harm is None:
        harm = Reading(2.0, danger_terms, strongest=2.0) if danger_terms else NOTHING
    danger = harm.harm and not positive
    complaint = grievance.weight >= 1.0 and not positive
    if negative:
        reasons.append(f"负面（正面概率 {sentiment:.2f}）")
    if acts:
        reasons.append("非投诉：" + "、".join(acts))
    t = influence_tier(author, tier, policy)
    rank = TIER_RANK[t]
    if rank >= 3:
        kind = "超级" if t is Tier.SUPER else "强"
        badge = "，认证" if author.verified else ""
        reasons.append(f"{kind}影响力作者（粉丝 {author.followers_count:,}{badge}）")
    if reach >= policy.big_reach:
        reasons.append(f"传播量大（转发+评论 {reach}）")
    if danger:
        kinds = f"（{harm.kind_words()}）" if harm.kinds else ""
        reasons.append(f"伤害报告{kinds}：" + "、".join(harm.terms))
    elif harm.harm:
        reasons.append("危险词但明显正面：" + "、".join(harm.terms))
    elif harm.dropped:
        reasons.append("危险词不计：" + "、".join(f"{term}（{why}）" for term, why in harm.dropped))
    if complaint:
        reasons.append(f"投诉（{grievance.kind_words()}）：" + "、".join(grievance.terms))
    if complaint_terms:
        reasons.append("投诉词：" + "、".join(complaint_terms))
    confident = negative and p_negative >= policy.confident_negative
    if confident:
        reasons.append(f"强烈负面（负面概率 {p_negative:.2f}）")
    strength = grievance.weight * complaint + negative + confident
    strong_complaint = complaint_weight >= policy.complaint_weight
    big = reach >= policy.big_reach
    grieves = negative or complaint
    if danger or (grieves and (complaint_terms or complaint)
                  and (rank >= 4 or (rank >= 3 and big))):
        return Assessment("P1", tuple(reasons), danger)
    if not grieves:
        return Assessment("P4", tuple(reasons) or ("非负面",), danger)
    if rank >= 3 or big or strength >= policy.grievance_p2 or (negative and strong_complaint):
        return Assessment("P2", tuple(reasons), danger)
    return Assessment("P3", tuple(reasons), danger)
