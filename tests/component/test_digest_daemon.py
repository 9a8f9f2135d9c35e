"""The daemon makes each digest at its fire time on its own clock, delivers it once,
and after being down sends the missed digest once on start (not once per missed run)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from alerts.channels.base import Thread
from alerts.digest import from_alert
from monitor.config import parse_config
from monitor.digest_config import DigestConfig
from monitor.digests import Schedule
from rules.records import Alert, AlertType
from tests.fixtures.clocks import StepClock
from tests.fixtures.live import running_daemon, until

CONFIG = """
[http]
enabled = false
[alerts]
terminal = false
[[brands]]
name = "快书包"
keywords = ["快书包"]
[[channels]]
type = "webhook"
name = "pr-mail"
url = "http://127.0.0.1:9/unused"
[[digests]]
name = "daily"
cron = "0 9 * * *"
channels = ["pr-mail"]
"""


def t(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class Inbox:
    """A channel that keeps what it is sent."""

    name = "pr-mail"

    def __init__(self) -> None:
        self.got: list[Alert] = []

    async def send(self, alert: Alert, thread: Thread | None = None) -> None:
        self.got.append(alert)

    def periods(self) -> list[tuple[str, str]]:
        return [(d.period_start, d.period_end) for d, _ in map(from_alert, self.got)]


async def test_a_digest_at_its_time_and_a_missed_one_once_on_start(tmp_path: Path) -> None:
    config = parse_config(CONFIG, base_dir=str(tmp_path))
    inbox = Inbox()
    db = tmp_path / "state.db"
    clock = StepClock(t("2026-05-20T08:00:00+08:00"))
    async with running_daemon(config, db, clock, channels=[inbox]):
        nine = t("2026-05-20T09:00:00+08:00")
        await until(lambda: nine in clock.waiting, what="the digest task to wait for 09:00")
        assert inbox.got == []  # the first start sends nothing for the past
        clock.advance_to(nine)
        await until(lambda: len(inbox.got) == 1, what="the 09:00 digest")
        await until(lambda: t("2026-05-21T09:00:00+08:00") in clock.waiting,
                    what="the next fire time")
    assert inbox.got[0].type is AlertType.DIGEST
    assert inbox.periods() == [("2026-05-19T09:00:00+08:00", "2026-05-20T09:00:00+08:00")]

    # Down for three days: three runs missed, one digest on start, covering the gap.
    later = StepClock(t("2026-05-23T10:00:00+08:00"))
    async with running_daemon(config, db, later, channels=[inbox]):
        await until(lambda: len(inbox.got) == 2, what="the missed digest")
        await until(lambda: t("2026-05-24T09:00:00+08:00") in later.waiting,
                    what="the next fire time")
    assert inbox.periods()[1] == ("2026-05-20T09:00:00+08:00", "2026-05-23T09:00:00+08:00")

    # Started again at the same moment: nothing is sent twice.
    again = StepClock(t("2026-05-23T10:00:00+08:00"))
    async with running_daemon(config, db, again, channels=[inbox]):
        await until(lambda: t("2026-05-24T09:00:00+08:00") in again.waiting,
                    what="the digest task to wait")
    assert len(inbox.got) == 2


def test_fire_times_follow_the_crontab_in_the_configured_zone() -> None:
    from zoneinfo import ZoneInfo

    weekly = Schedule(DigestConfig(name="weekly", cron="30 8 * * mon"), ZoneInfo("Asia/Shanghai"))
    wed = t("2026-05-20T12:00:00+08:00")
    assert weekly.after(wed) == t("2026-05-25T08:30:00+08:00")
    assert weekly.before(wed) == t("2026-05-18T08:30:00+08:00")
    assert weekly.latest(t("2026-05-25T08:30:00+08:00")) == t("2026-05-25T08:30:00+08:00")
    assert weekly.after(t("2026-05-25T08:30:00+08:00")) == t("2026-06-01T08:30:00+08:00")
    # New York's clocks spring forward on 2026-03-08: 09:00 local is still 09:00 local.
    ny = Schedule(DigestConfig(name="d", cron="0 9 * * *"), ZoneInfo("America/New_York"))
    assert ny.after(t("2026-03-07T10:00:00-05:00")) == t("2026-03-08T09:00:00-04:00")
