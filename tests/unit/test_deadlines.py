"""The reply rule's arithmetic: one table, the same numbers the engine arms and pages quote."""

from __future__ import annotations

import pytest

from monitor.config import SlaConfig
from monitor.settings import Duration
from rules.deadlines import followup_due, in_time, reply_deadlines

T0 = 1_780_000_000.0


@pytest.mark.parametrize(("sla", "expected"), [
    (SlaConfig(), (T0 + 180, T0 + 300, T0 + 900)),
    (SlaConfig(warn_at=Duration(60), reply_within=Duration(120), escalate_after=Duration(120)),
     (T0 + 60, T0 + 120, T0 + 120)),
])
def test_reply_deadlines_follow_the_rule(sla: SlaConfig,
                                         expected: tuple[float, float, float]) -> None:
    got = reply_deadlines(T0, sla)
    assert tuple(got) == expected and got.due == expected[1]
    assert followup_due(T0, sla) == T0 + float(sla.public_followup_within)


@pytest.mark.parametrize(("reply_seconds", "ok"), [
    (None, False), (0.0, True), (299.9, True), (300.0, True), (300.001, False)])
def test_a_reply_on_the_deadline_is_in_time(reply_seconds: float | None, ok: bool) -> None:
    assert in_time(reply_seconds, 300.0) is ok
