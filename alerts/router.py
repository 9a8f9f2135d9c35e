"""The alert router: who is paged for an alert. Here the ladder; rotations plug in later."""

from __future__ import annotations

from alerts.record import Alert
from monitor.config import LadderConfig


class Router:
    """Resolves an alert's ladder level to the people on that rung."""

    def __init__(self, ladder: LadderConfig) -> None:
        self.ladder = ladder

    def route(self, alert: Alert) -> Alert:
        """The alert, addressed."""
        return alert.with_recipients(self.ladder.recipients(alert.level))
