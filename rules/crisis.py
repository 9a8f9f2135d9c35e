"""Crisis detection: when a brand story is turning into a crisis. Pure; times are handed in.

A **story** is a post that names the brand plus every repost and comment of it, whether or
not their own words name the brand (most reposts don't). Its volume, speed, reach and
negativity count all of its posts. Three triggers open an incident (one per brand at a
time, at most one per story):

- **spread** (a negative story): the story's negative share is improbably high against
  the brand's own normal share (one-sided binomial tail; a Beta prior stands in for a
  brand with no history), it is moving (its posts in the last ``spread_window`` are
  improbably many against the brand's normal volume, a Poisson tail with a Gamma prior),
  and it is *about* the brand (``rules.aboutness``: a landmark, an object, a source or a
  giveaway is not). The story is tested again at every post with words, so one look's
  level is spent out of the story's ``story_alpha`` (``spent_level``), not ``story_alpha``
  itself. A negative root by an influential author spends ``influential_alpha``. Where
  the reposts carry no
  words (counter growth), a negative root about the brand opens on speed alone
  (``spread_min_reposts`` influential / ``viral_min_reposts`` anyone).
- **danger**: a post reporting harm (poisoning, fire, injury, death) about the brand, once
  corroborated: the author is influential, or its story spreads
  (``danger_spread_posts`` in ``spread_window``), or a second author reports harm in
  another story. A single uncorroborated report is a P1 *mention*, not an incident.
- **burst**: independent negative posts (each its own story) in ``burst_window``,
  improbably many against the brand's normal rate of them (Poisson tail, at a level spent
  the same way), at least ``burst_min_negatives`` and ``burst_factor`` times that rate.

Everything here is plain data (dataclasses of numbers, lists and dicts) so the engine's
state can be snapshotted, and deterministic (no clock, no randomness, no hash order).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import StrEnum

from rules.aboutness import Role, brand_role
from rules.policy import CrisisConfig
from rules.records import Score
from rules.stats import binom_sf, poisson_sf

HOUR = 3600.0


class Trigger(StrEnum):
    """Why an incident was opened."""

    BURST = "burst"
    DANGER = "danger"
    SPREAD = "spread"


@dataclass(slots=True)
class Incident:
    """One crisis of one brand, tracked through its window."""

    id: str
    brand: str
    opened_at: float
    trigger: Trigger
    trigger_post_id: str | None
    severity: str
    level: int
    baseline_per_hour: float
    """Frozen at opening: 'back to baseline' means back to what was normal before."""
    detail: str
    story_id: str | None = None
    """The root post of the story that opened it (None for a burst of separate posts)."""
    statement_at: float | None = None
    statement_post_id: str | None = None
    closed_at: float | None = None
    mentions: int = 0
    negatives: int = 0
    acked_by: str | None = None
    resolved_by: str | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@dataclass(slots=True)
class Times:
    """A sorted list of event times with weights: count what fell in a time range."""

    at: list[float] = field(default_factory=list)
    cumulative: list[int] = field(default_factory=list)
    resolution: float = 0.0
    """0: every time kept exactly. Else times are rounded down to multiples of it, and
    events of one bucket share an entry: memory bounded by the time covered, not by the
    number of events (a brand's history of every post, a million mentions a day)."""

    def add(self, t: float, n: int = 1) -> None:
        if self.resolution:
            t = t - t % self.resolution
            if self.at and self.at[-1] == t:
                self.cumulative[-1] += n
                return
            i = bisect.bisect_left(self.at, t)
            if i < len(self.at) and self.at[i] == t:  # a late arrival into a known bucket
                for j in range(i, len(self.cumulative)):
                    self.cumulative[j] += n
                return
        if not self.at or t >= self.at[-1]:
            self.at.append(t)
            self.cumulative.append((self.cumulative[-1] if self.cumulative else 0) + n)
            return
        # A late arrival: rare, so rebuilding the running totals is fine.
        i = bisect.bisect_right(self.at, t)
        self.at.insert(i, t)
        base = self.cumulative[i - 1] if i else 0
        self.cumulative.insert(i, base + n)
        for j in range(i + 1, len(self.cumulative)):
            self.cumulative[j] += n

    def count(self, start: float, end: float) -> int:
        """Weight of the times in ``(start, end]``."""
        hi = bisect.bisect_right(self.at, end)
        lo = bisect.bisect_right(self.at, start)
        if hi <= lo:
            return 0
        return self.cumulative[hi - 1] - (self.cumulative[lo - 1] if lo else 0)

    def forget_before(self, t: float) -> None:
        """Drop times at or before ``t`` (bounded memory on a long-running daemon)."""
        i = bisect.bisect_right(self.at, t)
        if i > 1024:  # amortised: trim in chunks
            del self.at[:i]
            del self.cumulative[:i]


MINUTE = 60.0


def _coarse() -> Times:
    return Times(resolution=MINUTE)


def is_negative(score: Score) -> bool:
    """Negative polarity, as the scoring stage decided it (three-class sentiment:
    ``polarity`` is ``negative`` exactly when ``negative`` is set). The one place the
    detector reads a post's polarity."""
    return score.negative


@dataclass(slots=True)
class BrandActivity:
    """A brand's recent posts: its normal volume and negative share, and bursts."""

    negatives: Times = field(default_factory=_coarse)
    """Negative posts with words of their own, in any story, per minute (as all of a
    brand's history: its windows are half an hour and more)."""
    scored: Times = field(default_factory=_coarse)
    """Posts with words of their own (what a negative share is a share of), per minute."""
    posts: Times = field(default_factory=_coarse)
    """Every post of the brand's stories (volume), per minute."""
    originals: Times = field(default_factory=_coarse)
    """Negative posts that start a story of their own (a burst counts these)."""
    danger: Times = field(default_factory=Times)
    harm: list[tuple[float, str, str]] = field(default_factory=list)
    """Recent harm reports: (time, author id, story root id), oldest first, bounded."""
    first_seen: float | None = None

    def seen(self, t: float) -> None:
        if self.first_seen is None or t < self.first_seen:
            self.first_seen = t

    def _known_hours(self, end: float, cfg: CrisisConfig) -> float:
        known = end - (self.first_seen if self.first_seen is not None else end)
        return max(0.0, min(cfg.baseline_span, known)) / HOUR

    def baseline_per_hour(self, now: float, cfg: CrisisConfig) -> float:
        """Negative posts per hour before the current burst window, floored (what an
        incident's close compares with)."""
        end = now - cfg.burst_window
        span = max(HOUR, self._known_hours(end, cfg) * HOUR)
        rate = self.negatives.count(end - span, end) / (span / HOUR)
        return max(cfg.baseline_floor_per_hour, rate)

    def posts_per_hour(self, now: float, window: float, cfg: CrisisConfig) -> float:
        """The brand's normal volume before the last ``window``: the Gamma prior's
        ``prior_posts_per_hour`` over ``prior_hours``, updated by what was seen."""
        end = now - window
        hours = self._known_hours(end, cfg)
        seen = self.posts.count(end - hours * HOUR, end) if hours else 0
        return (cfg.prior_posts_per_hour * cfg.prior_hours + seen) / (cfg.prior_hours + hours)

    def originals_per_hour(self, now: float, cfg: CrisisConfig) -> float:
        """The brand's normal rate of negative posts that start their own story; a new
        brand is taken to have ``baseline_floor_per_hour`` of them (Gamma prior)."""
        end = now - cfg.burst_window
        hours = self._known_hours(end, cfg)
        seen = self.originals.count(end - hours * HOUR, end) if hours else 0
        prior = cfg.baseline_floor_per_hour
        return (prior * cfg.prior_hours + seen) / (cfg.prior_hours + hours)

    def normal_share(self, now: float, cfg: CrisisConfig, story: Story | None = None) -> float:
        """The brand's normal negative share (Beta posterior mean), leaving ``story`` out."""
        start = now - cfg.baseline_span
        n = self.scored.count(start, now)
        k = self.negatives.count(start, now)
        if story is not None:
            n = max(0, n - story.scored.count(start, now))
            k = max(0, k - story.negatives.count(start, now))
        a = cfg.prior_negative_share * cfg.prior_weight
        return (a + k) / (cfg.prior_weight + n)

    def forget(self, now: float, cfg: CrisisConfig) -> None:
        horizon = now - cfg.baseline_span - cfg.burst_window - cfg.window[1]
        for times in (self.negatives, self.scored, self.posts, self.originals, self.danger):
            times.forget_before(horizon)
        self.harm = [h for h in self.harm if h[0] > horizon]


def harm_words(terms: tuple[str, ...], reasons: tuple[str, ...]) -> str:
    """The harm a post reports, in the scoring stage's words: its ``伤害报告…`` reason
    (what kind of harm, and the words that say it), else its first terms."""
    for reason in reasons:
        if reason.startswith("伤害报告"):
            return reason[len("伤害报告"):].lstrip("：: ")
    return "、".join(terms[:3])


@dataclass(slots=True)
class Story:
    """A post naming the brand and all its reposts and comments."""

    root_id: str
    brand: str
    started: float
    keywords: tuple[str, ...]
    """The brand's names found in the root (what ``rules.aboutness`` looks for)."""
    author: str
    """Who posted the root (screen name, for the page)."""
    author_id: str
    followers: int
    influential: bool
    root_negative: bool
    text: str
    """The root's words (the claim), for the page."""
    posts: Times = field(default_factory=Times)
    scored: Times = field(default_factory=_coarse)
    negatives: Times = field(default_factory=_coarse)
    n_posts: int = 0
    n_scored: int = 0
    n_negative: int = 0
    harm: int = 0
    """Harm reports in the story's own claim, its root post. A reposter's 太可怕了 is a
    reaction, counted as negative, not a report."""
    harm_terms: str = ""
    """What the harm report says, for the page (``harm_words``)."""
    reach: int = 0
    """Followers of everyone who posted in it (an upper bound on who saw it)."""
    last_at: float = 0.0
    incident_id: str | None = None
    role_: Role | None = None
    """``role``, once worked out (only a story that could open an incident needs it)."""

    @property
    def role(self) -> Role:
        """What the brand is in the root's words (``rules.aboutness``)."""
        if self.role_ is None:
            self.role_ = brand_role(self.text, self.keywords)
        return self.role_

    @property
    def about_brand(self) -> bool:
        """Can this story be the brand's crisis? Not if the brand is a landmark, an object,
        a source, or the story a giveaway."""
        return self.role not in (Role.PASSING, Role.PROMOTION)

    def add(self, t: float, followers: int, scored: bool, negative: bool) -> None:
        self.posts.add(t)
        self.n_posts += 1
        self.reach += followers
        self.last_at = max(self.last_at, t)
        if scored:
            self.scored.add(t)
            self.n_scored += 1
            if negative:
                self.negatives.add(t)
                self.n_negative += 1


@dataclass(frozen=True, slots=True)
class Detection:
    """A trigger fired: what, how bad, and words for the page."""

    trigger: Trigger
    severity: str
    detail: str


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _span(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} 分钟" if minutes < 120 else f"{minutes / 60:.1f} 小时"


def _who(story: Story) -> str:
    tag = "，有影响力" if story.influential else ""
    return f"@{story.author}（粉丝 {story.followers:,}{tag}）"


def _claim(story: Story, limit: int = 40) -> str:
    text = " ".join(story.text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def spent_level(alpha: float, n: int, first: int) -> float:
    """The level of one look of a test that is repeated as its evidence grows.

    A story is tested again at every post with words (a burst at every negative post): a
    normal story looked at 300 times at a fixed level crosses it far more often than that
    level says. So the looks are grouped into doublings of the evidence ``n`` from the
    first look ``first`` (epoch 0: ``first`` <= n < 2·``first``, epoch 1: up to
    4·``first``, ...) and epoch j may spend alpha / 2^(j+1): the epochs together spend at
    most ``alpha`` (alpha spending over the story's life). Looks inside one epoch share
    most of their posts (the tests at n and 1.5·n are strongly correlated), so an epoch is
    counted as one look: an approximation, not an exact family-wise bound. Early looks get
    the largest share, so a story that is clear early still opens early; a big story that
    drifts a little above normal after hundreds of posts does not."""
    epoch, edge = 0, 2 * max(1, first)
    while n >= edge:
        epoch += 1
        edge *= 2
    return alpha / 2 ** (epoch + 1)


def speed_surprise(story: Story, activity: BrandActivity, now: float,
                   cfg: CrisisConfig) -> tuple[int, float, float]:
    """Posts of ``story`` in the last ``spread_window``, the brand's normal count for
    that long, and how improbable the first is under the second (Poisson tail)."""
    n = story.posts.count(now - cfg.spread_window, now)
    normal = activity.posts_per_hour(now, cfg.spread_window, cfg) * cfg.spread_window / HOUR
    return n, normal, poisson_sf(n, normal)


def detect_story(story: Story, activity: BrandActivity, now: float,
                 cfg: CrisisConfig) -> Detection | None:
    """A story about the brand turning negative, fast, against the brand's own normal."""
    if not story.about_brand or story.n_scored < cfg.story_min_scored:
        return None
    share0 = activity.normal_share(now, cfg, story)
    k, n = story.n_negative, story.n_scored
    if k < cfg.story_share_factor * share0 * n:
        return None  # a real but small rise: a big story makes any rise "significant"
    p = binom_sf(k, n, share0)
    early = story.influential and story.root_negative
    alpha = spent_level(cfg.influential_alpha if early else cfg.story_alpha, n,
                        cfg.story_min_scored)
    if p >= alpha:
        return None
    moving, normal, p_speed = speed_surprise(story, activity, now, cfg)
    if p_speed >= alpha:
        return None
    # P1: an influential author's story (it reaches many at once) or one far beyond chance.
    severity = "P1" if story.influential or p < alpha * alpha else "P2"
    detail = (f"「{_claim(story)}」{_who(story)}：{_span(now - story.started)}内"
              f"共 {story.n_posts} 条（原帖及转发、评论），其中有自己话语的 {n} 条里 {k} 条负面"
              f"（{_pct(k / n)}，该品牌平时约 {_pct(share0)}，纯属偶然的概率 {p:.0e}）；"
              f"近 {_span(cfg.spread_window)} {moving} 条（平时约 {normal:.1f} 条），"
              f"覆盖粉丝约 {story.reach:,}")
    return Detection(Trigger.SPREAD, severity, detail)


def detect_wordless_spread(story: Story, activity: BrandActivity, now: float,
                           cfg: CrisisConfig) -> Detection | None:
    """A negative root about the brand reposted fast when the reposts carry no words to
    read (counter growth, pure reposts): its speed is all there is to go on."""
    if not (story.about_brand and story.root_negative) or \
            story.n_scored >= cfg.story_min_scored:
        return None
    moving, normal, p_speed = speed_surprise(story, activity, now, cfg)
    reposts = moving - (1 if story.started > now - cfg.spread_window else 0)  # not the root
    needed = cfg.spread_min_reposts if story.influential else cfg.viral_min_reposts
    if reposts < needed or p_speed >= spent_level(cfg.story_alpha, reposts, needed):
        return None
    detail = (f"「{_claim(story)}」{_who(story)}的负面微博 {_span(cfg.spread_window)}内"
              f"被转发 {reposts} 次（该品牌平时 {_span(cfg.spread_window)}约 {normal:.1f} 条）")
    return Detection(Trigger.SPREAD, "P1" if story.influential else "P2", detail)


def detect_danger(story: Story, activity: BrandActivity, now: float,
                  cfg: CrisisConfig) -> Detection | None:
    """A harm report about the brand, corroborated: influential author, a story that
    spreads, or another author reporting harm in another story."""
    if not story.about_brand or story.harm < cfg.danger_min_posts:
        return None
    since = now - cfg.burst_window
    others = sorted({a for t, a, root in activity.harm
                     if t > since and root != story.root_id and a != story.author_id})
    moving = story.posts.count(now - cfg.spread_window, now)
    terms = story.harm_terms or "伤害"
    if not terms.startswith("（"):
        terms = "：" + terms
    if story.influential:
        why = "作者影响力大，一发出就被大量看到"
    elif moving >= cfg.danger_spread_posts:
        why = f"{_span(cfg.spread_window)}内已被转发/评论 {moving} 条"
    elif others:
        why = f"另有 {len(others)} 位用户独立报告伤害"
    else:
        return None
    return Detection(Trigger.DANGER, "P1",
                     f"「{_claim(story)}」{_who(story)}报告伤害{terms}；{why}")


def detect_burst(activity: BrandActivity, now: float, cfg: CrisisConfig) -> Detection | None:
    """Many separate negative posts at once, well above this brand's own normal."""
    n = activity.originals.count(now - cfg.burst_window, now)
    rate = activity.originals_per_hour(now, cfg)
    normal = rate * cfg.burst_window / HOUR
    if n < max(float(cfg.burst_min_negatives), cfg.burst_factor * normal):
        return None
    p = poisson_sf(n, normal)
    alpha = spent_level(cfg.story_alpha, n, cfg.burst_min_negatives)
    if p >= alpha:
        return None
    severity = "P1" if p < alpha ** 2 and n >= 2 * cfg.burst_min_negatives else "P2"
    detail = (f"{_span(cfg.burst_window)}内 {n} 条各自独立的负面微博（不是同一条的转发）"
              f"（该品牌平时约 {normal:.1f} 条，纯属偶然的概率 {p:.0e}）")
    return Detection(Trigger.BURST, severity, detail)
