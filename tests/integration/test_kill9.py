"""kill -9 at any moment, restart: nothing stored, pending or unsent is lost; nothing twice.

A real ``crisismon run`` plays a recorded feed at 60x (ScaledClock) and is SIGKILLed at
several points, restarted each time, then left to finish. Its alert ids and types (in
``var/alerts.jsonl`` and in the store) must equal those of an uninterrupted replay of the
same feed, with no id twice. (``at`` of ``mention.new`` is the live clock's, so it is not
compared.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.fixtures.kill9 import (
    FAST_SLA,
    alert_keys,
    duplicated,
    replay_reference,
    stored_alerts,
    undelivered,
    wait_alerts,
)
from tests.fixtures.service import (
    T0,
    Daemon,
    NotifySocket,
    config_text,
    post,
    read_alerts,
    write_feed,
)

SPEED = 60
CRISIS = "[crisis]\nburst_min_negatives = 100\ndanger_min_posts = 100\n"
"""No crisis: its 24 h checkpoints would outlast a live test run."""


def feed_lines() -> list[dict[str, object]]:
    """Five minutes of traffic: mentions, one answered in time, one late, noise."""
    lines = []
    for i in range(12):
        at = T0 + i * 25
        if i % 3 == 2:
            lines.append(post(f"n{i}", at, f"今天天气不错 {i}"))
        else:
            lines.append(post(f"m{i}", at, f"小满咖啡第{i}次送错外卖了，太差劲", user=str(100 + i)))
    # Official replies: m0 answered before its warning, m4 after its breach.
    lines.append(post("r0", T0 + 20, "您好，已为您安排补送", user="7000000001",
                      status={"id": "m0"}))
    lines.append(post("r4", T0 + 100 + 70, "抱歉，马上处理", user="7000000001",
                      status={"id": "m4"}))
    return sorted(lines, key=lambda x: str(x["created_at"]))


def reference(tmp: Path, feed: Path) -> list[tuple[str, str]]:
    """The uninterrupted run: ``crisismon replay`` of the same feed and config."""
    cfg = tmp / "ref.toml"
    cfg.write_text(config_text(feed, SPEED, sla=FAST_SLA, extra=CRISIS), encoding="utf-8")
    out = replay_reference(cfg, feed, tmp / "ref-out", timeout=120)
    return alert_keys(read_alerts(out / "alerts.jsonl"))


def test_kill9_at_several_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "feed.jsonl", feed_lines())
    expected = reference(tmp_path, feed)
    assert len(expected) >= 20  # mentions, warnings, breaches, escalations
    live = tmp_path / "live"
    live.mkdir()
    cfg = live / "config.toml"
    cfg.write_text(config_text(feed, SPEED, sla=FAST_SLA, extra=CRISIS), encoding="utf-8")
    log = live / "var" / "alerts.jsonl"
    kills = []
    for wait in (0.7, 0.05, 2.5):  # seconds after READY: mid-feed, mid-deadlines
        sock = NotifySocket()
        d = Daemon(cfg, {"NOTIFY_SOCKET": sock.name})
        try:
            d.wait_ready(sock)
            time.sleep(wait)
            d.proc.kill()  # SIGKILL: no handler, no flush
            d.proc.wait(10)
            kills.append(len(read_alerts(log)))
        finally:
            d.kill()
            sock.close()
    d = Daemon(cfg)
    try:
        wait_alerts(log, len(expected), timeout=20)
        assert d.stop() == 0, d.tail()
    finally:
        d.kill()
    assert kills == sorted(kills) and kills[-1] < len(expected), kills  # really cut midway
    written = read_alerts(log)
    assert duplicated(a["id"] for a in written) == []  # never sent twice
    assert alert_keys(written) == expected
    db = live / "var" / "crisismon.db"
    assert stored_alerts(db) == expected
    assert undelivered(db) == 0
    print(json.dumps({"alerts": len(expected), "alerts_logged_at_each_kill": kills}))
