"""On-call rotations as a table of exact instants (Asia/Shanghai has no DST; Berlin does)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from alerts.oncall import OnCall, OncallConfig, OverrideConfig
from monitor.settings import SettingsError, load_table

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")

DUTY = OncallConfig(team="pr", members=("小王", "小李", "小张"), level=0,
                    handover="mon 09:00", start="2026-05-04",  # a Monday
                    overrides=(OverrideConfig("老陈", "2026-05-20T18:00", "2026-05-21T09:00"),))
SUPERVISOR = OncallConfig(team="pr", members=("总监A", "总监B"), level=1,
                          handover="fri 18:30", start="2026-05-01", every=2)


def at(text: str, tz: ZoneInfo = SH) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


@pytest.mark.parametrize(("when", "level", "who"), [
    ("2026-05-04T09:00:00", 0, "小王"),        # first handover: first member
    ("2026-05-04T08:59:59", 0, "小张"),        # before it: the last member still holds it
    ("2026-05-11T08:59:59", 0, "小王"),        # one second before the handover boundary
    ("2026-05-11T09:00:00", 0, "小李"),        # exactly at it: the next member
    ("2026-05-18T09:00:00", 0, "小张"),
    ("2026-05-20T17:59:59", 0, "小张"),
    ("2026-05-20T18:00:00", 0, "老陈"),        # override starts (inclusive)
    ("2026-05-21T08:59:59", 0, "老陈"),
    ("2026-05-21T09:00:00", 0, "小张"),        # override ends (exclusive)
    ("2026-05-25T09:00:00", 0, "小王"),        # wraps around
    ("2026-05-01T18:30:00", 1, "总监A"),       # fortnightly, Friday 18:30
    ("2026-05-15T18:29:59", 1, "总监A"),
    ("2026-05-15T18:30:00", 1, "总监B"),
    ("2026-05-29T18:30:00", 1, "总监A"),
])
def test_who_is_on_in_shanghai(when: str, level: int, who: str) -> None:
    oncall = OnCall([DUTY, SUPERVISOR], SH)
    assert oncall.who_is_on("pr", level, at(when)) == (who,)


def test_no_rotation_for_a_rung_or_team_is_empty() -> None:
    oncall = OnCall([DUTY], SH)
    assert oncall.who_is_on("pr", 2, at("2026-05-20T10:00:00")) == ()
    assert oncall.who_is_on("ops", 0, at("2026-05-20T10:00:00")) == ()
    assert not oncall.covers("pr", 1)


def test_handover_keeps_local_wall_time_across_dst() -> None:
    """Berlin springs forward on 2026-03-29: the Monday 09:00 handover stays 09:00 local."""
    rota = OncallConfig(team="pr", members=("a", "b"), handover="mon 09:00", start="2026-03-23")
    oncall = OnCall([rota], BERLIN)
    assert oncall.who_is_on("pr", 0, at("2026-03-30T08:59:59", BERLIN)) == ("a",)
    assert oncall.who_is_on("pr", 0, at("2026-03-30T09:00:00", BERLIN)) == ("b",)


def test_bad_rotation_names_its_keys() -> None:
    with pytest.raises(SettingsError) as err:
        load_table(OncallConfig, {"team": "pr", "members": [], "handover": "someday 9",
                                  "start": "May 4", "level": 3}, path="oncall[0]")
    text = "\n".join(err.value.problems)
    for key in ("oncall[0].members", "oncall[0].handover", "oncall[0].start", "oncall[0].level"):
        assert key in text
