"""Crisis detection: when a brand story is turning into a crisis. Pure; times are handed in.

Three triggers (any one opens an incident, one per brand story):
- **burst**: negative mentions in the last ``burst_window`` reach both
  ``burst_min_negatives`` and ``burst_factor`` times the brand's own baseline;
- **danger**: negative mentions carrying a danger term (爆炸, 中毒, 死亡, 打人 ...);
- **spread**: one negative status reposted fast: ``spread_min_reposts`` in
  ``spread_window`` from an influential author, or ``viral_min_reposts`` from anyone.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import StrEnum

from monitor.config import CrisisConfig

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

    def add(self, t: float, n: int = 1) -> None:
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


@dataclass(slots=True)
class BrandActivity:
    """A brand's recent negative mentions, for bursts and its baseline."""

    negatives: Times = field(default_factory=Times)
    danger: Times = field(default_factory=Times)
    first_seen: float | None = None

    def seen(self, t: float) -> None:
        if self.first_seen is None or t < self.first_seen:
            self.first_seen = t

    def baseline_per_hour(self, now: float, cfg: CrisisConfig) -> float:
        """Negative mentions per hour before the current burst window, floored."""
        end = now - cfg.burst_window
        known = end - (self.first_seen if self.first_seen is not None else end)
        span = max(HOUR, min(cfg.baseline_span, known))
        rate = self.negatives.count(end - span, end) / (span / HOUR)
        return max(cfg.baseline_floor_per_hour, rate)

    def burst_threshold(self, now: float, cfg: CrisisConfig) -> float:
        per_window = self.baseline_per_hour(now, cfg) * cfg.burst_window / HOUR
        return max(float(cfg.burst_min_negatives), cfg.burst_factor * per_window)

    def forget(self, now: float, cfg: CrisisConfig) -> None:
        horizon = now - cfg.baseline_span - cfg.burst_window - cfg.window[1]
        self.negatives.forget_before(horizon)
        self.danger.forget_before(horizon)


@dataclass(frozen=True, slots=True)
class Detection:
    """A trigger fired: what, how bad, and words for the page."""

    trigger: Trigger
    severity: str
    detail: str


def detect_burst(activity: BrandActivity, now: float, cfg: CrisisConfig) -> Detection | None:
    """A burst of negatives well above this brand's own normal."""
    n = activity.negatives.count(now - cfg.burst_window, now)
    threshold = activity.burst_threshold(now, cfg)
    if n < threshold:
        return None
    severity = "P1" if n >= 2 * threshold else "P2"
    minutes = int(cfg.burst_window // 60)
    base = activity.baseline_per_hour(now, cfg)
    detail = f"{minutes}分钟内负面提及 {n} 条（基线 {base:.1f} 条/小时，阈值 {threshold:.0f}）"
    return Detection(Trigger.BURST, severity, detail)


def detect_danger(activity: BrandActivity, now: float, cfg: CrisisConfig,
                  terms: tuple[str, ...]) -> Detection | None:
    """Negative posts that speak of danger (explosion, poisoning, death, violence)."""
    n = activity.danger.count(now - cfg.burst_window, now)
    if n < cfg.danger_min_posts:
        return None
    return Detection(Trigger.DANGER, "P1", f"负面提及含危险词：{'、'.join(terms)}")


def detect_spread(reposts: Times, now: float, cfg: CrisisConfig, influential: bool,
                  followers: int) -> Detection | None:
    """One negative post spreading fast."""
    n = reposts.count(now - cfg.spread_window, now)
    needed = cfg.spread_min_reposts if influential else cfg.viral_min_reposts
    if n < needed:
        return None
    minutes = int(cfg.spread_window // 60)
    who = f"有影响力的作者（粉丝 {followers}）" if influential else "作者"
    return Detection(Trigger.SPREAD, "P1" if influential else "P2",
                     f"{who}的负面微博 {minutes} 分钟内被转发 {n} 次")
