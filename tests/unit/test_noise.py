"""Noise stages: exact verdicts at exact times (Asia/Shanghai)."""

from __future__ import annotations

from alerts.noise import (
    IncidentGrouping,
    MemoryWindow,
    Outcome,
    Page,
    PagingConfig,
    QuietHours,
    QuietHoursConfig,
    RateLimitConfig,
    RateLimiter,
    SilenceConfig,
    Silences,
    Stages,
    summary_alert,
)
from rules.records import Alert, AlertType
from tests.unit.test_oncall import SH, at


def alert(type_: str = "mention.new", severity: str = "P3", brand: str = "快书包",
          incident: str | None = None, aid: str = "a-1", level: int = 0) -> Alert:
    return Alert(id=aid, type=AlertType(type_), at=0.0, brand=brand, level=level,
                 severity=severity, title="t", text="x", incident_id=incident)


def test_silence_by_brand_type_and_time_range() -> None:
    stage = Silences([SilenceConfig(brand=("快书包",), types=("mention.*",),
                                    start="2026-05-20T10:00", end="2026-05-20T12:00",
                                    comment="发布会")], SH)
    inside, after = at("2026-05-20T11:00:00"), at("2026-05-20T12:00:00")
    verdict = stage(Page(alert(), "dingtalk"), inside)
    assert verdict is not None and verdict.outcome is Outcome.SILENCED
    assert verdict.reason == "发布会"
    assert stage(Page(alert(), "dingtalk"), after) is None                  # end is exclusive
    assert stage(Page(alert("reply.breach"), "dingtalk"), inside) is None    # other type
    assert stage(Page(alert(brand="小满咖啡"), "dingtalk"), inside) is None  # other brand


def test_a_silence_never_mutes_p1_and_mutes_only_its_severities() -> None:
    everything = Silences([SilenceConfig(brand=("快书包",))], SH)
    assert everything(Page(alert(severity="P1"), "dingtalk"), 0.0) is None  # P1 always pages
    for sev in ("P2", "P3", "P4"):
        verdict = everything(Page(alert(severity=sev), "dingtalk"), 0.0)
        assert verdict is not None and verdict.outcome is Outcome.SILENCED
    mild = Silences([SilenceConfig(severities=("P4",))], SH)
    assert mild(Page(alert(severity="P3"), "dingtalk"), 0.0) is None
    assert mild(Page(alert(severity="P4"), "dingtalk"), 0.0) is not None


def test_silence_config_refuses_p1_and_unknown_severities() -> None:
    assert dict(SilenceConfig(severities=("P1",)).validate()) == {
        "severities": "P1 always pages; list only P2, P3, P4"}
    assert dict(SilenceConfig(severities=("P5",)).validate()) == {
        "severities": "use P2, P3, P4"}
    assert not dict(SilenceConfig().validate())


def test_quiet_hours_defer_mild_pages_to_the_morning_and_p1_p2_always_page() -> None:
    stage = QuietHours(QuietHoursConfig(start="22:00", end="08:00"), SH)
    for when in ("2026-05-20T23:30:00", "2026-05-21T03:00:00", "2026-05-21T07:59:59"):
        verdict = stage(Page(alert(severity="P4"), "dingtalk"), at(when))
        assert verdict is not None and verdict.outcome is Outcome.DEFERRED
        assert verdict.until == at("2026-05-21T08:00:00")
    assert stage(Page(alert(severity="P3"), "x"), at("2026-05-21T08:00:00")) is None
    assert stage(Page(alert(severity="P3"), "x"), at("2026-05-20T21:59:59")) is None
    assert stage(Page(alert(severity="P1"), "x"), at("2026-05-21T03:00:00")) is None
    assert stage(Page(alert(severity="P2"), "x"), at("2026-05-21T03:00:00")) is None


def test_quiet_hours_config_refuses_p1() -> None:
    assert dict(QuietHoursConfig(start="22:00", severities=("P1", "P4")).validate())


def test_rate_limit_holds_the_overflow_until_the_window_has_room() -> None:
    limiter = RateLimiter([RateLimitConfig(channel="dingtalk", max=2, per=60.0)])
    page = Page(alert(), "dingtalk")
    assert limiter(page, 100.0) is None
    limiter.record("dingtalk", 100.0)
    assert limiter(page, 110.0) is None
    limiter.record("dingtalk", 110.0)
    held = limiter(page, 120.0)
    assert held is not None and held.outcome is Outcome.HELD and held.until == 160.0
    assert limiter(page, 160.0) is None                 # the first send left the window
    assert limiter(Page(alert(), "email"), 120.0) is None  # other channels are not limited


def test_rate_limit_window_counts_what_its_store_remembers() -> None:
    """The window comes from its SendWindow (the outbox binds the store): sends recorded
    before a restart count, and more sends than the limit (a peer instance) delay room
    until enough have left."""
    window = MemoryWindow()
    window.add("dingtalk", 100.0, 0.0)
    window.add("dingtalk", 101.0, 0.0)
    window.add("dingtalk", 102.0, 0.0)
    limiter = RateLimiter([RateLimitConfig(channel="dingtalk", max=2, per=60.0)], window)
    assert limiter.room_at("dingtalk", 110.0) == 161.0  # two must leave: 100 and 101
    assert limiter.room_at("dingtalk", 161.0) == 161.0
    limiter.record("dingtalk", 161.0)  # forgets what no window can still hold
    assert list(window.times("dingtalk", 0.0)) == [102.0, 161.0]


def test_updates_of_an_open_incident_are_grouped_not_paged_one_by_one() -> None:
    stage = IncidentGrouping(300.0)
    verdict = stage(Page(alert(incident="inc-1"), "dingtalk"), 1000.0)
    assert verdict is not None and verdict.group == "incident:inc-1" and verdict.until == 1300.0
    assert stage(Page(alert(), "dingtalk"), 1000.0) is None                         # no incident
    assert stage(Page(alert(incident="inc-1", severity="P1"), "dingtalk"), 0) is None  # P1
    assert stage(Page(alert("crisis.checkpoint", incident="inc-1"), "dingtalk"), 0) is None


def test_built_in_channels_are_never_judged() -> None:
    stages = Stages.from_config(PagingConfig(silences=(SilenceConfig(),)), SH)
    assert stages.judge(Page(alert(), "log"), 0.0) is None
    verdict = stages.judge(Page(alert(), "dingtalk"), 0.0)
    assert verdict is not None and verdict.outcome is Outcome.SILENCED


def test_summary_id_is_stable_and_takes_the_worst() -> None:
    held = [alert(aid="a-2", severity="P3"), alert("reply.breach", "P2", aid="a-1", level=1)]
    one = summary_alert(held, "ratelimit", "dingtalk")
    two = summary_alert(list(reversed(held)), "ratelimit", "dingtalk")
    assert one.id == two.id and one.severity == "P2" and one.level == 1
    assert "a-1" in one.text and "a-2" in one.text and "2" in one.title
