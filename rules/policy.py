"""The policy the escalation engine applies: the reply rule, crisis detection, the brands.

These are the ``[sla]``, ``[crisis]`` and ``[[brands]]`` tables of ``config.toml`` (keys and
meanings are the outside contract, INTERFACES.md section 4): ``monitor.config`` loads and
validates them into these types as parts of its ``Config``. They live here, at the bottom
of the layers with the records, so the engine needs nothing from ``monitor``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rules.records import Duration

Problem = tuple[str, str]
"""(key relative to the table, what is wrong): what a ``validate`` yields."""

H = 3600.0
M = 60.0


@dataclass(frozen=True)
class SlaConfig:
    """The reply rule: every mention gets a public official reply in time."""

    warn_at: Duration = Duration(3 * M)
    """After ``created_at``: remind the duty responder (``reply.warning``)."""
    reply_within: Duration = Duration(5 * M)
    """After ``created_at``: breached, page the supervisor (``reply.breach``)."""
    escalate_after: Duration = Duration(15 * M)
    """After ``created_at``: page leadership (``reply.escalated``)."""
    public_followup_within: Duration = Duration(30 * M)
    """After a private resolve: a public follow-up is due (``resolution.not_public``)."""

    def validate(self) -> Iterator[Problem]:
        if not 0 < self.warn_at <= self.reply_within:
            yield "warn_at", "must be positive and not after reply_within"
        if self.escalate_after < self.reply_within:
            yield "escalate_after", "must not be before reply_within"
        if self.public_followup_within <= 0:
            yield "public_followup_within", "must be positive"


@dataclass(frozen=True)
class CrisisConfig:
    """When a brand story becomes an incident, and how the incident is tracked."""

    window: tuple[Duration, Duration] = (Duration(12 * H), Duration(24 * H))
    """The crisis window: bad news spreads fastest in its first 12-24 hours."""
    checkpoints: tuple[Duration, ...] = (Duration(H), Duration(4 * H), Duration(12 * H),
                                         Duration(24 * H))
    """After ``opened``: a ``crisis.checkpoint`` at each, while the incident is open."""
    statement_due: Duration = Duration(H)
    """After ``opened``: ``crisis.escalated`` if no official statement is out."""
    burst_window: Duration = Duration(30 * M)
    """Negative mentions are counted over this sliding window to find a burst."""
    burst_min_negatives: int = 6
    """A burst needs at least this many negative mentions in the window ..."""
    burst_factor: float = 4.0
    """... and this many times the brand's own baseline for a window that long."""
    baseline_span: Duration = Duration(24 * H)
    """How much history the brand's baseline negative rate is measured over."""
    baseline_floor_per_hour: float = 1.0
    """The baseline never counts as lower than this (a new brand has no history)."""
    spread_window: Duration = Duration(H)
    """Reposts of one negative mention are counted over this window."""
    spread_min_reposts: int = 30
    """An influential negative post with this many reposts in the window opens a crisis."""
    viral_min_reposts: int = 150
    """Any negative post with this many reposts in the window opens a crisis."""
    influential_followers: int = 100_000
    """Authors with at least this many followers (or verified) are influential."""
    danger_min_posts: int = 1
    """Negative mentions with a danger term (爆炸, 中毒 ...) in the burst window to open one."""
    story_alpha: float = 0.05
    """How often a normal story may open an incident over its whole life: the story's
    negative share (one-sided binomial tail against the brand's normal share) and its speed
    are tested at every post with words, each look at a level spent out of this one
    (``rules.crisis.spent_level``: half of it while the story has 8-15 posts with words, a
    quarter at 16-31, ...); bursts are tested the same way."""
    influential_alpha: float = 0.05
    """The same, for a story whose root is a negative post by an influential author (it
    reaches many people at once: a higher value opens it on less evidence)."""
    story_share_factor: float = 1.5
    """... and its negative share must be at least this many times the brand's normal one
    (an effect size: in a story of 500 posts a rise from 20% to 26% is significant, and
    no crisis)."""
    story_min_scored: int = 8
    """A story's posts with words of their own (pure reposts are volume only) before its
    negative share is tested: fewer say nothing about the public's reaction."""
    prior_negative_share: float = 0.2
    """A brand with no history is taken to draw this share of negative posts (a Beta prior
    worth ``prior_weight`` posts; the brand's own stories update it). Chosen on the
    development set of brand stories, 5-fold cross-validated (``bench/detection.py --cv``)."""
    prior_weight: float = 20.0
    """How many posts the prior share is worth against the brand's own history."""
    prior_posts_per_hour: float = 5.0
    """A brand with no history is taken to get this many posts an hour (a Gamma prior worth
    ``prior_hours``): what a story's speed and a burst are measured against."""
    prior_hours: float = 6.0
    """How many hours of history the volume prior is worth."""
    danger_spread_posts: int = 10
    """A harm report corroborated by spread: its story has this many posts in
    ``spread_window`` (other corroboration: an influential author, a second reporter)."""
    close_factor: float = 1.5
    """Closed once negatives in the last hour are at most this times the baseline."""
    close_check_every: Duration = Duration(H)
    """After the window's end, how often to look again whether it has calmed down."""

    def validate(self) -> Iterator[Problem]:
        if not 0 < self.window[0] <= self.window[1]:
            yield "window", "needs two positive durations, the first not after the second"
        if list(self.checkpoints) != sorted(set(self.checkpoints)):
            yield "checkpoints", "must be in increasing order without repeats"
        if any(c <= 0 for c in self.checkpoints):
            yield "checkpoints", "must be positive"
        for key in ("statement_due", "burst_window", "baseline_span", "spread_window",
                    "close_check_every"):
            if getattr(self, key) <= 0:
                yield key, "must be positive"
        for key in ("burst_min_negatives", "spread_min_reposts", "viral_min_reposts",
                    "danger_min_posts"):
            if getattr(self, key) < 1:
                yield key, "must be at least 1"
        for key in ("story_alpha", "influential_alpha", "prior_negative_share"):
            if not 0 < getattr(self, key) < 1:
                yield key, "must be between 0 and 1"
        if self.story_share_factor < 1:
            yield "story_share_factor", "must be at least 1"
        for key in ("prior_weight", "prior_posts_per_hour", "prior_hours"):
            if getattr(self, key) <= 0:
                yield key, "must be positive"
        for key in ("story_min_scored", "danger_spread_posts"):
            if getattr(self, key) < 1:
                yield key, "must be at least 1"
        if self.burst_factor <= 1 or self.close_factor < 1:
            yield "burst_factor", "must be above 1 (and close_factor at least 1)"


