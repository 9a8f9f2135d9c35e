"""Replay end to end: the bundled scenario gives exactly the contract's alerts, every time."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "seeds" / "feeds" / "sample_day.jsonl"
CASCADES = ROOT.parent / "shared" / "data" / "cascades"


def crisismon(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True,
                          text=True, cwd=cwd, check=False, timeout=600)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.toml")


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    run = crisismon("replay", str(SAMPLE), "--out", str(out), "--quiet")
    assert run.returncode == 0, run.stderr
    return out


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_type(alerts: list[dict[str, object]], kind: str) -> list[dict[str, object]]:
    return [a for a in alerts if a["type"] == kind]


def test_replay_writes_every_output(sample_out: Path) -> None:
    for name in ("alerts.jsonl", "mentions.jsonl", "incidents.jsonl", "report.json"):
        assert (sample_out / name).stat().st_size > 0, name
    report = json.loads((sample_out / "report.json").read_text(encoding="utf-8"))
    assert report["skipped_lines"] == 0
    assert report["incidents"] == 1
    assert report["alerts"] == len(read_jsonl(sample_out / "alerts.jsonl"))


def test_alert_records_carry_the_contract_fields(sample_out: Path) -> None:
    alerts = read_jsonl(sample_out / "alerts.jsonl")
    fields = {"id", "type", "at", "brand", "level", "severity", "post_id", "incident_id",
              "recipients", "title", "text"}
    for a in alerts:
        assert fields <= set(a), a
        assert a["brand"] == "小满咖啡" and a["severity"] in ("P1", "P2", "P3", "P4")
        assert str(a["at"]).endswith("+08:00")
    assert len({a["id"] for a in alerts}) == len(alerts)


def test_the_scenario_crisis(sample_out: Path) -> None:
    alerts = read_jsonl(sample_out / "alerts.jsonl")
    crisis = [(a["type"], a["at"], a["level"]) for a in alerts
              if str(a["type"]).startswith("crisis.")]
    assert crisis == [
        ("crisis.opened", "2026-05-20T14:00:00+08:00", 2),  # the influencer's poisoning post
        ("crisis.checkpoint", "2026-05-20T15:00:00+08:00", 1),
        ("crisis.escalated", "2026-05-20T15:00:00+08:00", 2),  # statement only at 15:25
        ("crisis.checkpoint", "2026-05-20T18:00:00+08:00", 1),
        ("crisis.checkpoint", "2026-05-21T02:00:00+08:00", 1),
        ("crisis.checkpoint", "2026-05-21T14:00:00+08:00", 1),
        ("crisis.closed", "2026-05-21T14:00:00+08:00", 0),
    ]
    (incident,) = read_jsonl(sample_out / "incidents.jsonl")
    assert incident["trigger"] == "danger" and incident["severity"] == "P1"
    assert incident["statement_at"] == "2026-05-20T15:25:00+08:00"
    assert {a["incident_id"] for a in alerts if str(a["type"]).startswith("crisis.")} == \
        {incident["id"]}
    assert all(a["recipients"] == ["公关负责人"] for a in alerts if a["level"] == 2)


def test_the_scenario_reply_rule(sample_out: Path) -> None:
    alerts = read_jsonl(sample_out / "alerts.jsonl")
    mentions = {m["text"]: m for m in read_jsonl(sample_out / "mentions.jsonl")}

    def pid(prefix: str) -> str:
        return next(str(m["id"]) for t, m in mentions.items() if t.startswith(prefix))

    def seen(post_id: str) -> list[tuple[object, object]]:
        return [(a["type"], a["at"]) for a in alerts if a["post_id"] == post_id]

    # Private resolve at 10:40 and no public follow-up: resolution.not_public at 11:10.
    assert seen(pid("在小满咖啡门店买的拿铁里有头发")) == [
        ("mention.new", "2026-05-20T10:30:00+08:00"),
        ("resolution.not_public", "2026-05-20T11:10:00+08:00"),
    ]
    # Private resolve followed by a public reply: nothing more.
    assert seen(pid("小满咖啡外卖送错了")) == [("mention.new", "2026-05-20T09:12:00+08:00")]
    # An official reply that argues: reply.argument at the reply's time, to the supervisor.
    argue = [a for a in by_type(alerts, "reply.argument")]
    assert [(a["post_id"], a["at"], a["level"]) for a in argue] == [
        (pid("小满咖啡的店员态度太差了"), "2026-05-20T11:07:00+08:00", 1)]
    # Acknowledged but never answered: the whole ladder still runs.
    assert seen(pid("小满咖啡会员卡余额")) == [
        ("mention.new", "2026-05-20T16:20:00+08:00"),
        ("reply.warning", "2026-05-20T16:23:00+08:00"),
        ("reply.breach", "2026-05-20T16:25:00+08:00"),
        ("reply.escalated", "2026-05-20T16:35:00+08:00"),
    ]
    # A comment mention answered through reply_comment in 2 minutes.
    assert seen(pid("小满咖啡的冰美式不错")) == [("mention.new", "2026-05-20T12:00:00+08:00")]
    # Traditional characters are a mention; the solar term 小满 is not.
    assert any(t.startswith("小满咖啡的新品太好喝了[哈哈]，推荐") for t in mentions)
    assert not any("节气" in t or t.startswith("今日小满") for t in mentions)
    # The pure repost counts as a mention (volume) but needs no reply.
    pure = [m for m in mentions.values() if str(m["text"]).startswith("转发微博//@用户")]
    assert len(pure) == 1 and pure[0]["needs_reply"] is False
    assert seen(str(pure[0]["id"])) == []


def test_every_breach_is_a_mention_left_unanswered_for_5_minutes(sample_out: Path) -> None:
    alerts = read_jsonl(sample_out / "alerts.jsonl")
    mentions = {m["id"]: m for m in read_jsonl(sample_out / "mentions.jsonl")}
    for a in by_type(alerts, "reply.breach"):
        m = mentions[a["post_id"]]
        assert m["reply_seconds"] is None or m["reply_seconds"] > 300
    for m in mentions.values():
        breached = any(a["post_id"] == m["id"] for a in by_type(alerts, "reply.breach"))
        late = m["needs_reply"] and (m["reply_seconds"] is None or m["reply_seconds"] > 300)
        assert breached == late, m


def test_replay_is_byte_identical(sample_out: Path, tmp_path: Path) -> None:
    run = crisismon("replay", str(SAMPLE), "--out", str(tmp_path), "--quiet")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "alerts.jsonl").read_bytes() == (sample_out / "alerts.jsonl").read_bytes()
    assert (tmp_path / "mentions.jsonl").read_bytes() == \
        (sample_out / "mentions.jsonl").read_bytes()
    # The state database too, row for row in the order written (rowids included): each
    # run is a new process, so an order taken from a set of objects or ids would differ.
    for table in ("events", "alerts", "mentions", "incidents"):
        assert table_rows(tmp_path / "state.db", table) == \
            table_rows(sample_out / "state.db", table), table


def table_rows(db: Path, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid").fetchall()


def test_gzip_feed_gives_the_same_alerts(sample_out: Path, tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "sample.jsonl.gz"
    gz.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    run = crisismon("replay", str(gz), "--out", str(tmp_path / "o"), "--quiet")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "o" / "alerts.jsonl").read_bytes() == \
        (sample_out / "alerts.jsonl").read_bytes()


def test_until_stops_the_clock(tmp_path: Path) -> None:
    run = crisismon("replay", str(SAMPLE), "--out", str(tmp_path), "--quiet",
                    "--until", "2026-05-20T14:30:00+08:00")
    assert run.returncode == 0, run.stderr
    alerts = read_jsonl(tmp_path / "alerts.jsonl")
    assert alerts and max(str(a["at"]) for a in alerts) <= "2026-05-20T14:30:00+08:00"
    assert "crisis.closed" not in {a["type"] for a in alerts}


def test_bad_lines_are_reported_and_the_rest_replays(tmp_path: Path) -> None:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([lines[0], "{oops", lines[1], '{"id": 5}', *lines[2:]]) + "\n",
                      encoding="utf-8")
    run = crisismon("replay", str(broken), "--out", str(tmp_path / "o"), "--quiet")
    assert run.returncode == 0
    assert f"{broken}:2: not valid JSON" in run.stderr
    assert f"{broken}:4: created_at is missing" in run.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    assert report["skipped_lines"] == 2 and report["events"] == len(lines)


def test_without_fork_the_replay_writes_the_same_files(sample_out: Path, tmp_path: Path,
                                                       config: Config,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    from monitor.replay import replay

    # No second process: the feed is read, matched and scored in this one, and the report
    # rendered here too.
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    result = asyncio.run(replay(config, [SAMPLE], tmp_path))
    assert result.feed.events == 303
    for name in ("alerts.jsonl", "mentions.jsonl", "incidents.jsonl"):
        assert (tmp_path / name).read_bytes() == (sample_out / name).read_bytes(), name
    assert (tmp_path / "report.html").exists()


@pytest.mark.parametrize("fork", [True, False], ids=["forked-reader", "no-fork"])
def test_the_models_are_loaded_once(config: Config, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, fork: bool) -> None:
    """With a forked reader the models load there only (it scores every post); without
    one, once, here."""
    import multiprocessing

    from monitor import app
    from monitor.replay import replay

    built: list[int] = []
    real = app.build_scorer

    def counted(cfg: Config) -> object:
        built.append(os.getpid())  # the forked reader appends to its own copy
        return real(cfg)

    monkeypatch.setattr(app, "build_scorer", counted)
    if not fork:
        monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    result = asyncio.run(replay(config, [SAMPLE], tmp_path))
    assert result.alerts  # every post was matched and scored, by one process or the other
    assert built == ([] if fork else [os.getpid()])


def test_a_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    """The reader loads the models, and its error reaches the user as one: exit 2."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8").replace(
        '[scoring]\n', '[scoring]\nmodel_path = "no-such-model.msgpack.gz"\n', 1)
    assert "no-such-model" in text
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    run = crisismon("replay", str(SAMPLE), "--config", str(tmp_path / "config.toml"),
                    "--out", str(tmp_path / "out"), "--quiet")
    assert run.returncode == 2, run.stderr
    assert "scoring.model_path:" in run.stderr and "no-such-model.msgpack.gz does not exist" \
        in run.stderr
    assert "Traceback" not in run.stderr


