"""Times formatted through the per-zone minute caches (``rules.records.minute_cache``)
read as ``datetime`` writes them, in any zone, also once a zone's cache has filled up
and started over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from rules import records, wording
from rules.records import format_instant
from rules.wording import clock_time

ZONES = [ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/London"), UTC,
         timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(seconds=3601))]
T0 = 1_779_206_400.0  # whole seconds; London changes its offset on 2026-10-25 01:00 UTC
DST = 1_792_890_000.0


@pytest.mark.parametrize("tz", ZONES, ids=str)
def test_cached_minutes_read_as_datetime_writes_them(tz: object,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records, "MINUTES_MAX", 50)  # start over several times
    monkeypatch.setattr(records, "_ISO_MINUTES", {})
    monkeypatch.setattr(wording, "_CLOCK_MINUTES", {})
    for start in (T0, DST - 3600):
        for i in range(0, 3 * 3600, 37):
            for t in (start + i, start + i + 0.25):
                d = datetime.fromtimestamp(t, tz)  # type: ignore[arg-type]
                want = d.isoformat(timespec="milliseconds" if d.microsecond else "seconds")
                for _ in range(2):  # made, then read from the cache
                    assert format_instant(t, tz) == want  # type: ignore[arg-type]
                    assert clock_time(t, tz) == d.strftime("%m-%d %H:%M:%S")  # type: ignore[arg-type]
    assert all(len(c) <= 50 for c in records._ISO_MINUTES.values())
