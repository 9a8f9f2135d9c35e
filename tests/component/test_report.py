"""Analysts' reports: a real replay, then ``report.html``, the PNGs, ``crisismon report`` and
``crisismon compare`` read back from its files, with figures checked exactly."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import structlog

from monitor.cli import main
from monitor.config import load_config
from monitor.report import load_summary

OFFICIAL = "1650000001"
CONFIG = """
timezone = "Asia/Shanghai"
[sla]
reply_within = "{reply_within}"
[store]
path = "state.db"
[alerts]
terminal = false
log = "alerts-live.jsonl"
[[brands]]
name = "快书包"
keywords = ["快书包"]
official_accounts = ["{official}"]
"""
PNG = b"\x89PNG\r\n\x1a\n"


def t(minute: int, second: int = 0) -> str:
    return f"2026-05-20T10:{minute:02d}:{second:02d}+08:00"


def status(pid: str, at: str, text: str, uid: str = "42", followers: int = 100,
           **extra: object) -> dict[str, object]:
    return {"id": pid, "created_at": at, "text": text, "reposts_count": 0,
            "comments_count": 0, "attitudes_count": 0,
            "user": {"id": uid, "screen_name": f"u{uid}", "followers_count": followers},
            **extra}


def feed_lines() -> list[dict[str, object]]:
    """Three mentions: answered at +2m, at +7m, never; a danger post by an influential
    author opens an incident (issue 17: one harm report opens one only when corroborated,
    here by the author's reach) and an official statement follows 30 minutes later."""
    official = {"id": OFFICIAL, "screen_name": "快书包官方", "followers_count": 50000}
    return [
        status("1", t(0), "快书包送货太慢了，差评"),
        status("2", t(1), "快书包的书包装很好，喜欢"),
        status("3", t(2), "快书包客服态度太差了"),
        {**status("11", t(2), "您好，已为您催单"), "user": official, "status": {"id": "1"}},
        {**status("12", t(8), "抱歉，已补发"), "user": official, "status": {"id": "2"}},
        status("4", t(10), "吃了快书包送的蛋糕食物中毒了，太可怕", uid="43", followers=500_000),
        {**status("13", t(40), "关于食品安全问题的声明：我们已下架相关产品"), "user": official},
    ]


@pytest.fixture(autouse=True)
def _unbind_logging() -> Iterator[None]:
    """The CLI points structlog at this test's captured stdout; later tests need it back."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    feed = tmp / "feed.jsonl"
    feed.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in feed_lines()),
                    encoding="utf-8")
    for name, within in (("a.toml", "5m"), ("b.toml", "10m")):
        (tmp / name).write_text(CONFIG.format(reply_within=within, official=OFFICIAL),
                                encoding="utf-8")
    assert main(["replay", str(feed), "--config", str(tmp / "a.toml"), "--out",
                 str(tmp / "out"), "--quiet"]) == 0
    structlog.reset_defaults()
    return tmp


def test_summary_figures_are_exact(replayed: Path) -> None:
    s = load_summary(replayed / "out", load_config(replayed / "a.toml"))
    assert len(s.needing) == 4  # the three complaints/praise and the danger post
    assert s.reply_times == [120.0, 420.0]
    assert s.in_time == 1
    assert s.compliance() == 0.25
    assert s.median() == 270.0
    assert s.percentile(0.9) == 420.0
    assert s.breaches == 3  # "2" replied at +7m, "3" and "4" never
    assert s.by_brand() == {"快书包": (4, 1)}
    # The incident plot's counts: negatives of the brand, times as posted (epoch s).
    negatives = [m for m in s.mentions if m["negative"]]
    assert negatives  # the complaints and the danger post
    assert s.negative_times == {"快书包": [
        datetime.fromisoformat(m["created_at"]).timestamp() for m in negatives]}
    [inc] = s.incidents
    assert inc.record["trigger"] == "danger"
    assert inc.detection_s == 0.0  # the danger post itself opened it
    assert inc.statement_s == 30 * 60.0


def test_mention_bins_are_those_of_the_posted_datetimes() -> None:
    """The mentions plot bins epoch seconds: the same bins as the differences of the
    posted datetimes, across a change of offset (DST) and with microseconds."""
    from collections import Counter
    from datetime import timedelta

    from monitor.plots import _bin, _sentiment_class, mention_bins
    from monitor.report import summarise

    posted = ["2024-03-31T01:59:59.999999+01:00", "2024-03-31T01:00:00+01:00",
              "2024-03-31T03:00:00+02:00", "2024-03-31T03:59:59.000001+02:00",
              "2024-03-31T05:00:00+02:00", "2024-03-31T00:30:00.5+00:00"]
    mentions = [{"id": str(i), "brand": "b", "created_at": t, "sentiment": 0.5 * (i % 3),
                 "negative": i % 3 == 0, "needs_reply": False, "reply_seconds": None}
                for i, t in enumerate(posted)]
    bins = mention_bins(summarise(Path("x"), mentions, [], [], {}))
    assert bins is not None
    times = [datetime.fromisoformat(t) for t in posted]
    t0 = min(times)
    unit, width = _bin((max(times) - t0).total_seconds())
    start = t0.replace(minute=0, second=0, microsecond=0)
    expected: dict[str, Counter[int]] = {k: Counter() for k in ("negative", "neutral",
                                                               "positive")}
    for t, m in zip(times, mentions, strict=True):
        expected[_sentiment_class(m)][int((t - start).total_seconds() // width)] += 1
    assert bins == (unit, width, start, expected)
    assert bins.start.utcoffset() == timedelta(hours=1)  # the first mention's own offset
    assert sum(bins.counts["negative"].values()) == 2


def test_replay_writes_a_self_contained_report_and_plots(replayed: Path) -> None:
    out = replayed / "out"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 4  # three plots + one incident
    assert "src='http" not in page and 'src="http' not in page  # nothing to fetch
    assert "25.0%" in page
    for name in ("mentions_per_hour", "reply_times", "sla_compliance"):
        assert (out / f"{name}.png").read_bytes().startswith(PNG)
    assert len(list(out.glob("incident_inc-*.png"))) == 1


def test_the_replays_report_equals_one_rebuilt_from_its_files(replayed: Path,
                                                               tmp_path: Path) -> None:
    """The replay hands its report process only the mention fields the report reads
    (``monitor.mention_record.MENTION_FIELDS``): the page and plots it wrote are those
    the whole files give."""
    import shutil

    from monitor.report import write_report

    out = replayed / "out"
    again = tmp_path / "out"
    shutil.copytree(out, again)
    for made in [*again.glob("*.png"), again / "report.html"]:
        made.unlink()
    write_report(again, load_config(replayed / "a.toml"))
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(p.name for p in again.glob("*.png")) and len(pngs) == 4
    for name in pngs:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    page = (out / "report.html").read_text(encoding="utf-8")
    assert (again / "report.html").read_text(encoding="utf-8") == page.replace(
        str(out), str(again))


def test_report_command_prints_the_summary(replayed: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(replayed / "out"), "--config", str(replayed / "a.toml")]) == 0
    text = capsys.readouterr().out
    assert "1 (25.0%)" in text and "4m30s" in text and "7m00s" in text
    assert "danger" in text
    assert main(["report", str(replayed / "out"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["breaches"] == 3 and data["p90_reply_seconds"] == 420.0
    assert main(["report", str(replayed / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_compare_shows_what_a_looser_sla_would_have_sent(
        replayed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = replayed / "cmp"
    assert main(["compare", str(replayed / "a.toml"), str(replayed / "b.toml"),
                 str(replayed / "feed.jsonl"), "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # At 10 minutes the +7m reply is in time: one breach fewer, compliance 1/4 -> 2/4.
    assert data["by_type"]["reply.breach"] == {"a": 3, "b": 2}
    assert data["sla_compliance"] == {"a": 0.25, "b": 0.5}
    assert len(data["incidents"]["a"]) == len(data["incidents"]["b"]) == 1
    assert data["alerts"]["only_a"] and not set(data["alerts"]["only_a"]) & set(
        data["alerts"]["only_b"])
    assert json.loads((out / "compare.json").read_text(encoding="utf-8")) == data
    assert main(["compare", str(replayed / "a.toml"), str(replayed / "b.toml"),
                 str(replayed / "feed.jsonl")]) == 0
    assert "reply.breach" in capsys.readouterr().out


@pytest.mark.parametrize("fork", [True, False], ids=["report-process", "in-process"])
def test_a_broken_report_is_logged_once_and_the_replay_succeeds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool) -> None:
    import asyncio
    import multiprocessing

    from monitor import report as report_mod
    from monitor.replay import replay

    def broken(*_a: object, **_k: object) -> Path:
        raise RuntimeError("no matplotlib today")

    monkeypatch.setattr(report_mod, "write_report", broken)  # the forked worker sees it too
    if not fork:  # a platform without fork: the report is rendered in this process
        monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in feed_lines()),
                    encoding="utf-8")
    (tmp_path / "a.toml").write_text(CONFIG.format(reply_within="5m", official=OFFICIAL),
                                     encoding="utf-8")
    out = tmp_path / "out"
    with structlog.testing.capture_logs() as logs:
        result = asyncio.run(replay(load_config(tmp_path / "a.toml"), [feed], out))
    failed = [e for e in logs if e["event"] == "replay report not written"]
    assert [e["error"] for e in failed] == ["RuntimeError: no matplotlib today"]
    assert result.alerts and (out / "alerts.jsonl").read_text(encoding="utf-8")
    assert not (out / "report.html").exists()


@pytest.mark.parametrize("trouble", ["none", "no fork", "the copy fails"])
def test_plots_drawn_on_two_cores_are_all_drawn(replayed: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                trouble: str) -> None:
    from monitor import plots

    summary = load_summary(replayed / "out", load_config(replayed / "a.toml"))
    parent = os.getpid()
    drawn_here: list[str] = []
    reply_times = plots.plot_reply_times

    def watched(s: object, path: Path) -> None:
        if os.getpid() != parent and trouble == "the copy fails":
            raise RuntimeError("the forked copy breaks")
        if os.getpid() == parent:
            drawn_here.append(path.name)
        reply_times(s, path)

    monkeypatch.setattr(plots, "plot_reply_times", watched)
    if trouble == "no fork":
        def no_fork() -> int:
            raise OSError("no process to spare")
        monkeypatch.setattr(os, "fork", no_fork)
    paths = plots.write_plots(summary, tmp_path, split=True)
    incident = summary.incidents[0].record["id"]
    assert [p.name for p in paths] == ["mentions_per_hour.png", "reply_times.png",
                                       "sla_compliance.png", f"incident_{incident}.png"]
    assert all(p.read_bytes().startswith(PNG) for p in paths)
    # Drawn by the copy unless it could not be made or failed; then here, once.
    assert drawn_here == ([] if trouble == "none" else ["reply_times.png"])


def test_a_nul_filled_line_is_reported_as_damage_not_as_a_codec(tmp_path: Path) -> None:
    """A crash can leave a run of NUL bytes where a line was being written: the message
    names the file and line, and does not guess a UTF-32 encoding from the NULs."""
    from monitor.report import ReportError, read_jsonl

    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b'{"id": "a-1"}\n' + b"\x00" * 12 + b"\n")
    with pytest.raises(ReportError) as err:
        read_jsonl(path)
    message = str(err.value)
    assert message.startswith(f"{path}:2: not a JSON line (")
    assert "utf-32" not in message and "codec" not in message
