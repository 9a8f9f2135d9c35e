"""Trying again: how long to wait, what the server asked for, and what to log.

One of each, for every part of the daemon that retries (pollers, MQTT reconnects, the
outbox, store locks, the cluster's lease renewal):

- :func:`backoff`: exponential wait with "equal jitter", deterministic under an injected
  random source;
- :func:`parse_retry_after`: the seconds an HTTP ``Retry-After`` header asks for;
- :class:`FailureLog`: a run of failures is logged when it starts and when it ends, not
  on every retry (Home Assistant's ``DataUpdateCoordinator`` does the same for pollers).
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

MAX_DOUBLINGS = 30
"""The exponent stops growing here (2**30 times ``base``: far past any cap)."""


def backoff(failures: int, *, base: float, cap: float,
            rand: Callable[[], float] | None) -> float:
    """Seconds to wait after failure number ``failures`` (1 for the first) of a run.

    The ceiling doubles per failure from ``base`` up to ``cap``:
    ``min(cap, base * 2 ** (failures - 1))``. With ``rand`` (a function returning a float
    in [0, 1), e.g. ``random.Random(seed).random``) the wait is "equal jitter": half the
    ceiling fixed, half random, so many clients failing together do not retry in step,
    yet a wait never collapses to zero. ``rand=None`` gives the ceiling itself (for a
    wait that nobody else shares, such as a lock held by another process).
    """
    ceiling = min(cap, base * 2 ** min(max(failures - 1, 0), MAX_DOUBLINGS))
    if rand is None:
        return ceiling
    return ceiling / 2 + rand() * ceiling / 2


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110).

    None when the header is missing or unreadable. A date is measured from ``now``
    (epoch seconds); without ``now`` from the wall clock, which is right here: it is the
    server's wall clock the date was written on. Never negative.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "inf" or "nan" would wait forever or not at all: not a server's answer
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now is None:
        now = datetime.now(UTC).timestamp()
    return max(0.0, when.timestamp() - now)


class FailureLog:
    """Logs the first failure of a run and the recovery, not every retry.

    ``failing`` and ``recovered`` are the two log events; ``context`` is bound to both
    (``source=...``, ``channel=...``). :meth:`failed` counts and logs (a warning) only
    the first failure of a run; :meth:`succeeded` logs the recovery (info, with
    ``failed_attempts``) once, and is free to call after every success.
    """

    def __init__(self, logger: Any, failing: str, recovered: str, **context: Any) -> None:
        self.log = logger
        self.failing_event = failing
        self.recovered_event = recovered
        self.context = context
        self.failures = 0
        """Failures in a row (0 while things work)."""
        self.total = 0
        """Failures since start (for metrics)."""

    @property
    def failing(self) -> bool:
        """True from a failure until the next success."""
        return self.failures > 0

    def failed(self, error: object = None, **fields: Any) -> int:
        """One more failure; logged if it starts a run. Returns the failures in a row.

        ``error`` is logged as text, cut to 200 characters (an exception's text may
        quote a whole answer)."""
        self.failures += 1
        self.total += 1
        if self.failures == 1:
            if error is not None:
                fields["error"] = str(error)[:200]
            self.log.warning(self.failing_event, **self.context, **fields)
        return self.failures

    def succeeded(self, **fields: Any) -> bool:
        """It worked; logs the recovery when a run of failures ends. True if it did."""
        if not self.failures:
            return False
        self.log.info(self.recovered_event, **self.context,
                      failed_attempts=self.failures, **fields)
        self.failures = 0
        return True