def test_missing_feed_is_a_usage_error(tmp_path: Path) -> None:
    run = crisismon("replay", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path))
    assert run.returncode == 2 and "no such feed file" in run.stderr


def test_speed_paces_the_replay_but_not_the_output(sample_out: Path, tmp_path: Path,
                                                   config: Config) -> None:
    from monitor.replay import replay

    # The first 20 simulated minutes at 2400x take about half a second of wall time.
    started = time.monotonic()
    first = 1779236581.0  # 2026-05-20T08:23:01+08:00, the sample's first line
    asyncio.run(replay(config, [SAMPLE], tmp_path, speed=2400.0, until=first + 20 * 60))
    assert time.monotonic() - started >= 0.4
    fast = read_jsonl(sample_out / "alerts.jsonl")
    paced = read_jsonl(tmp_path / "alerts.jsonl")
    assert paced == fast[: len(paced)]


@pytest.mark.slow
def test_the_real_cascades_replay_without_error(tmp_path: Path) -> None:
    feeds = sorted(CASCADES.glob("*.jsonl"))
    assert len(feeds) == 30, f"expected the 30 cascades in {CASCADES}"
    cfg = tmp_path / "cascades.toml"
    cfg.write_text((ROOT / "seeds" / "configs" / "cascades.toml").read_text(encoding="utf-8"),
                   encoding="utf-8")
    started = time.monotonic()
    run = crisismon("replay", *map(str, feeds), "--config", str(ROOT / "seeds" / "configs" /
                    "cascades.toml"), "--out", str(tmp_path / "o"), "--quiet")
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))
    assert report["events"] == 29131 and report["skipped_lines"] == 0
    assert report["mentions"] > 0 and report["alerts"] > 0
    print(f"30 cascades: {report['events']} posts, {report['alerts']} alerts in {elapsed:.1f}s")


