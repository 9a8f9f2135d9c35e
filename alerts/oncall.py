"""On-call rotations: who holds a ladder rung for a team at a given instant.

A ``[[oncall]]`` table is one weekly rotation for one team and one rung (0 duty
responder, 1 supervisor, 2 leadership). The shift changes hands every ``every`` weeks
at ``handover`` (weekday and wall-clock time in the config's time zone), starting with
the first member at the first handover on or after ``start``. Overrides (a swap, a sick
day) put someone else on for a time range and win over the rotation.

Everything here is pure: ``OnCall.who_is_on(team, level, at)`` is handed the instant
and never reads the clock, so routing is identical live and in replay. Handovers are
computed on local wall time, so "Monday 09:00" stays 09:00 across a DST change.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_local(text: str, tz: tzinfo) -> datetime:
    """``2026-05-20T18:00`` (local to ``tz``) or with an offset, as an aware datetime."""
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=tz) if dt.tzinfo is None else dt


def parse_handover(text: str) -> tuple[int, time]:
    """``"mon 09:00"`` -> (0, 09:00). Raises ValueError with a fix-it message."""
    day, _, hhmm = text.strip().lower().partition(" ")
    if day[:3] not in WEEKDAYS or not hhmm:
        raise ValueError(f'"{text}" is not a handover like "mon 09:00"')
    try:
        at = time.fromisoformat(hhmm.strip())
    except ValueError:
        raise ValueError(f'"{text}" is not a handover like "mon 09:00"') from None
    return WEEKDAYS.index(day[:3]), at


@dataclass(frozen=True)
class OverrideConfig:
    """Someone else on call for a time range (local times, end exclusive)."""

    who: str
    """The person on call instead of the rotation's member."""
    start: str
    """``2026-05-20T18:00`` in the config's time zone (or with an explicit offset)."""
    end: str
    """When the override ends (exclusive)."""

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.who.strip():
            yield "who", "must not be empty"
        try:
            start = parse_local(self.start, UTC)
            end = parse_local(self.end, UTC)
        except ValueError:
            yield "start", 'start and end must be ISO times like "2026-05-20T18:00"'
            return
        if end <= start:
            yield "end", "must be after start"


@dataclass(frozen=True)
class OncallConfig:
    """One weekly rotation: a team's rung, handed over on a weekday at a time."""

    team: str
    """The team (``[[routes]].team``); ``"default"`` serves alerts whose route names none."""
    members: tuple[str, ...]
    """The people, in rotation order; the first is on call from the first handover."""
    level: int = 0
    """The ladder rung this rotation fills: 0 duty responder, 1 supervisor, 2 leadership."""
    handover: str = "mon 09:00"
    """Weekday and local time the shift changes hands."""
    start: str = "2026-01-05"
    """A date (local); the first member's shift starts at the first handover on or after it."""
    every: int = 1
    """Weeks per shift."""
    overrides: tuple[OverrideConfig, ...] = ()
    """Swaps and cover, which win over the rotation while they last."""

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.team.strip():
            yield "team", "must not be empty"
        if not self.members or any(not m.strip() for m in self.members):
            yield "members", "needs at least one non-empty name"
        if not 0 <= self.level <= 2:
            yield "level", "must be 0, 1 or 2"
        try:
            parse_handover(self.handover)
        except ValueError as exc:
            yield "handover", str(exc)
        try:
            date.fromisoformat(self.start)
        except ValueError:
            yield "start", f'"{self.start}" is not a date like "2026-05-04"'
        if self.every < 1:
            yield "every", "must be at least 1 week"


@dataclass(frozen=True, slots=True)
class _Override:
    who: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Rotation:
    """A parsed :class:`OncallConfig`: the first handover (local wall time) and the shift."""

    team: str
    level: int
    members: tuple[str, ...]
    first: datetime
    """The first handover, naive local wall time."""
    shift: timedelta
    overrides: tuple[_Override, ...]

    @classmethod
    def from_config(cls, cfg: OncallConfig, tz: tzinfo) -> Rotation:
        weekday, at = parse_handover(cfg.handover)
        start = date.fromisoformat(cfg.start)
        first = datetime.combine(start + timedelta(days=(weekday - start.weekday()) % 7), at)
        overrides = tuple(_Override(o.who, parse_local(o.start, tz).timestamp(),
                                    parse_local(o.end, tz).timestamp()) for o in cfg.overrides)
        return cls(cfg.team, cfg.level, cfg.members, first, timedelta(weeks=cfg.every),
                   overrides)

    def member_at(self, at: float, tz: tzinfo) -> str:
        """Who is on at instant ``at``: an override if one covers it, else the rotation."""
        for o in self.overrides:
            if o.start <= at < o.end:
                return o.who
        local = datetime.fromtimestamp(at, tz=UTC).astimezone(tz).replace(tzinfo=None)
        # Floor division on local wall time: a handover at 09:00 stays at 09:00 whatever
        # the UTC offset did in between. Before the first handover the last member is on.
        shifts = math.floor((local - self.first) / self.shift)
        return self.members[shifts % len(self.members)]


class OnCall:
    """All rotations of the config, looked up by (team, level)."""

    def __init__(self, rotations: Sequence[OncallConfig], tz: tzinfo) -> None:
        self.tz = tz
        self._by_key: dict[tuple[str, int], list[Rotation]] = {}
        for cfg in rotations:
            r = Rotation.from_config(cfg, tz)
            self._by_key.setdefault((r.team, r.level), []).append(r)

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def covers(self, team: str, level: int) -> bool:
        """True when some rotation fills ``level`` for ``team``."""
        return (team, level) in self._by_key

    def who_is_on(self, team: str, level: int, at: float) -> tuple[str, ...]:
        """The people on call for ``team``'s rung ``level`` at ``at`` (empty if no rotation).

        Several rotations for one rung (e.g. a day and a night one) each contribute
        their member, in config order, without repeats.
        """
        people = [r.member_at(at, self.tz) for r in self._by_key.get((team, level), ())]
        return tuple(dict.fromkeys(people))
