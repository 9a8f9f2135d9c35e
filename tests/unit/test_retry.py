"""The one backoff, Retry-After parser and failure log that every retrying part uses."""

from __future__ import annotations

import random
from typing import Any

import pytest

from monitor.retry import FailureLog, backoff, parse_retry_after


def test_backoff_doubles_from_base_up_to_the_cap_with_equal_jitter() -> None:
    lows = [backoff(n, base=1.0, cap=60.0, rand=lambda: 0.0) for n in range(1, 10)]
    highs = [backoff(n, base=1.0, cap=60.0, rand=lambda: 1.0) for n in range(1, 10)]
    assert lows == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert highs == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_backoff_without_jitter_is_the_ceiling_and_never_overflows() -> None:
    assert [backoff(n, base=0.05, cap=2.0, rand=None) for n in range(1, 8)] == \
        [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert backoff(10_000, base=2.0, cap=60.0, rand=None) == 60.0
    assert backoff(0, base=2.0, cap=60.0, rand=None) == 2.0  # "no failure yet" waits like one


def test_backoff_is_deterministic_under_a_seeded_rng() -> None:
    def run(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [backoff(n, base=2.0, cap=60.0, rand=rng.random) for n in range(1, 12)]

    assert run(7) == run(7)
    assert run(7) != run(8)
    for n, wait in enumerate(run(7), start=1):
        ceiling = min(60.0, 2.0 * 2 ** (n - 1))
        assert ceiling / 2 <= wait <= ceiling


@pytest.mark.parametrize(("value", "now", "seconds"), [
    ("120", None, 120.0),
    (" 7 ", None, 7.0),
    ("-5", None, 0.0),
    ("Fri, 01 May 2026 01:05:30 GMT", 1777597500.0, 30.0),
    ("Thu, 01 Jan 1970 00:10:00 GMT", 0.0, 600.0),
    ("Thu, 01 Jan 1970 00:10:00 GMT", 900.0, 0.0),  # a date in the past: now
    ("soon", None, None),
    ("", None, None),
    (None, None, None),
    ("inf", None, None),
    ("nan", None, None),
])
def test_retry_after_reads_seconds_and_http_dates(value: str | None, now: float | None,
                                                 seconds: float | None) -> None:
    assert parse_retry_after(value, now) == seconds


class _Lines:
    """A logger that keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))


def test_a_run_of_failures_is_logged_when_it_starts_and_when_it_ends() -> None:
    out = _Lines()
    health = FailureLog(out, "source failing", "source recovered", source="s1")
    assert not health.succeeded() and out.lines == []  # nothing failed: nothing to say
    assert [health.failed(OSError("x" * 300)) for _ in range(3)] == [1, 2, 3]
    assert health.failing
    assert health.succeeded() and not health.succeeded()
    health.failed("again", retry_in=2.0)
    assert out.lines == [
        ("warning", "source failing", {"source": "s1", "error": "x" * 200}),
        ("info", "source recovered", {"source": "s1", "failed_attempts": 3}),
        ("warning", "source failing", {"source": "s1", "error": "again", "retry_in": 2.0}),
    ]
    assert health.failures == 1 and health.total == 4