def test_a_feed_ack_naming_an_alert_or_its_repeat_acks_the_mention(config: Config,
                                                                    tmp_path: Path) -> None:
    from monitor.replay import replay
    from rules.records import alert_id

    first = "2026-05-20T09:00:00+08:00"
    lines = [
        {"id": "9001", "created_at": first, "text": "小满咖啡的外卖又送错了",
         "user": {"id": "77", "screen_name": "顾客甲"}},
        {"id": "9002", "created_at": first, "text": "小满咖啡今天排队好久",
         "user": {"id": "78", "screen_name": "顾客乙"}},
        # A repeat's idempotency key (``-r1``) acks the alert it repeats; an unknown
        # alert id acks nothing.
        {"action": "ack", "target": alert_id("mention.new", "小满咖啡", "9001") + "-r1",
         "by": "值班客服", "created_at": "2026-05-20T09:01:00+08:00"},
        {"action": "ack", "target": "a-00000000000000ff", "by": "值班客服",
         "created_at": "2026-05-20T09:01:00+08:00"},
    ]
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines),
                    encoding="utf-8")
    asyncio.run(replay(config, [feed], tmp_path / "out"))
    acked = {m["id"]: m["acked_by"] for m in read_jsonl(tmp_path / "out" / "mentions.jsonl")}
    assert acked == {"9001": "值班客服", "9002": None}


