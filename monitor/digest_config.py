"""``[[digests]]``: scheduled summaries for the PR head (舆情日报, the weekly review).

Its own module so that ``monitor.config`` can hold the settings without importing the
code that builds digests (APScheduler, the store, matplotlib).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, tzinfo

from rules.records import Duration

_NAME = re.compile(r"^[A-Za-z0-9_.\-\u4e00-\u9fff]{1,64}$")


@dataclass(frozen=True)
class DigestConfig:
    """One digest: when it is made, what it covers, who gets it."""

    name: str
    """Unique; with the period it names the digest (its id), and the command line uses
    it (``crisismon digest NAME``)."""
    cron: str
    """When it is made: a five-field crontab (minute hour day month weekday) in the
    configured ``timezone``, e.g. ``"0 9 * * *"`` (09:00 daily), ``"30 8 * * mon"``."""
    period: Duration | None = None
    """The span it covers, ending when it is made; unset: since the previous run of its
    schedule (and, after the daemon was down, since the last digest actually made)."""
    brands: tuple[str, ...] = ()
    """Brand names (``[[brands]].name``); empty = every brand."""
    channels: tuple[str, ...] = ()
    """``[[channels]]`` names it is delivered to (or ``"terminal"``); empty = made and
    kept (replay's ``digests.jsonl``, ``crisismon digest``) but sent nowhere."""
    top_posts: int = 5
    """How many of the period's posts by reach (the author's followers) each brand lists."""
    baseline: Duration = Duration(7 * 86400)
    """History before the period that the brand's baseline (mentions per period, negative
    share) is measured over; at least one whole period of it is needed."""

    def validate(self) -> Iterator[tuple[str, str]]:
        if not _NAME.match(self.name):
            yield "name", "use 1-64 letters, digits, Chinese characters, '_', '-' or '.'"
        problem = cron_problem(self.cron)
        if problem:
            yield "cron", problem
        if self.period is not None and self.period <= 0:
            yield "period", "must be positive"
        if not 1 <= self.top_posts <= 20:
            yield "top_posts", "must be 1..20"
        if self.baseline < 0:
            yield "baseline", "must not be negative"


def cron_trigger(cron: str, tz: tzinfo):  # type: ignore[no-untyped-def]
    """APScheduler's CronTrigger for a five-field crontab in ``tz`` (no jitter: the fire
    times are a pure function of the expression, so replays are deterministic)."""
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(cron, timezone=tz)


def cron_problem(cron: str) -> str | None:
    """Why ``cron`` is not a usable five-field crontab, or None."""
    if not isinstance(cron, str) or len(cron.split()) != 5:
        return (f'"{cron}" is not a five-field crontab (minute hour day month weekday, '
                'e.g. "0 9 * * *")')
    try:
        cron_trigger(cron, UTC)
    except (ValueError, TypeError) as exc:
        return f'"{cron}" is not a valid crontab: {exc}'
    return None
