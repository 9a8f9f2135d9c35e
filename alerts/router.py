"""The alert router: who is paged for an alert, and on which channels.

Recipients come from the on-call rotation of the alert's route team for the alert's
ladder rung when one is configured, else from ``[ladder]``. Channels come from the
first matching ``[[routes]]`` (see :mod:`alerts.routing`). Pure: the rotation is
evaluated at the alert's own ``at``, so replays route exactly as the live daemon did.
"""

from __future__ import annotations

from collections.abc import Sequence

from alerts.oncall import OnCall
from alerts.routing import DEFAULT_TEAM, LadderConfig, RouteConfig, first_match
from rules.records import Alert

_MATCHED_MAX = 4096


class Router:
    """Resolves an alert's level to people and its route to channels."""

    def __init__(self, ladder: LadderConfig, routes: Sequence[RouteConfig] = (),
                 oncall: OnCall | None = None, routable: Sequence[str] = ()) -> None:
        self.ladder = ladder
        self.routes = tuple(routes)
        self.oncall = oncall
        self.routable = frozenset(routable)
        """Names of the ``[[channels]]``; other channels (log, terminal) get every alert."""
        self._matched: dict[tuple[object, ...], RouteConfig | None] = {}
        """The first matching route by what a route matches on (``RouteConfig.matches``
        reads brand, type, severity and level only): a few dozen keys a day, against one
        ``first_match`` per alert."""
        self._resolved: dict[tuple[object, ...], tuple[tuple[str, ...], tuple[str, ...]]] = {}
        """``resolve``'s whole answer by the same key and the channels asked about, when
        no rotation is configured: then nothing in it depends on the alert's time."""
        self._rotating = bool(oncall)

    def recipients(self, alert: Alert, team: str = DEFAULT_TEAM) -> tuple[str, ...]:
        """The rung's people: from the team's rotation, else the default team's, else the ladder."""
        if self.oncall:
            for t in (team, DEFAULT_TEAM):
                if self.oncall.covers(t, alert.level):
                    return self.oncall.who_is_on(t, alert.level, alert.at)
        return self.ladder.recipients(alert.level)

    def route(self, alert: Alert) -> Alert:
        """The alert, addressed."""
        return alert.with_recipients(self.resolve(alert, ())[0])

    def resolve(self, alert: Alert, channels: Sequence[str]
                ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Who ``alert`` is for (its recipients), and which of ``channels`` (all the
        daemon has) it goes to."""
        key = (alert.brand, alert.type, alert.severity, alert.level)
        if self._rotating:
            return self._resolve(alert, key, channels)
        asked = (key, channels if type(channels) is tuple else tuple(channels))
        ready = self._resolved.get(asked)
        if ready is None:
            if len(self._resolved) >= _MATCHED_MAX:
                self._resolved.clear()
            ready = self._resolved[asked] = self._resolve(alert, key, channels)
        return ready

    def _resolve(self, alert: Alert, key: tuple[object, ...], channels: Sequence[str]
                 ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        try:
            route = self._matched[key]
        except KeyError:
            if len(self._matched) >= _MATCHED_MAX:
                self._matched.clear()
            route = self._matched[key] = first_match(self.routes, alert)
        people = self.recipients(alert, route.team if route else DEFAULT_TEAM)
        if route is None:
            return people, tuple(channels)
        wanted = set(route.channels)
        return people, tuple(c for c in channels if c not in self.routable or c in wanted)
