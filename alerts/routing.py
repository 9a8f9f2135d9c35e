"""The route list: which channels (and which on-call team) an alert goes to.

Like Alertmanager's route tree, flattened: ``[[routes]]`` are tried in order and the
first whose matchers all hold wins. A route with no matchers matches everything, so a
last bare ``[[routes]]`` is the default route. When no route matches, the alert goes to
every configured channel, because a page that reaches nobody is the worst outcome.

The built-in channels (``log``, the durable alert log, and ``terminal``) are not
routed: every alert is written to them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rules.records import Alert, AlertType

SEVERITIES = ("P1", "P2", "P3", "P4")
DEFAULT_TEAM = "default"


@dataclass(frozen=True)
class LadderConfig:
    """``[ladder]``: who is paged at each rung when no ``[[oncall]]`` rotation fills it."""

    level0: tuple[str, ...] = ("值班客服",)
    """Rung 0, the duty responder(s): ``mention.new``, ``reply.warning``, ``crisis.closed``."""
    level1: tuple[str, ...] = ("客服总监",)
    """Rung 1, the supervisor(s) 客服总监: ``reply.breach``, ``reply.argument``,
    ``resolution.not_public``, ``crisis.checkpoint``, ``crisis.opened`` below P1."""
    level2: tuple[str, ...] = ("公关负责人",)
    """Rung 2, leadership: ``reply.escalated``, ``crisis.escalated``, P1 ``crisis.opened``."""

    def recipients(self, level: int) -> tuple[str, ...]:
        """The people at rung ``level`` (clamped to the three rungs)."""
        return (self.level0, self.level1, self.level2)[max(0, min(level, 2))]



@dataclass(frozen=True)
class RouteConfig:
    """One ``[[routes]]`` table: matchers, then where matching alerts go."""

    channels: tuple[str, ...] = ()
    """Names of ``[[channels]]`` to page; empty: only the built-in log and terminal."""
    brand: tuple[str, ...] = ()
    """Brand names this route is for; empty: any brand."""
    types: tuple[str, ...] = ()
    """Alert types, globs allowed (``"crisis.*"``, ``"reply.*"``); empty: any type."""
    min_severity: str = "P4"
    """Match only alerts at least this bad (``"P2"`` matches P1 and P2)."""
    min_level: int = 0
    """Match only alerts at or above this ladder rung."""
    team: str = DEFAULT_TEAM
    """On-call team whose rotations (``[[oncall]]``) resolve the recipients."""
    name: str = ""
    """For logs and the audit trail; defaults to ``routes[i]``."""

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.min_severity not in SEVERITIES:
            yield "min_severity", f'"{self.min_severity}" is not one of P1, P2, P3, P4'
        if not 0 <= self.min_level <= 2:
            yield "min_level", "must be 0, 1 or 2"
        known = [str(t) for t in AlertType]
        for i, pattern in enumerate(self.types):
            if not fnmatch.filter(known, pattern):
                yield f"types[{i}]", (f'"{pattern}" matches no alert type '
                                      f'(e.g. "crisis.*", "reply.breach")')
        if not self.team.strip():
            yield "team", "must not be empty"

    def matches(self, alert: Alert) -> bool:
        """True when every matcher of this route holds for ``alert``."""
        if self.brand and alert.brand not in self.brand:
            return False
        if self.types and not any(fnmatch.fnmatchcase(str(alert.type), p) for p in self.types):
            return False
        if severity_rank(alert.severity) > severity_rank(self.min_severity):
            return False
        return alert.level >= self.min_level


def severity_rank(severity: str) -> int:
    """P1 -> 0 (worst) .. P4 -> 3; anything unknown counts as the mildest."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def first_match(routes: Sequence[RouteConfig], alert: Alert) -> RouteConfig | None:
    """The first route that matches ``alert`` (first-match-wins), or None."""
    for route in routes:
        if route.matches(alert):
            return route
    return None


def route_problems(routes: Sequence[RouteConfig | None],
                   channel_names: Sequence[str]) -> Iterator[tuple[str, str]]:
    """Routes naming a channel that is not configured (key paths from the top level);
    a route refused by its own checks (None) is skipped, keeping the others' indices."""
    known = set(channel_names)
    for i, route in enumerate(routes):
        if route is None:
            continue
        for j, name in enumerate(route.channels):
            if name not in known:
                listed = ", ".join(sorted(known)) or "none configured"
                yield f"routes[{i}].channels[{j}]", (f'"{name}" is not a [[channels]] name '
                                                     f"(known: {listed})")