def test_mentions_carry_the_three_class_reading(sample_out: Path) -> None:
    mentions = read_jsonl(sample_out / "mentions.jsonl")
    assert mentions
    for m in mentions:
        assert m["polarity"] in ("negative", "neutral", "positive")
        assert 0.0 <= m["p_negative"] <= 1.0
        assert m["negative"] is (m["polarity"] == "negative")
    assert {m["polarity"] for m in mentions} == {"negative", "neutral", "positive"}


def test_plain_posts_handed_over_short_are_stored_as_whole_ones(tmp_path: Path,
                                                                config: Config,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """The forked reader hands plain posts over as ``PlainPost`` (id and time, the body
    apart): stored once with the same row, and a repeat (in the same chunk or a later one,
    with new counters) handled as the whole post it is, as without the fork."""
    import multiprocessing

    from monitor.replay import replay

    def plain(pid: int, at: str, reposts: int = 0) -> str:
        return json.dumps({"id": str(pid), "text": "今天天气不错，出门走走", "created_at": at,
                           "reposts_count": reposts,
                           "user": {"id": 42, "screen_name": "路人", "followers_count": 3}},
                          ensure_ascii=False)

    extra = [plain(900_001, "2026-05-20T08:00:00+08:00"),  # the first chunk (256 events)
             plain(900_002, "2026-05-20T08:00:01+08:00"),
             plain(900_001, "2026-05-20T22:50:00+08:00", reposts=5),  # later chunks
             plain(900_003, "2026-05-20T22:50:01+08:00"),
             plain(900_003, "2026-05-20T22:50:02+08:00"),  # a repeat in the same chunk
             plain(900_002, "2026-05-20T22:50:03+08:00")]
    feed = tmp_path / "feed.jsonl"
    feed.write_text(SAMPLE.read_text(encoding="utf-8") + "\n".join(extra) + "\n",
                    encoding="utf-8")

    def run(out: Path) -> tuple[dict[str, object], list[tuple[object, ...]], bytes]:
        asyncio.run(replay(config, [feed], out, analyst_report=False))
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        report.pop("wall_seconds")
        db = sqlite3.connect(out / "state.db")
        try:
            rows = db.execute("SELECT seq, key, kind, seen_at, body, decision FROM events "
                              "ORDER BY seq").fetchall()
        finally:
            db.close()
        return report, rows, (out / "alerts.jsonl").read_bytes()

    forked = run(tmp_path / "forked")
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    alone = run(tmp_path / "alone")
    assert forked == alone
    report, rows, _ = forked
    assert report["duplicates"] == 3 and report["posts"] == len(rows) - report["actions"]
    assert [r[1] for r in rows].count("p:900001") == 1
