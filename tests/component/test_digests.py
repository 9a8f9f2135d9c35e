"""Digests in replay: a two-day feed with a daily digest at 09:00 gives two digests whose
figures match what the feed itself says (worked out here from the feed lines, not by
the digest code)."""

from __future__ import annotations

import json
import math
import random
import statistics
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CN = timezone(timedelta(hours=8))
DAY0 = datetime(2026, 5, 19, 9, 0, tzinfo=CN)  # the feed starts at 09:00 on day 0
OFFICIAL = {"id": "1650000001", "screen_name": "快书包官方", "followers_count": 50000,
            "verified": True}
NEGATIVE = ["快书包送货太慢了，等了一个小时，差评[怒]", "快书包的客服态度太差了，再也不买了[怒]",
            "快书包的书包装破了，失望[失望]"]
POSITIVE = ["快书包送货好快，包装也很用心，点赞[赞]", "快书包的新书推荐很好看，喜欢[心]",
            "快书包半小时就送到了，太方便了[哈哈]"]
DELAYS = [60, 120, 179, 180, 240, 299, 300, 301, 420, 899, 900, 1000, None, None]
"""Seconds from a mention to the official reply (None: never answered); the edges of the
3, 5 and 15 minute deadlines are in it."""
DANGER_AT = DAY0 + timedelta(hours=41)  # 05-21 02:00, in the second digest's period
STATEMENT_AFTER = 2400

CONFIG = """
timezone = "Asia/Shanghai"
[store]
path = "var/state.db"
[alerts]
terminal = false
log = "var/alerts.jsonl"
[[brands]]
name = "快书包"
keywords = ["快书包"]
official_accounts = ["1650000001"]
[[digests]]
name = "daily"
cron = "0 9 * * *"
"""


def iso(t: datetime) -> str:
    return t.isoformat()


