"""Noise control: small stages with one signature, run by the outbox before each send.

``stage(page, now) -> Verdict | None``: ``None`` passes the page on to the next stage,
a verdict stops it. The outbox runs :data:`Stages` in order (silence, quiet hours,
grouping, rate limit) and sends whatever passes all of them. Nothing is ever dropped
without a trace: a silenced page is recorded as silenced in the audit log, a page in
quiet hours is deferred to their end, and the overflow of a rate limit or the updates
of an open incident are held and go out as one summary message.

``now`` is handed in (the outbox's clock), never read here.
"""

from __future__ import annotations

import fnmatch
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Protocol

from alerts.oncall import parse_local
from rules.records import Alert, AlertType, Duration


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class SilenceConfig:
    """Mute matching pages for a while (maintenance, a known story being handled)."""

    brand: tuple[str, ...] = ()
    """Brands to mute; empty: any brand."""
    types: tuple[str, ...] = ()
    """Alert types, globs allowed (``"mention.*"``); empty: any type."""
    start: str = ""
    """Local ISO time (``2026-05-20T22:00``); empty: from the beginning of time."""
    end: str = ""
    """Local ISO time, exclusive; empty: until the silence is removed from the config."""
    comment: str = ""
    """Why, for the audit log."""
    severities: tuple[str, ...] = ("P2", "P3", "P4")
    """Severities muted; P1 is refused here, it always pages."""

    def validate(self) -> Iterator[tuple[str, str]]:
        for key in ("start", "end"):
            value = getattr(self, key)
            if value:
                try:
                    parse_local(value, UTC)
                except ValueError:
                    yield key, f'"{value}" is not an ISO time like "2026-05-20T22:00"'
        yield from _low_severities(self.severities)


@dataclass(frozen=True)
class QuietHoursConfig:
    """Night hours when mild pages wait for the morning (P1 always pages)."""

    start: str = ""
    """Local ``HH:MM`` when quiet hours begin; empty: no quiet hours."""
    end: str = "08:00"
    """Local ``HH:MM`` when they end; held pages go out then."""
    severities: tuple[str, ...] = ("P3", "P4")
    """Severities that wait; P1 is refused here, it always pages."""

    def validate(self) -> Iterator[tuple[str, str]]:
        for key in ("start", "end"):
            value = getattr(self, key)
            if value or key == "end":
                try:
                    time.fromisoformat(value)
                except ValueError:
                    yield key, f'"{value}" is not a local time like "22:00"'
        yield from _low_severities(self.severities)


