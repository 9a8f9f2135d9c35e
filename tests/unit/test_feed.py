"""Recorded feeds and the edge: times, gzip, bad lines counted with file and line."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.feed import FeedStats, iter_feed, read_feeds
from monitor.normalise import BadInput, is_pure_repost, normalise_text, parse_time, to_event
from rules.records import Action, Post, PostKind

STATUS = {"id": 1, "created_at": "Tue May 31 17:46:55 +0800 2011", "text": "快书包不错",
          "user": {"id": 7, "screen_name": "a", "followers_count": 3, "verified": False},
          "reposts_count": 0, "comments_count": 0, "attitudes_count": 0}


@pytest.mark.parametrize(("text", "iso_utc"), [
    ("Tue May 31 17:46:55 +0800 2011", "2011-05-31T09:46:55+00:00"),
    ("Wed May 20 08:25:40 -0130 2026", "2026-05-20T09:55:40+00:00"),
    ("2013-04-05T22:34:13+08:00", "2013-04-05T14:34:13+00:00"),
    ("2013-04-05T14:34:13Z", "2013-04-05T14:34:13+00:00"),
    ("2013-04-05 22:34:13", "2013-04-05T14:34:13+00:00"),  # no offset: China time
])
def test_both_time_formats_parse(text: str, iso_utc: str) -> None:
    assert datetime.fromtimestamp(parse_time(text), UTC).isoformat() == iso_utc


@pytest.mark.parametrize("bad", ["yesterday", "", "Tue Foo 31 17:46:55 +0800 2011", None, True])
def test_bad_times_are_refused_with_a_reason(bad: object) -> None:
    with pytest.raises(BadInput, match="created_at"):
        parse_time(bad)


def test_status_comment_and_action_records() -> None:
    s = to_event(STATUS)
    assert isinstance(s, Post) and s.kind is PostKind.STATUS and s.id == "1"
    assert s.author.id == "7"  # ids compared as strings everywhere
    c = to_event({**STATUS, "id": "2", "status": {"id": 1}, "reply_comment": {"id": "9"}})
    assert isinstance(c, Post) and c.kind is PostKind.COMMENT
    assert (c.on_status_id, c.reply_to_id) == ("1", "9")
    r = to_event({**STATUS, "id": 3, "retweeted_status": {"id": 1, "text": "..."}})
    assert isinstance(r, Post) and r.reposts_id == "1"
    a = to_event({"action": "resolve", "target": "1", "by": "王", "public": False,
                  "created_at": "2011-05-31T17:50:00+08:00"})
    assert isinstance(a, Action) and a.public is False


def test_flat_retweeted_id_of_cascade_exports_is_understood() -> None:
    r = to_event({**STATUS, "id": "5", "retweeted_id": "1", "text": "转发微博"})
    assert isinstance(r, Post) and r.reposts_id == "1" and is_pure_repost(r)


@pytest.mark.parametrize(("obj", "reason"), [
    ({"created_at": "2011-05-31T17:50:00+08:00", "text": "x"}, "id is missing"),
    ({"id": 1, "text": "x", "user": {"id": 1}}, "created_at is missing"),
    ({**STATUS, "user": None}, "user is missing"),
    ({**STATUS, "text": 5}, "text must be a string"),
    ({"action": "delete", "target": "1", "created_at": "2011-05-31T17:50:00+08:00"},
     "is not \"ack\" or \"resolve\""),
    ({"action": "resolve", "target": "1", "created_at": "2011-05-31T17:50:00+08:00"},
     "needs \"public\""),
    ([1, 2], "expected a JSON object"),
])
def test_malformed_objects_raise_bad_input(obj: object, reason: str) -> None:
    with pytest.raises(BadInput, match=reason):
        to_event(obj)


def test_text_is_normalised_once_at_the_edge() -> None:
    assert normalise_text("快书包&amp;小满 <a href='x'>@某人</a>") == "快书包&小满 @某人"
    assert normalise_text("ＫＵＡＩ　书包\x00\u200b") == "KUAI 书包"
    assert normalise_text("這個產品質量太差") == "这个产品质量太差"
    assert len(normalise_text("差" * 1_000_000)) == 10_000


@pytest.mark.parametrize(("raw", "once"), [
    ("<<>>", "<<>>"),  # not markup (hypothesis found it: one pass used to leave "<>")
    ("我太喜欢看&lt;@我是歌手 &gt;了", "我太喜欢看<@我是歌手 >了"),  # a real post's words
    ("&lt;a href='x'&gt;美的&lt;/a&gt;", "美的"),  # escaped markup is markup
    ("美的&amp;amp;空调", "美的&空调"),  # one unescape left "&amp;"
    ("美的" + "好 " * 5000, ("美的" + "好 " * 5000)[:9_999]),  # cut just after a space
])
def test_normalising_twice_changes_nothing(raw: str, once: str) -> None:
    assert normalise_text(raw) == once
    assert normalise_text(once) == once


def write(path: Path, lines: list[str]) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_bad_lines_are_skipped_counted_and_located(tmp_path: Path) -> None:
    good = json.dumps(STATUS, ensure_ascii=False)
    feed = write(tmp_path / "f.jsonl", [
        good,
        "{not json",
        json.dumps({"id": 2, "text": "no time"}),
        "",
        json.dumps({**STATUS, "id": 3}),
    ])
    (tmp_path / "f.jsonl").write_bytes(feed.read_bytes() + b'{"id": 4, "text": "\xff\xfe"}\n'
                                       + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    stats = FeedStats()
    events = list(iter_feed(feed, stats))
    assert [e.id for e in events] == ["1", "3"]
    assert stats.lines == 6 and stats.events == 2 and stats.skipped == 4
    where = [(b.line, b.reason.split(" (")[0]) for b in stats.bad]
    assert where[0] == (2, "not valid JSON")
    assert where[1] == (3, "created_at is missing")
    assert where[2] == (6, "not valid UTF-8")
    assert where[3] == (7, "not valid JSON")
    assert str(stats.bad[0]).startswith(f"{feed}:2: not valid JSON")


def test_gzip_feeds_and_time_order_across_files(tmp_path: Path) -> None:
    a = write(tmp_path / "a.jsonl.gz", [
        json.dumps({**STATUS, "id": 1, "created_at": "2011-05-31T10:00:00+08:00"}),
        json.dumps({**STATUS, "id": 2, "created_at": "2011-05-31T09:00:00+08:00"}),
    ])
    b = write(tmp_path / "b.jsonl", [
        json.dumps({**STATUS, "id": 3, "created_at": "2011-05-31T09:30:00+08:00"}),
        json.dumps({**STATUS, "id": 4, "created_at": "2011-05-31T10:00:00+08:00"}),
    ])
    stats = FeedStats()
    assert [e.id for e in read_feeds([a, b], stats)] == ["2", "3", "1", "4"]


def test_truncated_gzip_keeps_what_was_readable(tmp_path: Path) -> None:
    lines = [json.dumps({**STATUS, "id": i}) for i in range(200)]
    full = gzip.compress(("\n".join(lines) + "\n").encode())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(full[: len(full) // 2])
    stats = FeedStats()
    events = list(iter_feed(cut, stats))
    assert 0 < len(events) < 200
    assert stats.skipped == 1 and "unreadable" in stats.bad[0].reason