def make_feed() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The feed lines, and the truth about each mention (time, negative, reply time,
    followers) as it was written."""
    rng = random.Random(7)
    lines: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    t = DAY0
    n = 0
    end = DAY0 + timedelta(hours=47, minutes=30)
    while t < end:
        n += 1
        negative = rng.random() < 0.35
        text = rng.choice(NEGATIVE if negative else POSITIVE)
        delay = rng.choice(DELAYS)
        followers = rng.randint(10, 90_000)
        pid = f"50{n:08d}"
        lines.append({"id": pid, "created_at": iso(t), "text": text,
                      "user": {"id": str(2000 + n), "screen_name": f"用户{n}",
                               "followers_count": followers, "verified": False},
                      "reposts_count": 0, "comments_count": 0, "attitudes_count": 0})
        if delay is not None:
            lines.append({"id": f"49{n:08d}", "created_at": iso(t + timedelta(seconds=delay)),
                          "text": "您好，已私信您，感谢反馈", "user": OFFICIAL,
                          "status": {"id": pid}, "reposts_count": 0, "comments_count": 0,
                          "attitudes_count": 0})
        truth.append({"id": pid, "at": t.timestamp(), "negative": negative, "delay": delay,
                      "followers": followers})
        # Sparse enough that no burst of negatives opens an incident: about one an hour.
        t += timedelta(seconds=rng.randint(25 * 60, 95 * 60))
    # Two minutes before the first digest, answered three minutes later: at 09:00 it is
    # neither late nor answered (pending), and its reply is not counted in either digest.
    edge = DAY0 + timedelta(hours=23, minutes=58)
    lines.append({"id": "5088888888", "created_at": iso(edge), "text": POSITIVE[0],
                  "user": {"id": "3001", "screen_name": "用户edge", "followers_count": 5,
                           "verified": False},
                  "reposts_count": 0, "comments_count": 0, "attitudes_count": 0})
    lines.append({"id": "4988888888", "created_at": iso(edge + timedelta(seconds=180)),
                  "text": "您好，已私信您，感谢反馈", "user": OFFICIAL,
                  "status": {"id": "5088888888"}, "reposts_count": 0, "comments_count": 0,
                  "attitudes_count": 0})
    truth.append({"id": "5088888888", "at": edge.timestamp(), "negative": False,
                  "delay": 180, "followers": 5})
    # One story: an influencer's poisoning post opens an incident at once; the official
    # statement follows 40 minutes later.
    lines.append({"id": "5099999999", "created_at": iso(DANGER_AT),
                  "text": "在快书包买的零食吃了食物中毒，上吐下泻送医了[怒]",
                  "user": {"id": "3000", "screen_name": "美食博主阿杰", "followers_count": 520_000,
                           "verified": True},
                  "reposts_count": 0, "comments_count": 0, "attitudes_count": 0})
    lines.append({"id": "4999999999", "created_at": iso(DANGER_AT + timedelta(seconds=60)),
                  "text": "您好，已私信您，感谢反馈", "user": OFFICIAL,
                  "status": {"id": "5099999999"}, "reposts_count": 0, "comments_count": 0,
                  "attitudes_count": 0})
    lines.append({"id": "5199999999",
                  "created_at": iso(DANGER_AT + timedelta(seconds=STATEMENT_AFTER)),
                  "text": "关于网友反映食品问题的说明：我们已下架相关批次并联系顾客",
                  "user": OFFICIAL, "reposts_count": 0, "comments_count": 0,
                  "attitudes_count": 0})
    truth.append({"id": "5099999999", "at": DANGER_AT.timestamp(), "negative": True,
                  "delay": 60, "followers": 520_000})
    lines.sort(key=lambda o: datetime.fromisoformat(o["created_at"]))
    return lines, truth


def expected(truth: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    """The digest's figures for [start, end), from the feed's truth, by hand."""
    ms = [m for m in truth if start <= m["at"] < end]
    replied = sorted(m["delay"] for m in ms
                     if m["delay"] is not None and m["at"] + m["delay"] < end)
    pending = [m for m in ms if m["at"] + 300 >= end
               and (m["delay"] is None or m["at"] + m["delay"] >= end)]
    in_time = sum(1 for d in replied if d <= 300)
    judged = len(ms) - len(pending)

    def late(m: dict[str, Any], after: float) -> bool:  # the alert due at m + after fires
        due = m["at"] + after
        return start <= due < end and (m["delay"] is None or m["delay"] > after)

    return {
        "mentions": len(ms),
        "negative": sum(m["negative"] for m in ms),
        "replied_in_time": in_time,
        "pending": len(pending),
        "replied_in_time_pct": round(100 * in_time / judged, 1),
        "median_reply_seconds": statistics.median(replied),
        "p90_reply_seconds": replied[math.ceil(0.9 * len(replied)) - 1],
        "breaches": {"L0": sum(late(m, 180) for m in truth), "L1": sum(late(m, 300) for m in truth),
                     "L2": sum(late(m, 900) for m in truth)},
        "top": [m["id"] for m in sorted(ms, key=lambda m: -m["followers"])[:5]],
    }


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("digests")
    lines, truth = make_feed()
    feed = tmp / "two_days.jsonl"
    feed.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in lines),
                    encoding="utf-8")
    (tmp / "config.toml").write_text(CONFIG, encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "replay", str(feed), "--config",
                          str(tmp / "config.toml"), "--out", str(tmp / "out"), "--quiet"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    return tmp / "out", truth


def test_two_days_two_digests_with_the_feeds_figures(
        replayed: tuple[Path, list[dict[str, Any]]]) -> None:
    out, truth = replayed
    digests = [json.loads(line) for line in
               (out / "digests.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(d["name"], d["at"], d["period_start"], d["period_end"]) for d in digests] == [
        ("daily", "2026-05-20T09:00:00+08:00", "2026-05-19T09:00:00+08:00",
         "2026-05-20T09:00:00+08:00"),
        ("daily", "2026-05-21T09:00:00+08:00", "2026-05-20T09:00:00+08:00",
         "2026-05-21T09:00:00+08:00"),
    ]
    day = 86400.0
    t0 = DAY0.timestamp()
    for k, digest in enumerate(digests):
        want = expected(truth, t0 + k * day, t0 + (k + 1) * day)
        (b,) = digest["brands"]
        assert b["brand"] == "快书包"
        got = {key: b[key] for key in ("mentions", "negative", "replied_in_time", "pending",
                                       "replied_in_time_pct", "median_reply_seconds",
                                       "p90_reply_seconds", "breaches")}
        got["top"] = [p["post_id"] for p in b["top_posts"]]
        assert got == want, k
        assert b["mentions"] > 15 and 0 < b["negative"] < b["mentions"]  # a real test
    assert digests[0]["brands"][0]["pending"] == 1  # the 08:58 mention
    # Day 0 has no history before it; day 1's baseline is day 0.
    first, second = digests[0]["brands"][0], digests[1]["brands"][0]
    assert first["baseline"] is None
    day0 = [m for m in truth if t0 <= m["at"] < t0 + day]
    assert second["baseline"] == {"mentions": len(day0), "negative_share": round(
        sum(m["negative"] for m in day0) / len(day0), 4)}
    # The poisoning story: an incident in the second digest, detected at once, its
    # statement 40 minutes after, still open when the digest was made.
    assert first["incidents"] == []
    (inc,) = second["incidents"]
    assert inc["opened_at"] == "2026-05-21T02:00:00+08:00" and inc["trigger"] == "danger"
    assert inc["detection_seconds"] == 0 and inc["statement_seconds"] == STATEMENT_AFTER
    assert inc["closed_at"] is None
    assert second["top_posts"][0]["post_id"] == "5099999999"


def test_replay_of_digests_is_byte_identical(tmp_path: Path,
                                             replayed: tuple[Path, list[dict[str, Any]]]) -> None:
    out, _ = replayed
    feed = out.parent / "two_days.jsonl"
    run = subprocess.run([sys.executable, "-m", "monitor.cli", "replay", str(feed), "--config",
                          str(out.parent / "config.toml"), "--out", str(tmp_path), "--quiet"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "digests.jsonl").read_bytes() == (out / "digests.jsonl").read_bytes()
    assert (tmp_path / "alerts.jsonl").read_bytes() == (out / "alerts.jsonl").read_bytes()


def crisismon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, check=False)


def test_crisismon_digest_prints_what_the_replay_made(
        replayed: tuple[Path, list[dict[str, Any]]]) -> None:
    """Computed again later from the store, a digest says what it said when it was made."""
    out, _ = replayed
    made = json.loads((out / "digests.jsonl").read_text(encoding="utf-8").splitlines()[1])
    res = crisismon("digest", "daily", "--config", str(out.parent / "config.toml"), "--store",
                    str(out / "state.db"), "--at", "2026-05-21T15:00:00+08:00", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == made
    res = crisismon("digest", "daily", "--config", str(out.parent / "config.toml"), "--store",
                    str(out / "state.db"), "--at", "2026-05-21T15:00:00+08:00")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("舆情摘要 daily：05-20 09:00 – 05-21 09:00\n")
    b = made["brands"][0]
    assert f"提及：{b['mentions']} 条（基线 {b['baseline']['mentions']:g} 条" in res.stdout
    res = crisismon("digest", "weekly", "--config", str(out.parent / "config.toml"))
    assert res.returncode == 2
    assert res.stderr.strip() == ("crisismon: error: weekly: no such digest in [[digests]] "
                                  "(daily)")


def test_crisismon_digest_now_sends_it_once_through_the_outbox(
        tmp_path: Path, replayed: tuple[Path, list[dict[str, Any]]]) -> None:
    out, _ = replayed
    db = tmp_path / "state.db"
    db.write_bytes((out / "state.db").read_bytes())
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.replace('cron = "0 9 * * *"',
                                     'cron = "0 9 * * *"\nchannels = ["terminal"]'),
                      encoding="utf-8")
    args = ("digest", "daily", "--config", str(config), "--store", str(db), "--at",
            "2026-05-21T15:00:00+08:00", "--now", "--json")
    first = crisismon(*args)
    assert first.returncode == 0, first.stderr
    sent = json.loads(first.stdout)
    assert (sent["period_start"], sent["period_end"], sent["at"]) == (
        "2026-05-21T09:00:00+08:00", "2026-05-21T15:00:00+08:00", "2026-05-21T15:00:00+08:00")
    assert "舆情摘要 daily：05-21 09:00 – 05-21 15:00" in first.stderr  # the terminal channel
    assert f"{sent['id']} -> terminal: sent" in first.stderr
    again = crisismon(*args)
    assert again.returncode == 0, again.stderr
    assert "stored before" in again.stderr and "舆情摘要" not in again.stderr  # not twice
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT d.channel, d.state FROM alerts a JOIN deliveries d ON "
                            "d.alert_id = a.id WHERE a.type = 'digest'").fetchall()
    assert rows == [("terminal", "delivered")]