def _low_severities(severities: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """Problems with a silence's or quiet hours' ``severities``: P1 is never muted."""
    if "P1" in severities:
        yield "severities", "P1 always pages; list only P2, P3, P4"
    elif any(s not in ("P2", "P3", "P4") for s in severities):
        yield "severities", "use P2, P3, P4"


@dataclass(frozen=True)
class RateLimitConfig:
    """At most ``max`` messages per ``per`` on one channel; the rest become one summary."""

    channel: str
    """A ``[[channels]]`` name."""
    max: int = 10
    """Messages allowed on the channel per ``per``; the rest are held and go out as one
    summary when the window has room again."""
    per: Duration = Duration(60.0)
    """The sliding window the limit counts over."""

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.max < 1 or self.per <= 0:
            yield "max", "max must be at least 1 and per positive"


@dataclass(frozen=True)
class PagingConfig:
    """Repeats, grouping, silences, quiet hours and rate limits (``[paging]``)."""

    repeat_every: Duration = Duration(600.0)
    """Re-page an unacknowledged level >= 1 alert this often until it is acked or its
    subject answered; ``"0s"``: never repeat."""
    repeat_max: int = 6
    """At most this many repeats of one alert."""
    group_wait: Duration = Duration(300.0)
    """New-mention pages of a brand with an open incident are held this long and sent as
    one update threaded under the incident; ``"0s"``: one page per post."""
    silences: tuple[SilenceConfig, ...] = ()
    quiet_hours: QuietHoursConfig = field(default_factory=QuietHoursConfig)
    rate_limits: tuple[RateLimitConfig, ...] = ()

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.repeat_every < 0 or self.group_wait < 0 or self.repeat_max < 0:
            yield "repeat_every", "repeat_every, group_wait and repeat_max must not be negative"
        if 0 < self.repeat_every < 30:
            yield "repeat_every", "repeating faster than every 30s would be a flood"


# ----------------------------------------------------------------------------- stages
class Outcome(StrEnum):
    """What a stage decided, recorded as the delivery's state and in the audit log."""

    SILENCED = "silenced"
    DEFERRED = "deferred"
    HELD = "held"


@dataclass(frozen=True, slots=True)
class Page:
    """One delivery about to be tried: an alert, a channel, and which repeat it is."""

    alert: Alert
    channel: str
    repeat: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """A stage's decision. ``until``: retry time (deferred) or flush time (held)."""

    outcome: Outcome
    reason: str
    until: float | None = None
    group: str = ""
    """For HELD: pages with the same group on one channel go out as one summary."""


Stage = Callable[[Page, float], "Verdict | None"]
BUILT_IN = frozenset({"log", "terminal"})
"""Channels that record rather than page: noise control never applies to them."""


def _in_window(now: float, start: float | None, end: float | None) -> bool:
    return (start is None or start <= now) and (end is None or now < end)


class Silences:
    """Stage: pages matching a configured silence are recorded, not sent. A silence
    mutes only its ``severities`` (never P1: a P1 always pages)."""

    def __init__(self, silences: Sequence[SilenceConfig], tz: tzinfo) -> None:
        self._rules = [(s, parse_local(s.start, tz).timestamp() if s.start else None,
                        parse_local(s.end, tz).timestamp() if s.end else None)
                       for s in silences]

    def __call__(self, page: Page, now: float) -> Verdict | None:
        a = page.alert
        for s, start, end in self._rules:
            if a.severity not in s.severities or a.severity == "P1":
                continue
            if s.brand and a.brand not in s.brand:
                continue
            if s.types and not any(fnmatch.fnmatchcase(str(a.type), p) for p in s.types):
                continue
            if _in_window(now, start, end):
                return Verdict(Outcome.SILENCED, s.comment or "silenced")
        return None


class QuietHours:
    """Stage: mild pages wait until the end of the night (deferred, never dropped)."""

    def __init__(self, cfg: QuietHoursConfig, tz: tzinfo) -> None:
        self.enabled = bool(cfg.start)
        self.start = time.fromisoformat(cfg.start) if cfg.start else time(0)
        self.end = time.fromisoformat(cfg.end)
        self.severities = frozenset(cfg.severities)
        self.tz = tz

    def quiet_until(self, now: float) -> float | None:
        """The end of the quiet period ``now`` falls in, or None outside quiet hours."""
        if not self.enabled:
            return None
        local = datetime.fromtimestamp(now, tz=UTC).astimezone(self.tz).replace(tzinfo=None)
        t = local.time()
        overnight = self.start > self.end
        inside = (t >= self.start or t < self.end) if overnight else self.start <= t < self.end
        if not inside:
            return None
        end = datetime.combine(local.date(), self.end)
        if end <= local:
            end += timedelta(days=1)
        return end.replace(tzinfo=self.tz).timestamp()

    def __call__(self, page: Page, now: float) -> Verdict | None:
        if page.alert.severity not in self.severities or page.alert.severity == "P1":
            return None
        until = self.quiet_until(now)
        if until is None:
            return None
        return Verdict(Outcome.DEFERRED, "quiet hours", until=until)


GROUPED_TYPES = frozenset({AlertType.MENTION_NEW})


class IncidentGrouping:
    """Stage: while a brand's incident is open, its new-mention pages become one update.

    A crisis brings dozens of posts an hour; a page per post would bury the incident's
    own escalations. They are held for ``wait`` and sent as one message threaded under
    the incident (same incident id, hence the same MQTT incident topic and mail thread).
    """

    def __init__(self, wait: float) -> None:
        self.wait = wait

    def __call__(self, page: Page, now: float) -> Verdict | None:
        a = page.alert
        if self.wait <= 0 or page.repeat or not a.incident_id or a.type not in GROUPED_TYPES \
                or a.severity == "P1":
            return None
        return Verdict(Outcome.HELD, "grouped under incident", until=now + self.wait,
                       group=f"incident:{a.incident_id}")


class SendWindow(Protocol):
    """Where a rate limiter keeps the send times of its sliding window."""

    def times(self, channel: str, since: float) -> Sequence[float]:
        """Send times of ``channel`` after ``since``, oldest first."""
        ...

    def add(self, channel: str, at: float, forget_before: float) -> None:
        """Record a send; times at or before ``forget_before`` may be dropped."""
        ...


class MemoryWindow:
    """A :class:`SendWindow` in memory (pure tests). The outbox binds the durable one,
    :class:`alerts.ledger.SendLog`, so a restart keeps the window."""

    def __init__(self) -> None:
        self._sent: dict[str, deque[float]] = {}

    def times(self, channel: str, since: float) -> Sequence[float]:
        return [t for t in self._sent.get(channel, ()) if t > since]

    def add(self, channel: str, at: float, forget_before: float) -> None:
        sent = self._sent.setdefault(channel, deque())
        sent.append(at)
        while sent and sent[0] <= forget_before:
            sent.popleft()


class RateLimiter:
    """Stage: at most ``max`` sends per sliding ``per`` on a channel; the rest are held
    and summarised in one message when the window has room again."""

    def __init__(self, limits: Sequence[RateLimitConfig],
                 window: SendWindow | None = None) -> None:
        self.limits = {r.channel: (r.max, float(r.per)) for r in limits}
        self.window: SendWindow = window if window is not None else MemoryWindow()

    def bind(self, window: SendWindow) -> None:
        """Keep the send times in ``window`` from now on (the outbox: in the store)."""
        self.window = window

    def room_at(self, channel: str, now: float) -> float:
        """When ``channel`` may send next (``now`` if it may send now)."""
        limit = self.limits.get(channel)
        if limit is None:
            return now
        most, per = limit
        sent = self.window.times(channel, now - per)
        # Room once all but most-1 of the sends in the window have left it.
        return now if len(sent) < most else sent[-most] + per

    def record(self, channel: str, now: float) -> None:
        """A message went out on ``channel``."""
        limit = self.limits.get(channel)
        if limit is not None:
            self.window.add(channel, now, now - limit[1])

    def __call__(self, page: Page, now: float) -> Verdict | None:
        room = self.room_at(page.channel, now)
        if room <= now:
            return None
        return Verdict(Outcome.HELD, "rate limit", until=room, group="ratelimit")


@dataclass
class Stages:
    """The noise pipeline the outbox runs before each send, in order."""

    stages: list[Stage]
    limiter: RateLimiter

    @classmethod
    def from_config(cls, cfg: PagingConfig, tz: tzinfo) -> Stages:
        limiter = RateLimiter(cfg.rate_limits)
        return cls([Silences(cfg.silences, tz), QuietHours(cfg.quiet_hours, tz),
                    IncidentGrouping(float(cfg.group_wait)), limiter], limiter)

    @classmethod
    def none(cls) -> Stages:
        """No noise control at all (tests, benchmarks)."""
        limiter = RateLimiter(())
        return cls([], limiter)

    def judge(self, page: Page, now: float) -> Verdict | None:
        """The first stage's verdict, or None: send it."""
        if page.channel in BUILT_IN:
            return None
        for stage in self.stages:
            verdict = stage(page, now)
            if verdict is not None:
                return verdict
        return None


def summary_alert(held: Sequence[Alert], group: str, channel: str) -> Alert:
    """One message standing for ``held`` pages (rate-limit overflow or incident updates).

    Its id is derived from the ids it stands for, so a retry after an ambiguous failure
    carries the same idempotency key. It takes the worst severity and highest level of
    what it summarises, and the type and brand of the worst one.
    """
    from rules.records import alert_id  # local: keeps this module's import surface small

    worst = min(held, key=lambda a: (a.severity, -a.level, a.at))
    sid = alert_id("summary", channel, group, *sorted(a.id for a in held))
    incident = worst.incident_id if group.startswith("incident:") else None
    if incident:
        title = f"事件 {incident} 更新：{len(held)} 条新提及"
    else:
        title = f"限流汇总：另有 {len(held)} 条告警"
    lines = [f"[{a.severity}] {a.brand} {a.type} {a.title} ({a.id})" for a in held[:50]]
    if len(held) > 50:
        lines.append(f"… 以及另外 {len(held) - 50} 条")
    return Alert(id=sid, type=worst.type, at=max(a.at for a in held), brand=worst.brand,
                 level=max(a.level for a in held), severity=worst.severity, title=title,
                 text="\n".join(lines), post_id=worst.post_id, incident_id=incident,
                 recipients=tuple(dict.fromkeys(r for a in held for r in a.recipients)))