@dataclass(frozen=True)
class BrandConfig:
    """One brand to watch (contract section 4)."""

    name: str
    """The brand's name, as alerts, routes and digests name it; unique."""
    keywords: tuple[str, ...] = ()
    """Any of these in a post makes it a mention."""
    ambiguous_keywords: tuple[str, ...] = ()
    """Count only with a ``context`` term, or as @mention / inside a #hashtag#."""
    context: tuple[str, ...] = ()
    """Terms that confirm an ambiguous keyword is about the brand."""
    exclude: tuple[str, ...] = ()
    """Phrases that veto a mention (see README: masking vs whole-post veto)."""
    official_accounts: tuple[str, ...] = ()
    """Weibo user ids (strings) of the brand's own accounts."""

    def validate(self) -> Iterator[Problem]:
        if not self.name.strip():
            yield "name", "must not be empty"
        if not self.keywords and not self.ambiguous_keywords:
            yield "keywords", "a brand needs at least one keyword or ambiguous_keyword"
        for key in ("keywords", "ambiguous_keywords", "context", "exclude"):
            if any(not t.strip() for t in getattr(self, key)):
                yield key, "has an empty term"
        if self.ambiguous_keywords and not self.context:
            yield "context", "ambiguous_keywords need context terms (or they only count as @/#)"
